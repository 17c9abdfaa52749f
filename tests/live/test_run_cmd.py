"""``mmkit run`` end to end: a real subprocess stopped with SIGTERM must leave no open
order in RUN_SUMMARY.json and an audit log that verifies; --duration and usage errors."""

from __future__ import annotations

import gzip
import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from live.admin_support import FAST_CFG
from mmkit.live.service import default_data_path
from support import ROOT, validate_file

pytestmark = pytest.mark.service

MMKIT = ROOT / ".venv" / "bin" / "mmkit"
TOKEN = "run-cmd-test-token-0123456789"


def small_recording(folder: Path, lines: int = 3000) -> str:
    out = folder / "head.gz"
    with gzip.open(default_data_path(), "rb") as src:
        out.write_bytes(gzip.compress(b"".join(src.readline() for _ in range(lines))))
    return str(out)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMIN_", "MM_", "EXEC_", "SOAK_", "SELFCHK_"))}
    env.update(ARTIFACTS_DIR=str(tmp_path / "art"), ADMIN_TOKEN_PRIMARY=TOKEN, PYTHONUNBUFFERED="1")
    return env


def _lines(stream, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        out.put(line)
    out.put(None)


@pytest.mark.skipif(not MMKIT.exists(), reason="needs the installed console script .venv/bin/mmkit")
def test_sigterm_cancels_everything_and_the_audit_verifies(tmp_path):
    (tmp_path / "cfg.yaml").write_text(FAST_CFG)
    data = small_recording(tmp_path)
    proc = subprocess.Popen([str(MMKIT), "run", "--config", str(tmp_path / "cfg.yaml"), "--data", data, "--speed", "max",
                             "--loop", "--port", "0"], cwd=tmp_path, env=_env(tmp_path), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True).start()
    try:
        first = out.get(timeout=60)
        assert first and first.startswith("metrics: http://127.0.0.1:"), first
        url = first.split(" ", 1)[1].strip()
        base = url.rsplit("/", 1)[0]
        deadline = time.monotonic() + 30
        fills = 0.0
        while time.monotonic() < deadline and fills == 0:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
            fills = sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith("fills_total{"))
            time.sleep(0.2)
        assert fills > 0, "the paper venue never filled"
        req = urllib.request.Request(base + "/admin/orders", headers={"X-Admin-Token": TOKEN})
        orders = json.loads(urllib.request.urlopen(req, timeout=5).read())
        assert orders["count"] == len(orders["orders"])
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    rest = []
    while True:
        line = out.get(timeout=5)
        if line is None:
            break
        rest.append(line)
    assert rc == 0, stderr[-2000:]
    assert any(ln.startswith("RUN=OK open_orders=0") for ln in rest), rest
    art = tmp_path / "art"
    summary = validate_file(art / "RUN_SUMMARY.json")
    assert summary["open_orders"] == 0 and summary["venue_open_orders"] == 0
    assert summary["exit_reason"] == "signal:SIGTERM" and summary["status"] == "ok" and summary["fills"] > 0
    kinds = [json.loads(ln)["kind"] for ln in (art / "audit.jsonl").read_text().splitlines()]
    assert kinds[0] == "run.start" and kinds[-1] == "run.stop" and "ADMIN" in kinds
    check = subprocess.run([str(MMKIT), "audit", "verify", "--audit", str(art / "audit.jsonl")], cwd=tmp_path,
                           env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "AUDIT_VERIFY=OK" in check.stdout + check.stderr
    assert TOKEN not in stderr and TOKEN not in (art / "audit.jsonl").read_text()


def test_duration_ends_the_run_the_same_way(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    for var in ("ADMIN_TOKEN_PRIMARY", "MM_PROFILE", "EXEC_RECORDER_ENABLED"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "cfg.yaml").write_text(FAST_CFG)
    data = small_recording(tmp_path, 1500)
    res = cli("--artifacts-dir", str(tmp_path / "art"), "run", "--config", str(tmp_path / "cfg.yaml"), "--data", data,
              "--speed", "max", "--loop", "--duration", "0.7", "--no-http")
    assert res.code == 0, res.stderr
    assert "metrics: off (--no-http)" in res.stdout and "RUN=OK open_orders=0" in res.stdout
    summary = json.loads((tmp_path / "art" / "RUN_SUMMARY.json").read_text())
    assert summary["exit_reason"] == "duration" and summary["open_orders"] == 0
    assert summary["replay"]["loops"] >= 1 and summary["uptime_s"] >= 0.7


def test_usage_errors(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.yaml").write_text(FAST_CFG)
    res = cli("run", "--config", "cfg.yaml", "--speed", "fast")
    assert res.code == 64 and res.last_err.startswith("E_USAGE")
    res = cli("run", "--config", "cfg.yaml", "--venue", "bybit")
    assert res.code == 64 and res.last_err.startswith("E_LIVE_VENUE_UNAVAILABLE")
    res = cli("run", "--config", "missing.yaml")
    assert res.code == 1 and res.last_err.startswith("E_CFG_MISSING")
    res = cli("run", "--help")
    assert res.code == 0 and "Example: mmkit run" in res.stdout
