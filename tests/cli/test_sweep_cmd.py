"""``mmkit sweep run|render`` end to end: the golden PARAM_SWEEP.{json,md} of the real USD-M
0718 recording, ``--out -`` streaming, serial and process executors byte-identical,
resuming, bad grids refused before any trial with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from support import FIXTURES, assert_golden, run_cli, validate_artifact

USDM = FIXTURES / "real/binance/usdm/btcusdt_20240718.gz"


@pytest.fixture
def inputs(workdir: Path) -> Path:
    """Relative copies of the recording, the config and the grids (stable meta paths)."""
    shutil.copy(USDM, workdir / "usdm_0718.gz")
    for name in ("sweep_config.yaml", "grid_fixed.yaml", "grid_random.yaml", "grid_typo.yaml", "grid_empty.yaml"):
        shutil.copy(FIXTURES / "research" / name, workdir / name)
    return workdir


def sweep(*args: str, grid: str = "grid_fixed.yaml", executor: str = "serial") -> Any:
    return run_cli("sweep", "run", "--events", "usdm_0718.gz", "--grid", grid, "--config", "sweep_config.yaml",
                   "--seed", "1", "--executor", executor, *args)


def test_golden_sweep_and_render(inputs: Path, frozen: None) -> None:
    res = sweep()
    assert res.code == 0, res.stderr
    assert res.stdout.strip() == "SWEEP=OK"
    blob = Path("artifacts/PARAM_SWEEP.json").read_bytes()
    doc = json.loads(blob)
    validate_artifact(doc)
    assert [i["path"] for i in doc["meta"]["inputs"]] == ["usdm_0718.gz", "sweep_config.yaml", "grid_fixed.yaml"]
    assert_golden("PARAM_SWEEP.json", blob)
    assert Path("artifacts/sweep_trials.jsonl").read_text().count("\n") == 4
    res = run_cli("sweep", "render", "artifacts/PARAM_SWEEP.json")
    assert res.code == 0, res.stderr
    md = Path("artifacts/PARAM_SWEEP.md").read_text()
    assert_golden("PARAM_SWEEP.md", md)
    ranked = [ln for ln in md.split("## All trials")[1].splitlines() if ln.startswith("| ") and "trial" not in ln]
    flags = [ln.split("|")[3].strip() for ln in ranked]
    assert flags == sorted(flags, key=lambda f: f != "SAFE") and "SAFE" in flags and "-" in flags


def test_stdout_stream_equals_the_file_and_process_pool_is_identical(inputs: Path, frozen: None) -> None:
    first = sweep("--out", "a/PARAM_SWEEP.json")
    piped = sweep("--out", "-", "--store", "b/store.jsonl", executor="process:2")
    assert first.code == piped.code == 0, piped.stderr
    assert piped.stdout.encode("ascii") == Path("a/PARAM_SWEEP.json").read_bytes()
    assert piped.last_err == "SWEEP=OK"
    rendered = run_cli("sweep", "render", "-", "--out", "-", input=piped.stdout)
    assert rendered.code == 0 and rendered.stdout.startswith("# Parameter sweep\n")


def test_rerun_resumes_from_the_store(inputs: Path, frozen: None) -> None:
    assert sweep().code == 0
    store = Path("artifacts/sweep_trials.jsonl")
    lines = store.read_text().splitlines()
    store.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # two whole trials and a torn line
    before = Path("artifacts/PARAM_SWEEP.json").read_bytes()
    Path("artifacts/PARAM_SWEEP.json").unlink()
    assert sweep().code == 0
    assert Path("artifacts/PARAM_SWEEP.json").read_bytes() == before
    assert store.read_text().count("\n") == 4


def test_random_method(inputs: Path, frozen: None) -> None:
    res = sweep("--method", "random", "--trials", "3", "--out", "-", grid="grid_random.yaml")
    assert res.code == 0, res.stderr
    doc = res.json()
    validate_artifact(doc)
    assert doc["method"] == "random" and doc["summary"]["trials"] == 3
    assert doc["grid"]["strategy.fixed.half_spread_ticks"] == {"max": 5, "min": 1}
    assert all(1 <= r["params"]["strategy.fixed.half_spread_ticks"] <= 5 for r in doc["results"])


@pytest.mark.parametrize(("grid", "code"), [("grid_typo.yaml", "E_SWEEP_UNKNOWN_KEY"),
                                            ("grid_empty.yaml", "E_SWEEP_EMPTY_GRID"),
                                            ("grid_random.yaml", "E_SWEEP_BAD_GRID"),
                                            ("missing.yaml", "E_IO_MISSING")])
def test_bad_grids_fail_before_any_trial(inputs: Path, grid: str, code: str) -> None:
    res = sweep(grid=grid)
    assert res.code == 1 and res.last_err.startswith(code + ":"), res.stderr
    assert not Path("artifacts").exists()
    if code == "E_SWEEP_UNKNOWN_KEY":
        assert "did you mean 'strategy.fixed.half_spread_ticks'" in res.last_err


def test_usage_errors(inputs: Path) -> None:
    assert sweep(executor="threads").code == 64
    assert sweep("--method", "annealing").code == 64
    res = run_cli("sweep", "run", "--events", "-", "--grid", "grid_fixed.yaml", "--config", "sweep_config.yaml")
    assert res.code == 64
    Path("junk.json").write_text('{"schema": "mmkit.backtest_report/v1"}')
    res = run_cli("sweep", "render", "junk.json")
    assert res.code == 1 and res.last_err.startswith("E_SWEEP_INVALID:")
