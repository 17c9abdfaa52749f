"""Docs are tested: every command has a page with a runnable example, links resolve."""

from __future__ import annotations

import re

from mmkit.cli.app import COMMANDS
from support import ROOT

DOCS = ROOT / "docs"


def test_every_command_has_a_page_with_an_example():
    for _, name in COMMANDS:
        page = DOCS / f"{name}.md"
        assert page.exists(), f"docs/{name}.md missing for command '{name}'"
        blocks = re.findall(r"```(?:bash|sh|console)?\n(.*?)```", page.read_text(), re.S)
        assert any(f"mmkit {name}" in b for b in blocks), f"docs/{name}.md has no code block running 'mmkit {name}'"


def test_index_links_every_page_and_links_resolve():
    index = (DOCS / "index.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "index.md":
            assert f"({page.name})" in index, f"docs/index.md does not link {page.name}"
    for page in sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+?)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_docs_are_ascii():
    for page in sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]:
        page.read_bytes().decode("ascii")


def test_readme_states_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_config_reference_lists_every_key():
    from mmkit.config import leaf_paths

    text = (DOCS / "config.md").read_text()
    missing = [k for k in leaf_paths() if f"`{k}`" not in text]
    assert not missing, f"docs/config.md does not document: {missing}"
