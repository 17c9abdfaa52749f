"""The backtest trial: equal to ``run_backtest`` on the whole recording, overrides through
the config layer, windows with a warmed-up book, the per-process data cache, inputs pinned
by sha256, bad params."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from mmkit.artifacts import sha256_file
from mmkit.config import load_config
from mmkit.core.book import L2Book
from mmkit.errors import ConfigError, MmkitError
from mmkit.research import trials
from mmkit.research.backtest import BacktestRequest, run_backtest
from mmkit.research.executors import SerialExecutor, Trial, TrialStore
from mmkit.research.trials import TRIAL_FN, backtest_trial, base_params, load_events, select_window, warmup_snapshots

ROOT = Path(__file__).resolve().parents[2]
USDM = str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240718.gz")
BASELINE = str(ROOT / "bench/configs/baseline.yaml")
INPUTS = ((USDM, sha256_file(USDM)), (BASELINE, sha256_file(BASELINE)))


def trial(seed: int = 1, **params: Any) -> dict[str, Any]:
    return backtest_trial({"config": BASELINE, "ticks": [USDM], **params}, seed, INPUTS)


@pytest.fixture(scope="module")
def whole() -> dict[str, Any]:
    return trial()


def test_whole_recording_equals_run_backtest(whole: dict[str, Any]) -> None:
    report = run_backtest(BacktestRequest((USDM,), load_config(BASELINE, use_env_profile=False), seed=1)).report
    for key, value in report["stats"].items():
        assert whole[key] == value, key
    assert whole["events"] == report["data"]["events"] == 11409
    assert whole["gates"] == {g["name"]: {"value": g["value"], "op": g["op"], "threshold": g["threshold"],
                                          "pass": g["passed"]} for g in report["gates"]}
    assert whole["safe"] is (report["verdict"] == "PASS") is False
    assert whole["cfg_hash"] == report["meta"]["cfg_hash"]
    assert whole["maker_share_pct"] == pytest.approx(100.0 - whole["taker_share_pct"])
    data = load_events([USDM])
    assert (whole["first_ts"], whole["last_ts"], whole["warmup_snapshots"]) == (data.first_ts, data.last_ts, 0)


def test_overrides_go_through_the_config_layer(whole: dict[str, Any]) -> None:
    wide = trial(overrides={"strategy.fixed.half_spread_ticks": 6})
    assert wide["cfg_hash"] != whole["cfg_hash"]
    assert wide["fills"] != whole["fills"]
    loose = trial(overrides={"backtest.gates": {"min_net_bps": -1000.0, "max_order_age_p95_ms": 1.0e9}})
    assert loose["safe"] is True and loose["net_bps"] == whole["net_bps"]
    with pytest.raises(ConfigError) as err:
        trial(overrides={"strategy.fixed.half_spread_tick": 3})
    assert err.value.code == "E_CFG_UNKNOWN_KEY" and "half_spread_ticks" in err.value.message
    with pytest.raises(ConfigError) as err:
        trial(overrides={"strategy.fixed.half_spread_ticks": "wide"})
    assert err.value.code == "E_CFG_TYPE"


def test_seed_is_honoured_and_results_repeat(whole: dict[str, Any]) -> None:
    assert trial() == whole
    assert trial(seed=2)["seed"] == 2


def test_time_window_warms_the_book_up() -> None:
    data = load_events([USDM])
    mid = (data.first_ts + data.last_ts) // 2
    i, j = select_window(data, {"start_ns": mid, "end_ns": None}, None)
    assert 0 < i < j == data.n_events and data.events[i].ts >= mid > data.events[i - 1].ts
    (snap,) = warmup_snapshots(data, i)
    book = L2Book("BTCUSDT")
    for ev in data.events[:i]:
        book.apply(ev)
    assert (snap.ts, snap.recv_ts) == (data.events[i].ts, data.events[i].recv_ts)
    assert list(snap.bids) == book.levels(1) and list(snap.asks) == book.levels(-1)
    res = trial(window={"start_ns": mid, "end_ns": None})
    assert (res["events"], res["warmup_snapshots"], res["first_ts"]) == (j - i, 1, data.events[i].ts)
    assert res["fills"] > 0


def test_event_window_and_bad_windows() -> None:
    res = trial(event_window={"start": 0, "stop": 3000})
    assert res["events"] == 3000 and res["warmup_snapshots"] == 0
    data = load_events([USDM])
    assert res["last_ts"] == data.events[2999].ts
    for window, event_window in (({"start_ns": 5, "end_ns": 5}, None), (None, {"start": 10, "stop": 3}),
                                 ({"start_ns": 1}, {"start": 0})):
        with pytest.raises(MmkitError) as err:
            trial(window=window, event_window=event_window)
        assert err.value.code == "E_TRIAL_BAD_PARAMS"
    with pytest.raises(MmkitError) as err:
        trial(window={"start_ns": data.last_ts + 1, "end_ns": None})
    assert err.value.code == "E_DATA_EMPTY"


def test_data_is_loaded_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_events([USDM])
    calls = []
    monkeypatch.setattr(trials, "read_all_events", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    assert load_events([USDM]) is first
    trial(event_window={"start": 0, "stop": 2000})
    assert calls == []


def test_inputs_are_pinned_by_sha256(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    shutil.copy(BASELINE, cfg)
    inputs = ((USDM, INPUTS[0][1]), (str(cfg), sha256_file(cfg)))
    params = {"config": str(cfg), "ticks": [USDM], "event_window": {"start": 0, "stop": 2000}}
    assert backtest_trial(params, 1, inputs)["events"] == 2000
    cfg.write_text(cfg.read_text() + "\n# edited\n")
    with pytest.raises(MmkitError) as err:
        backtest_trial(params, 1, inputs)
    assert err.value.code == "E_TRIAL_INPUT_CHANGED"
    with pytest.raises(MmkitError) as err:
        backtest_trial(params, 1, inputs[:1])
    assert err.value.code == "E_TRIAL_BAD_PARAMS"


def test_bad_params_fail_the_trial_not_the_run(tmp_path: Path) -> None:
    with pytest.raises(MmkitError, match="unknown trial params"):
        trial(windw={"start_ns": 1})
    with pytest.raises(MmkitError, match="'config'"):
        backtest_trial({"ticks": [USDM]}, 1, INPUTS)
    runs = [Trial("t0", TRIAL_FN, {"config": BASELINE, "ticks": [USDM], "bogus": 1}, 1, INPUTS),
            Trial("t1", TRIAL_FN, {"config": BASELINE, "ticks": [USDM], "event_window": {"start": 0, "stop": 2000}}, 1, INPUTS)]
    out = SerialExecutor().run(runs, TrialStore(tmp_path / "store.jsonl", code_version="test"))
    assert [r.status for r in out] == ["failed", "ok"]
    assert out[0].error is not None and out[0].error.startswith("E_TRIAL_BAD_PARAMS")


def test_base_params_pins_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    common, inputs = base_params("bench/configs/baseline.yaml", ["fixtures/real/binance/usdm/btcusdt_20240718.gz"],
                                 venue="binance-usdm", symbol=None)
    assert common == {"config": BASELINE, "ticks": [USDM], "venue": "binance-usdm"}
    assert inputs == INPUTS
    res = backtest_trial({**common, "event_window": {"start": 0, "stop": 1000}}, 3, inputs)
    assert res["events"] == 1000 and res["seed"] == 3
    with pytest.raises(MmkitError) as err:
        base_params(BASELINE, [str(tmp_path / "nope.gz")])
    assert err.value.code == "E_IO_MISSING"
    with pytest.raises(ValueError):
        base_params(BASELINE, [USDM], windw=1)
