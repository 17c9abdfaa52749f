"""The CLI root: registered commands, help with examples, exit-code mapping."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import typer

from mmkit.cli.app import COMMANDS, app
from support import ROOT, run_cli


def _walk(cmd: click.Command, path: list[str]):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, path + [name])


def test_help_lists_exactly_the_registered_commands():
    res = run_cli("--help")
    assert res.code == 0
    listed = {line.split()[0] for line in res.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {name for _, name in COMMANDS}


def test_every_command_has_help_with_a_runnable_example():
    root = typer.main.get_command(app)
    for path, cmd in _walk(root, []):
        if not path or isinstance(cmd, click.Group):
            continue
        res = run_cli(*path, "--help")
        assert res.code == 0, path
        assert "Example:" in res.stdout, f"{' '.join(path)} --help has no example"
        assert re.search(r"\bmmkit\s+" + re.escape(path[0]), res.stdout.split("Example:")[1]), f"{' '.join(path)}: example does not run mmkit {path[0]}"
        res.stdout.encode("ascii")


def test_version():
    res = run_cli("--version")
    assert res.code == 0 and res.stdout.startswith("mmkit ")
    line = res.stdout.splitlines()[1]  # which compiled fast paths this install uses, for bug reports
    assert re.fullmatch(r"compiled: book_levels=(on|built-off|pure) engine_loop=(on|built-off|pure) cache_rows=(on|built-off|pure) "
                        r"jsonl_scanner=(on|built-off|pure)", line), line


def test_usage_errors_exit_64_with_one_line():
    for args in (["--bogus"], ["nosuchcommand"], ["config", "validate", "--nope"], ["--log-format", "xml", "config", "hash"]):
        res = run_cli(*args)
        assert res.code == 64, (args, res)
        assert res.last_err.startswith("E_USAGE: "), res.stderr


def test_no_args_shows_help_and_exits_64():
    res = run_cli()
    assert res.code == 64 and "Usage:" in res.stdout


def test_mmkit_error_exits_1_with_code_last_and_no_traceback(tmp_path):
    res = run_cli("config", "validate", "--config", str(tmp_path / "missing.yaml"))
    assert res.code == 1
    assert res.last_err.startswith("E_CFG_MISSING: ")
    assert "Traceback" not in res.stderr


def test_console_script_and_python_m_agree(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mmkit", "--bogus"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 64 and out.stderr.strip().splitlines()[-1].startswith("E_USAGE")
    out = subprocess.run([sys.executable, "-m", "mmkit", "config", "hash", "--config", "config/example.yaml"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and len(out.stdout.strip()) == 64


def test_internal_error_is_one_line_unless_debug(monkeypatch, tmp_path):
    import mmkit.cli.config_cmd as cc

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cc, "load_config", boom)
    res = run_cli("config", "hash", "--config", "x.yaml")
    assert res.code == 1 and res.last_err.startswith("E_INTERNAL: RuntimeError: kaboom")
    assert "Traceback" not in res.stderr
    res = run_cli("config", "hash", "--config", "x.yaml", env={"MM_DEBUG": "1"})
    assert res.code == 1 and "Traceback" in res.stderr


def test_keyboard_interrupt_exits_130(monkeypatch):
    import mmkit.cli.config_cmd as cc

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cc, "load_config", interrupt)
    res = run_cli("config", "hash", "--config", "x.yaml")
    assert res.code == 130 and res.last_err.startswith("E_INTERRUPTED")


def test_artifacts_dir_option_sets_env(workdir):
    res = run_cli("--artifacts-dir", "elsewhere", "preflight", env={"MM_ENV": "dev", "MM_CONFIG_PATH": str(ROOT / "config/example.yaml")})
    assert res.code == 0, res.stderr
    assert (workdir / "elsewhere" / "rc_validator.json").exists()
