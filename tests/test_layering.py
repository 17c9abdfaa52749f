"""Import arrows point down only (DESIGN.md section 1), checked on the source with ast."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from support import ROOT

PKG = ROOT / "mmkit"
STDLIB = set(sys.stdlib_module_names)
# I/O and wall-clock modules the pure core must never touch.
CORE_FORBIDDEN_STDLIB = {"os", "io", "socket", "subprocess", "time", "datetime", "pathlib", "shutil", "asyncio",
                         "threading", "multiprocessing", "tempfile", "glob", "sqlite3", "urllib", "http", "logging"}
# Which top-level mmkit packages each layer may import (besides itself).
ALLOWED = {
    "core": set(),
    "data": {"core", "errors", "artifacts", "log", "progress", "clock", "compiled"},
    "venues": {"core", "data", "errors", "artifacts", "log", "clock"},
    "research": {"core", "data", "venues", "errors", "artifacts", "log", "progress", "clock", "config", "config_schema", "audit", "metrics"},
    "ops": {"core", "data", "venues", "errors", "artifacts", "log", "progress", "clock", "config", "config_schema", "audit", "metrics", "research", "analytics"},
    "analytics": {"core", "data", "errors", "artifacts", "log", "clock", "config", "config_schema"},
    "live": {"core", "data", "venues", "errors", "artifacts", "log", "progress", "clock", "config", "config_schema", "audit", "metrics", "ops", "research"},
}


def imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(path.relative_to(ROOT).with_suffix("").parts[: -node.level])
                out.append((f"{base}.{node.module}" if node.module else base, node.lineno))
            elif node.module:
                out.append((node.module, node.lineno))
    return out


def layer_of(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else Path(rel[0]).stem


def test_core_is_pure_stdlib_without_io():
    bad = []
    for path in sorted((PKG / "core").rglob("*.py")):
        for mod, line in imports(path):
            top = mod.split(".")[0]
            if top == "mmkit":
                if not mod.startswith("mmkit.core"):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
            elif top not in STDLIB or top in CORE_FORBIDDEN_STDLIB:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod} (core is stdlib-only, no I/O or clock)")
    assert not bad, "\n".join(bad)


def test_import_arrows_point_down():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        layer = layer_of(path)
        for mod, line in imports(path):
            parts = mod.split(".")
            if parts[0] != "mmkit" or len(parts) < 2:
                continue
            target = parts[1]
            if target == layer:
                continue
            if target == "cli" and layer not in ("cli", "__main__"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports the CLI ({mod})")
            elif layer in ALLOWED and target not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: layer '{layer}' may not import '{target}'")
    assert not bad, "\n".join(bad)


def test_every_package_init_opens_with_a_paragraph():
    for init in sorted(PKG.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 12, f"{init.relative_to(ROOT)} needs an opening paragraph (what the layer is, what it may import)"
