"""Sweeps as a library: grid files and their validation before any trial runs, grid and
random expansion, byte-identical artifacts from the serial and process executors,
resuming from the trial store after an interrupt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mmkit import artifacts
from mmkit.errors import MmkitError
from mmkit.research import sweep, trials
from mmkit.research.executors import ProcessExecutor, SerialExecutor, TrialStore
from support import FIXTURES, validate_artifact

USDM = str(FIXTURES / "real/binance/usdm/btcusdt_20240718.gz")
CONFIG = str(FIXTURES / "research/sweep_config.yaml")
GRID = str(FIXTURES / "research/grid_fixed.yaml")


def grid_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    return str(path)


def request(grid: str = GRID, **kw: Any) -> sweep.SweepRequest:
    return sweep.SweepRequest((USDM,), CONFIG, grid, **kw)


# ----------------------------------------------------------------------------- grid files
def test_grid_file_shapes(tmp_path: Path) -> None:
    g = sweep.read_grid(grid_file(tmp_path, "strategy:\n  fixed:\n    half_spread_ticks: [2, 3]\n"
                                            "    skew_ticks: {min: 0.0, max: 1.0}\n"))
    assert g == {"strategy.fixed.half_spread_ticks": [2, 3], "strategy.fixed.skew_ticks": {"max": 1.0, "min": 0.0}}
    wrapped = sweep.read_grid(grid_file(tmp_path, "grid:\n  strategy.fixed.half_spread_ticks: [2]\n"))
    assert wrapped == {"strategy.fixed.half_spread_ticks": [2]}
    for text in ("strategy.fixed.half_spread_ticks: 3\n", "[1, 2]\n", "strategy.fixed.skew_ticks: {min: 2, max: 1}\n"):
        with pytest.raises(MmkitError) as err:
            sweep.read_grid(grid_file(tmp_path, text))
        assert err.value.code == "E_SWEEP_BAD_GRID", text


def test_unknown_keys_are_refused_with_did_you_mean_before_any_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trials, "load_events", lambda *a, **k: pytest.fail("data read before validation"))
    with pytest.raises(MmkitError) as err:
        sweep.plan_sweep(request(str(FIXTURES / "research/grid_typo.yaml")))
    assert err.value.code == "E_SWEEP_UNKNOWN_KEY"
    assert "strategy.fixed.half_spred_ticks" in err.value.message
    assert "did you mean 'strategy.fixed.half_spread_ticks'" in err.value.message


def test_empty_grids_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(MmkitError) as err:
        sweep.plan_sweep(request(str(FIXTURES / "research/grid_empty.yaml")))
    assert err.value.code == "E_SWEEP_EMPTY_GRID"
    with pytest.raises(MmkitError) as err:
        sweep.plan_sweep(request(grid_file(tmp_path, "strategy.fixed.half_spread_ticks: []\n")))
    assert err.value.code == "E_SWEEP_EMPTY_GRID"
    with pytest.raises(MmkitError) as err:
        sweep.plan_sweep(request(grid_file(tmp_path, "strategy.fixed.half_spread_ticks: [2, wide]\n")))
    assert err.value.code == "E_SWEEP_BAD_VALUE" and "t0001" in err.value.message and "wide" in err.value.message
    with pytest.raises(MmkitError) as err:
        sweep.plan_sweep(request(grid_file(tmp_path, "strategy.fixed.half_spread_ticks: {min: 1, max: 4}\n")))
    assert err.value.code == "E_SWEEP_BAD_GRID" and "--method random" in err.value.message


# ----------------------------------------------------------------------------- expansion
def test_grid_expansion_order_steps_and_cap() -> None:
    grid = {"b": [1, 2], "a": {"min": 0.5, "max": 1.5, "step": 0.5}}
    combos = sweep.expand(grid, "grid", None, 0)
    assert combos[:3] == [{"a": 0.5, "b": 1}, {"a": 0.5, "b": 2}, {"a": 1.0, "b": 1}] and len(combos) == 6
    assert len(sweep.expand(grid, "grid", 4, 0)) == 4
    with pytest.raises(MmkitError) as err:
        sweep.expand({"a": list(range(1000)), "b": list(range(1000))}, "grid", None, 0)
    assert err.value.code == "E_SWEEP_TOO_LARGE"


def test_random_draws_are_seeded_distinct_and_in_range() -> None:
    grid = {"k": {"min": 1, "max": 5}, "x": {"min": 0.0, "max": 1.0}, "c": ["p", "q"]}
    a = sweep.expand(grid, "random", 6, 7)
    assert a == sweep.expand(grid, "random", 6, 7) != sweep.expand(grid, "random", 6, 8)
    assert len({artifacts.canonical_json(c) for c in a}) == 6
    assert all(isinstance(c["k"], int) and 1 <= c["k"] <= 5 and 0.0 <= c["x"] <= 1.0 and c["c"] in "pq" for c in a)
    assert len(sweep.expand({"k": [1, 2]}, "random", 5, 1)) == 2  # only two distinct points exist
    with pytest.raises(MmkitError):
        sweep.expand(grid, "random", None, 1)


# ----------------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def serial_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("serial")
    mp = pytest.MonkeyPatch()
    mp.setenv("MM_FREEZE_UTC", "1")
    try:
        plan = sweep.plan_sweep(request(seed=1))
        return sweep.run_sweep(plan, SerialExecutor(), TrialStore(tmp / "store.jsonl", code_version="t"))
    finally:
        mp.undo()


def test_artifact_shape_top3_and_safe(serial_doc: dict[str, Any]) -> None:
    validate_artifact(serial_doc)
    rows = serial_doc["results"]
    assert [r["trial_id"] for r in rows] == ["t0000", "t0001", "t0002", "t0003"]
    assert rows[1]["params"] == {"strategy.fixed.half_spread_ticks": 2, "strategy.fixed.skew_ticks": 1.0}
    assert serial_doc["summary"] == {"trials": 4, "ok": 4, "failed": 0, "safe": sum(r["safe"] for r in rows)}
    assert all(r["safe"] == r["result"]["safe"] == all(g["pass"] for g in r["result"]["gates"].values()) for r in rows)
    top = serial_doc["top3_by_net_bps_safe"]
    safe = sorted((r for r in rows if r["safe"]), key=lambda r: -r["result"]["net_bps"])
    assert 1 <= len(top) <= 3 and [t["trial_id"] for t in top] == [r["trial_id"] for r in safe[:3]]
    assert any(not r["safe"] for r in rows), "the fixture grid should have an unsafe point"


def test_serial_and_process_give_identical_bytes(serial_doc: dict[str, Any], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MM_FREEZE_UTC", "1")
    plan = sweep.plan_sweep(request(seed=1))
    doc = sweep.run_sweep(plan, ProcessExecutor(2), TrialStore(tmp_path / "store.jsonl", code_version="t"))
    assert artifacts.canonical_bytes(doc) == artifacts.canonical_bytes(serial_doc)


def test_interrupted_sweep_resumes_from_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   serial_doc: dict[str, Any]) -> None:
    monkeypatch.setenv("MM_FREEZE_UTC", "1")
    plan = sweep.plan_sweep(request(seed=1))
    store_path = tmp_path / "store.jsonl"
    seen: list[str] = []

    def stop_after_two(res: Any) -> None:
        seen.append(res.trial_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(plan, SerialExecutor(), TrialStore(store_path, code_version="t"), stop_after_two)
    store = TrialStore(store_path, code_version="t")
    assert len(store) == 2 and sweep.pending(plan, store) == 2
    ran: list[dict[str, Any]] = []
    real = trials.backtest_trial
    monkeypatch.setattr(trials, "backtest_trial", lambda p, s, i: ran.append(p) or real(p, s, i))
    doc = sweep.run_sweep(plan, SerialExecutor(), store)
    assert len(ran) == 2 and sweep.pending(plan, store) == 0
    assert artifacts.canonical_bytes(doc) == artifacts.canonical_bytes(serial_doc)


def test_failed_trials_are_listed_and_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(Path(CONFIG).read_text())
    plan = sweep.plan_sweep(sweep.SweepRequest((USDM,), str(cfg), GRID, trials=2))
    cfg.write_text(cfg.read_text() + "# edited after planning\n")
    doc = sweep.run_sweep(plan, SerialExecutor(), TrialStore(tmp_path / "s.jsonl", code_version="t"))
    assert sweep.status(doc) == "FAILED" and doc["top3_by_net_bps_safe"] == []
    assert all(r["error"].startswith("E_TRIAL_INPUT_CHANGED") for r in doc["results"])
    md = sweep.render_markdown(doc)
    assert "## Failed trials" in md and "No trial passed every gate." in md
