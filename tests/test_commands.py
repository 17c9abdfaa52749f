"""The shell pipelines in commands/ run end to end with the real ``mmkit`` executable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT, validate_file


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "ADMIN_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["ARTIFACTS_DIR"] = "artifacts"
    env["MM_CONFIG_PATH"] = str(ROOT / "config" / "example.yaml")
    env["MM_FREEZE_UTC"] = "1"
    env["MM_GIT_SHA"] = "0" * 40
    return env


@pytest.mark.slow
def test_demo_runs_and_is_deterministic(tmp_path):
    assert shutil.which("mmkit", path=_env(tmp_path)["PATH"]), "mmkit console script not installed in the venv"
    outputs = []
    for run in ("a", "b"):
        env = {**_env(tmp_path / run), "MM_RUN_SECONDS": "3", "MM_RUN_PORT": "0"}  # make run: 60 s on port 8080
        (tmp_path / run).mkdir()
        res = subprocess.run(["bash", str(ROOT / "commands" / "demo.sh")], cwd=tmp_path / run, env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "rc_validator: ok" in res.stdout and "AUDIT_VERIFY=OK" in res.stdout
        art = tmp_path / run / "artifacts"
        validate_file(art / "rc_validator.json")
        verify = validate_file(art / "AUDIT_CHAIN_VERIFY.json")
        assert verify["entries_checked"] == 3
        lines = (art / "audit.jsonl").read_text().splitlines()
        assert [json.loads(x)["kind"] for x in lines] == ["DEPLOY", "GUARD", "NOTE"]
        summary = validate_file(art / "run" / "RUN_SUMMARY.json")
        assert summary["open_orders"] == 0 and "/metrics" in res.stdout + res.stderr
        outputs.append({p.name: p.read_bytes() for p in sorted(art.iterdir()) if p.is_file()})
    assert outputs[0] == outputs[1]
