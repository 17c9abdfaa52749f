"""``mmkit preflight`` (RC-Validator) with real sockets and real folders."""

from __future__ import annotations

import json
import os
import socket
import stat

import pytest

from support import ROOT, assert_golden, run_cli, validate_file

EXAMPLE = str(ROOT / "config" / "example.yaml")


def env(**extra):
    base = {"MM_ENV": "dev", "MM_CONFIG_PATH": EXAMPLE}
    base.update(extra)
    return base


def report(workdir):
    return validate_file(workdir / "artifacts" / "rc_validator.json")


def test_ok(workdir, frozen):
    res = run_cli("preflight", env=env())
    assert res.code == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "rc_validator: ok"
    rep = report(workdir)
    assert rep["status"] == "ok" and rep["errors"] == []
    assert (workdir / "artifacts" / "runtime").is_dir()


def test_golden_and_byte_identical_runs(workdir, frozen, monkeypatch):
    cfg = workdir / "cfg.yaml"
    cfg.write_bytes((ROOT / "fixtures" / "config" / "small.yaml").read_bytes())
    e = {"MM_ENV": "dev", "MM_CONFIG_PATH": "cfg.yaml"}
    assert run_cli("preflight", env=e).code == 0
    first = (workdir / "artifacts" / "rc_validator.json").read_bytes()
    assert run_cli("preflight", env=e).code == 0
    assert (workdir / "artifacts" / "rc_validator.json").read_bytes() == first
    assert_golden("rc_validator.json", first)


def test_missing_env(workdir, monkeypatch):
    res = run_cli("preflight", env={"MM_ENV": "", "MM_CONFIG_PATH": ""})
    assert res.code == 2
    assert res.stdout.strip() == "rc_validator: failed (2 errors)"
    assert report(workdir)["errors"] == ["missing_env:MM_ENV", "missing_env:MM_CONFIG_PATH"]


def test_busy_port_and_bad_port_string(workdir):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        busy = held.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        res = run_cli("preflight", env=env(MM_PORTS=f"{busy},80a,{free}"))
    assert res.code == 2
    errors = report(workdir)["errors"]
    assert errors == ["bad_env:MM_PORTS", f"port_busy:{busy}"]
    checks = {c["name"]: c for c in report(workdir)["checks"]}
    assert checks[f"port:{free}"]["ok"] is True
    assert "80a" in checks["env:MM_PORTS"]["detail"]


def test_config_parse_and_invalid(workdir):
    (workdir / "p.yaml").write_text("strategy: [\n")
    res = run_cli("preflight", env=env(MM_CONFIG_PATH="p.yaml"))
    assert res.code == 2 and report(workdir)["errors"] == ["config_parse"]
    (workdir / "i.yaml").write_text("strategy: {levels_per_side: 0}\n")
    res = run_cli("preflight", env=env(MM_CONFIG_PATH="i.yaml"))
    assert res.code == 2 and report(workdir)["errors"] == ["config_invalid"]
    res = run_cli("preflight", env=env(MM_CONFIG_PATH="none.yaml"))
    assert res.code == 2 and report(workdir)["errors"] == ["config_parse"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_unwritable_runtime_dir(workdir):
    (workdir / "artifacts" / "runtime").mkdir(parents=True)
    os.chmod(workdir / "artifacts" / "runtime", stat.S_IRUSR | stat.S_IXUSR)
    try:
        res = run_cli("preflight", env=env())
    finally:
        os.chmod(workdir / "artifacts" / "runtime", stat.S_IRWXU)
    assert res.code == 2 and report(workdir)["errors"] == ["writable_dir:artifacts/runtime"]


def test_runtime_path_that_is_a_file(workdir):
    (workdir / "artifacts").mkdir()
    (workdir / "artifacts" / "runtime").write_text("not a folder")
    res = run_cli("preflight", env=env())
    assert res.code == 2 and report(workdir)["errors"] == ["writable_dir:artifacts/runtime"]


def test_snapshots_checked_when_present(workdir):
    (workdir / "artifacts").mkdir()
    snap = workdir / "artifacts" / "snapshots.json"
    snap.write_text('{"version": 1}')
    assert run_cli("preflight", env=env()).code == 0
    snap.write_text('{"version": ')
    res = run_cli("preflight", env=env())
    assert res.code == 2 and report(workdir)["errors"] == ["bad_artifact:snapshots.json"]
    snap.write_bytes(b'{"v": "\xff"}')
    assert run_cli("preflight", env=env()).code == 2
    detail = [c for c in report(workdir)["checks"] if c["name"] == "artifact:snapshots.json"][0]["detail"]
    assert detail.startswith("non_ascii")


def test_out_to_stdout(workdir):
    res = run_cli("preflight", "--out", "-", env=env())
    assert res.code == 0
    assert json.loads(res.stdout)["schema"] == "mmkit.rc_validator/v1"
    assert "rc_validator: ok" in res.stderr
