"""``mmkit sim run|report``: the Live-Sim report, determinism, rendering a saved report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mmkit.research.backtest import render_markdown
from support import FIXTURES, ROOT, run_cli, validate_artifact

USDM = FIXTURES / "real/binance/usdm/btcusdt_20240718.gz"
BASELINE = ROOT / "bench/configs/baseline.yaml"


@pytest.fixture
def inputs(workdir: Path) -> Path:
    shutil.copy(USDM, workdir / "usdm_0718.gz")
    raw = yaml.safe_load(BASELINE.read_text())
    (workdir / "baseline.yaml").write_text(yaml.safe_dump(raw))
    raw.setdefault("backtest", {})["gates"] = {"min_net_bps": -1000.0, "max_taker_share_pct": 100.0,
                                               "max_order_age_p95_ms": 1.0e9}
    (workdir / "pass.yaml").write_text(yaml.safe_dump(raw))
    return workdir


def sim(*args: str) -> object:
    return run_cli("sim", "run", "--events", "usdm_0718.gz", "--seed", "1", *args)


def test_sim_run_writes_a_sim_report(inputs: Path) -> None:
    res = sim("--config", "pass.yaml")
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "SIM=PASS"
    rep = json.loads(Path("artifacts/SIM_REPORT.json").read_text())
    validate_artifact(rep)
    assert rep["schema"] == "mmkit.sim_report/v1" and rep["verdict"] == "PASS"
    md = Path("artifacts/SIM_REPORT.md").read_text()
    assert md.startswith("# Sim report\n") and md == render_markdown(rep)


def test_sim_failed_gate_exits_2_and_still_reports(inputs: Path) -> None:
    res = sim("--config", "baseline.yaml")
    assert res.code == 2 and res.stdout.splitlines()[-1] == "SIM=FAIL"
    assert json.loads(Path("artifacts/SIM_REPORT.json").read_text())["verdict"] == "FAIL"


def test_sim_matches_the_backtest_body(inputs: Path, frozen: None) -> None:
    assert sim("--config", "baseline.yaml", "--out", "s.json").code == 2
    assert run_cli("backtest", "run", "--ticks", "usdm_0718.gz", "--seed", "1", "--config", "baseline.yaml",
                   "--out", "b.json").code == 2
    s, b = json.loads(Path("s.json").read_text()), json.loads(Path("b.json").read_text())
    assert s.pop("schema") == "mmkit.sim_report/v1" and b.pop("schema") == "mmkit.backtest_report/v1"
    assert s == b


def test_sim_is_deterministic(inputs: Path, frozen: None) -> None:
    blobs = []
    for i in range(2):
        assert sim("--config", "baseline.yaml", "--out", f"s{i}.json", "--trace", f"t{i}").code == 2
        blobs.append([Path(p).read_bytes() for p in (f"s{i}.json", f"s{i}.md", f"t{i}/fills.jsonl")])
    assert blobs[0] == blobs[1]


def test_sim_out_dash(inputs: Path) -> None:
    res = sim("--config", "pass.yaml", "--out", "-", "--out-md", "s.md")
    assert res.code == 0 and "SIM=PASS" in res.stderr.splitlines()
    assert res.json()["schema"] == "mmkit.sim_report/v1"


def test_sim_report_renders_the_saved_json(inputs: Path) -> None:
    assert sim("--config", "pass.yaml").code == 0
    before = Path("artifacts/SIM_REPORT.md").read_bytes()
    Path("artifacts/SIM_REPORT.md").unlink()
    res = run_cli("sim", "report", "artifacts/SIM_REPORT.json")
    assert res.code == 0, res.stderr
    assert Path("artifacts/SIM_REPORT.md").read_bytes() == before
    res = run_cli("sim", "report", "artifacts/SIM_REPORT.json", "--out", "-")
    assert res.code == 0 and res.stdout.encode() == before


def test_sim_report_accepts_a_backtest_report(inputs: Path) -> None:
    assert run_cli("backtest", "run", "--ticks", "usdm_0718.gz", "--config", "pass.yaml", "--out", "b.json").code == 0
    res = run_cli("sim", "report", "b.json", "--out", "b2.md")
    assert res.code == 0 and Path("b2.md").read_text() == Path("b.md").read_text()


@pytest.mark.parametrize(("content", "code"), [
    ("{not json", "E_REPORT_INVALID"),
    ("[1, 2]", "E_REPORT_INVALID"),
    ('{"schema": "mmkit.preflight_report/v1"}', "E_REPORT_INVALID"),
    ('{"schema": "mmkit.sim_report/v1", "meta": {}}', "E_REPORT_INVALID"),
    ("caf\u00e9", "E_REPORT_INVALID"),
    (None, "E_IO_MISSING"),
], ids=["unparsable", "not-an-object", "other-schema", "missing-sections", "non-ascii", "missing-file"])
def test_sim_report_bad_json_is_a_one_line_error(workdir: Path, content: str | None, code: str) -> None:
    if content is not None:
        Path("r.json").write_text(content, encoding="utf-8")
    res = run_cli("sim", "report", "r.json")
    assert res.code == 1 and res.last_err.startswith(f"{code}: "), res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
    assert not Path("r.md").exists()


def test_sim_bad_input_writes_nothing(workdir: Path) -> None:
    Path("empty.jsonl").write_text("")
    shutil.copy(BASELINE, "baseline.yaml")
    res = run_cli("sim", "run", "--events", "empty.jsonl", "--from", "jsonl", "--config", "baseline.yaml")
    assert res.code == 1 and res.last_err.startswith("E_DATA_EMPTY: ")
    assert not Path("artifacts").exists()


@pytest.mark.parametrize("sub", ["run", "report"])
def test_help_has_a_runnable_example(sub: str) -> None:
    res = run_cli("sim", sub, "--help")
    assert res.code == 0 and f"Example: mmkit sim {sub} " in res.stdout
