"""``mmkit tune apply|report|rollback|baseline-lock`` end to end on the real USD-M 0718
recording: goldens of every artifact, the real ``sweep --out - | tune apply --sweep -``
pipe, a regressing overlay rolled back by its own tuning report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import FIXTURES, ROOT, assert_golden, run_cli, validate_artifact

USDM = FIXTURES / "real/binance/usdm/btcusdt_20240718.gz"
MMKIT = ROOT / ".venv/bin/mmkit"


@pytest.fixture
def swept(workdir: Path, frozen: None) -> Path:
    """Relative inputs and a serial sweep of grid_fixed.yaml in artifacts/."""
    shutil.copy(USDM, workdir / "usdm_0718.gz")
    for name in ("sweep_config.yaml", "grid_fixed.yaml"):
        shutil.copy(FIXTURES / "research" / name, workdir / name)
    res = run_cli("sweep", "run", "--events", "usdm_0718.gz", "--grid", "grid_fixed.yaml", "--config",
                  "sweep_config.yaml", "--seed", "1", "--executor", "serial")
    assert res.code == 0, res.stderr
    return workdir


def report(*args: str) -> Any:
    return run_cli("tune", "report", "--config", "sweep_config.yaml", "--events", "usdm_0718.gz", "--seed", "1",
                   "--executor", "serial", *args)


def test_apply_report_rollback_goldens(swept: Path) -> None:
    res = run_cli("tune", "apply", "--sweep", "artifacts/PARAM_SWEEP.json")
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "TUNE_APPLY=OK" and "trial=t0003" in res.stdout
    overlay = Path("artifacts/overlay_profile.yaml").read_text()
    assert_golden("overlay_profile.yaml", overlay)
    res = report()
    assert res.code == 0 and res.stdout.strip() == "TUNE_REPORT=PASS", res.stderr
    doc = json.loads(Path("artifacts/TUNING_REPORT.json").read_text())
    validate_artifact(doc)
    assert doc["after"]["safe"] and not doc["before"]["safe"]
    assert doc["metrics"]["net_bps"]["verdict"] == "better"
    assert_golden("TUNING_REPORT.json", Path("artifacts/TUNING_REPORT.json").read_bytes())
    assert_golden("TUNING_REPORT.md", Path("artifacts/TUNING_REPORT.md").read_text())
    res = run_cli("tune", "rollback", "--guard", "artifacts/TUNING_REPORT.json")
    assert res.code == 0 and res.stdout.strip() == "AUTO_ROLLBACK=NONE", res.stderr
    assert Path("artifacts/overlay_profile.yaml").read_text() == overlay


def test_regressing_overlay_is_rolled_back(swept: Path) -> None:
    assert run_cli("tune", "apply", "--sweep", "artifacts/PARAM_SWEEP.json", "--rank", "3").code == 0
    good = Path("artifacts/overlay_profile.yaml").read_bytes()
    Path("worse.yaml").write_text("strategy.fixed.half_spread_ticks: 1\nstrategy.fixed.skew_ticks: 0.0\n")
    shutil.copy("artifacts/overlay_profile.yaml", "artifacts/overlay_prev.yaml")
    shutil.copy("worse.yaml", "artifacts/overlay_profile.yaml")
    res = report("--out", "artifacts/TR_worse.json")
    assert res.code == 2 and res.stdout.strip() == "TUNE_REPORT=FAIL", res.stderr
    doc = json.loads(Path("artifacts/TR_worse.json").read_text())
    assert doc["verdict"] == "FAIL" and any("net_bps regressed" in r for r in doc["reasons"])
    assert any(r.startswith("after fails gate") for r in doc["reasons"])
    res = run_cli("tune", "rollback", "--guard", "artifacts/TR_worse.json")
    assert res.code == 0 and res.stdout.strip() == "AUTO_ROLLBACK=ROLLED_BACK", res.stderr
    assert Path("artifacts/overlay_profile.yaml").read_bytes() == good
    rb = json.loads(Path("artifacts/AUTO_ROLLBACK.json").read_text())
    validate_artifact(rb)
    assert rb["triggered"] and rb["guards"][0]["guard"] == "regression"
    assert_golden("AUTO_ROLLBACK.json", Path("artifacts/AUTO_ROLLBACK.json").read_bytes())


def test_apply_errors(swept: Path) -> None:
    doc = json.loads(Path("artifacts/PARAM_SWEEP.json").read_text())
    doc["top3_by_net_bps_safe"] = []
    Path("none_safe.json").write_text(json.dumps(doc))
    res = run_cli("tune", "apply", "--sweep", "none_safe.json")
    assert res.code == 2 and res.last_err.startswith("E_TUNE_NO_SAFE:")
    doc = json.loads(Path("artifacts/PARAM_SWEEP.json").read_text())
    doc["top3_by_net_bps_safe"][0]["params"] = {"strategy.fixed.half_spread_tick": 3}
    Path("typo.json").write_text(json.dumps(doc))
    res = run_cli("tune", "apply", "--sweep", "typo.json")
    assert res.code == 1 and res.last_err.startswith("E_TUNE_BAD_OVERLAY:") and "did you mean" in res.last_err
    res = run_cli("tune", "apply", "--sweep", "sweep_config.yaml")
    assert res.code == 1 and res.last_err.startswith("E_SWEEP_INVALID:")
    assert not Path("artifacts/overlay_profile.yaml").exists()
    res = run_cli("tune", "rollback", "--guard", "artifacts/PARAM_SWEEP.json")
    assert res.code == 1 and res.last_err.startswith("E_TUNE_BAD_GUARD:")


def test_baseline_lock(swept: Path) -> None:
    assert run_cli("tune", "apply", "--sweep", "artifacts/PARAM_SWEEP.json").code == 0
    res = run_cli("tune", "baseline-lock", "--config", "sweep_config.yaml", "--out", "-")
    assert res.code == 0, res.stderr
    doc = res.json()
    validate_artifact(doc)
    assert [o["exists"] for o in doc["overlays"]] == [True, False]
    assert doc["overlays"][0]["head"][0].startswith("# mmkit tune overlay")
    assert doc["git_sha"] == "0" * 40
    doc["tool_files"] = [{"path": "mmkit/__init__.py", "sha256": "0" * 64}]  # change with every edit of mmkit
    doc["tool_files_sha256"] = "0" * 64
    doc["alert_rules"] = []
    assert_golden("BASELINE_LOCK.json", json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")


def test_real_pipe_from_sweep_to_apply(workdir: Path) -> None:
    shutil.copy(USDM, workdir / "usdm_0718.gz")
    for name in ("sweep_config.yaml", "grid_fixed.yaml"):
        shutil.copy(FIXTURES / "research" / name, workdir / name)
    env = {**os.environ, "ARTIFACTS_DIR": "artifacts", "MM_PROGRESS": "0"}
    cmd = (f"{MMKIT} sweep run --events usdm_0718.gz --grid grid_fixed.yaml --config sweep_config.yaml "
           f"--seed 1 --executor process:2 --out - | {MMKIT} tune apply --sweep -")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SWEEP=OK" in proc.stderr and proc.stdout.splitlines()[-1] == "TUNE_APPLY=OK"
    text = (workdir / "artifacts/overlay_profile.yaml").read_text()
    assert "# source: stdin sha256 " in text
    golden = (ROOT / "golden/overlay_profile.yaml").read_text()
    assert text.splitlines()[2:] == golden.splitlines()[2:]  # same trial and body; only the source line differs


def test_apply_deploys_a_passing_walk_forward_champion_and_refuses_a_failing_one(workdir: Path) -> None:
    """``tune apply --sweep champion.json``: a PASS champion's params become the overlay
    (validated against ``--config``, which a champion never names); a FAIL one exits 2."""
    base = ROOT / "bench/configs/baseline.yaml"
    args = ["wf", "--ticks", str(USDM), "--config", str(base), "--grid", str(FIXTURES / "research/wf_grid.yaml"),
            "--train-minutes", "1", "--validate-minutes", "0.5", "--seed", "7", "--executor", "serial"]
    strict = run_cli(*args, "--out", "wf_strict")
    assert strict.code == 2
    res = run_cli("tune", "apply", "--sweep", "wf_strict/champion.json", "--config", str(base))
    assert res.code == 2 and "E_TUNE_NO_SAFE" in res.stderr and "verdict FAIL" in res.stderr
    assert not (workdir / "artifacts/overlay_profile.yaml").exists()
    loose = run_cli(*args, "--out", "wf", "--gate-min-hit", "0", "--gate-min-maker", "0.7", "--gate-max-cvar", "0.05",
                    "--gate-min-pnl", "0")
    assert loose.code == 0, loose.stderr
    champion = json.loads((workdir / "wf/champion.json").read_text())
    res = run_cli("tune", "apply", "--sweep", "wf/champion.json")
    assert res.code == 64 and "pass --config" in res.stderr
    res = run_cli("tune", "apply", "--sweep", "wf/champion.json", "--config", str(base))
    assert res.code == 0, res.stderr
    overlay = (workdir / "artifacts/overlay_profile.yaml").read_text()
    for key, value in champion["params"].items():
        assert f"{key}: {value}" in overlay
    assert "walk-forward champion" in overlay
