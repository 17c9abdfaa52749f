"""Walk-forward library: split planning by time and by events on the real USD-M recording,
option checks, metrics and their aggregation, gates, and the selection logic (train best,
out-of-sample validation only, skipped splits, failed trials, champion ties) driven by a
fake trial runner so every number is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mmkit.errors import MmkitError
from mmkit.research import walkforward as wf
from mmkit.research.executors import Trial, TrialResult
from mmkit.research.trials import load_events

ROOT = Path(__file__).resolve().parents[2]
USDM = str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240718.gz")
BASELINE = str(ROOT / "bench/configs/baseline.yaml")
GRID = str(ROOT / "fixtures/research/wf_grid.yaml")
MIN = wf.NS_PER_MIN


@pytest.fixture(scope="module")
def data() -> Any:
    return load_events([USDM])


def req(**kw: Any) -> wf.WfRequest:
    return wf.WfRequest((USDM,), BASELINE, **kw)


def code_of(fn: Any, *args: Any) -> str:
    with pytest.raises(MmkitError) as err:
        fn(*args)
    assert "\n" not in err.value.line()
    return err.value.code


# ----------------------------------------------------------------------------- planning
def test_time_splits_roll_by_the_validation_window(data: Any) -> None:
    mode, pairs, rng = wf.plan_windows(req(train_minutes=1, validate_minutes=0.5), data)
    assert mode == "time" and len(pairs) == 3  # 178 s of data: 60 + 30 s, stepping 30 s
    assert (rng.start_ns, rng.end_ns, rng.events) == (data.first_ts, data.last_ts + 1, data.n_events)
    for k, (train, val) in enumerate(pairs):
        assert train.start_ns == data.first_ts + k * MIN // 2
        assert train.end_ns == val.start_ns == train.start_ns + MIN
        assert val.end_ns == val.start_ns + MIN // 2 <= data.last_ts + 1
        assert (train.first, train.stop) == data.index_window(train.start_ns, train.end_ns)
        assert train.stop == val.first and val.events > 0
    _, stepped, _ = wf.plan_windows(req(train_minutes=1, validate_minutes=0.5, step_minutes=1), data)
    assert [p[0].start_ns - data.first_ts for p in stepped] == [0, MIN]
    _, hours, _ = wf.plan_windows(req(train_hours=1 / 64, validate_hours=1 / 128), data)  # 56.25 s + 28.125 s
    assert len(hours) == 4 and hours[0][0].end_ns - hours[0][0].start_ns == 56_250_000_000
    assert hours[1][0].start_ns - hours[0][0].start_ns == hours[0][1].end_ns - hours[0][1].start_ns == 28_125_000_000


def test_start_and_end_bound_the_range(data: Any) -> None:
    from mmkit.clock import iso_from_ns

    start = iso_from_ns(data.first_ts + MIN // 2)
    _, pairs, rng = wf.plan_windows(req(train_minutes=1, validate_minutes=0.5, start=start), data)
    assert rng.start_ns == data.first_ts + MIN // 2 and len(pairs) == 2
    _, pairs, _ = wf.plan_windows(req(train_minutes=1, validate_minutes=0.5, start="2024-07-18T00:00:00Z",
                                      end=str(data.first_ts + 2 * MIN)), data)
    assert len(pairs) == 2 and pairs[0][0].start_ns == data.first_ts  # clipped to the data
    assert code_of(wf.plan_windows, req(train_minutes=1, validate_minutes=0.5, start="2025-01-01T00:00:00Z"),
                   data) == "E_WF_WINDOW"
    assert code_of(wf.plan_windows, req(train_minutes=3, validate_minutes=0.5), data) == "E_WF_WINDOW"


def test_event_splits_step_by_the_test_size(data: Any) -> None:
    mode, pairs, _ = wf.plan_windows(req(train=3000, test=2000), data)
    assert mode == "events" and len(pairs) == 4  # (4 - 1) x 2000 + 5000 <= 11409 < 4 x 2000 + 5000
    for k, (train, val) in enumerate(pairs):
        assert (train.first, train.stop, val.first, val.stop) == (2000 * k, 2000 * k + 3000, 2000 * k + 3000,
                                                                  2000 * k + 5000)
        assert train.start_ns == data.events[train.first].ts and train.end_ns == val.start_ns
    assert code_of(wf.plan_windows, req(train=11000, test=1000), data) == "E_WF_WINDOW"


@pytest.mark.parametrize(("kw", "code"), [
    ({"train_minutes": 1, "validate_minutes": 1, "start": "2024-07-19T00:00:00Z", "end": "2024-07-18T23:59:00Z"},
     "E_WF_RANGE"),
    ({"train_minutes": 1, "validate_minutes": 1, "start": "2024-07-19T00:00:00Z", "end": "2024-07-19T00:00:00Z"},
     "E_WF_RANGE"),
    ({"train_minutes": 1, "validate_minutes": 1, "start": "noon"}, "E_WF_BAD_TIME"),
    ({"train_minutes": 1}, "E_USAGE"),
    ({"train_minutes": 1, "train_hours": 1, "validate_minutes": 1}, "E_USAGE"),
    ({"train_minutes": 0, "validate_minutes": 1}, "E_USAGE"),
    ({"train_minutes": 1, "validate_minutes": 1, "train": 10, "test": 10}, "E_USAGE"),
    ({"train": 10}, "E_USAGE"),
    ({"train": 10, "test": 10, "start": "2024-07-18T23:58:00Z"}, "E_USAGE"),
    ({"train": 10, "test": 10, "method": "random", "trials": 3}, "E_USAGE"),
    ({"train": 10, "test": 10, "method": "bayes"}, "E_USAGE"),
    ({"train": 10, "test": 10, "lambda_cvar": -1}, "E_USAGE"),
    ({"train": 10, "test": 10, "round_dp": 13}, "E_USAGE"),
])
def test_bad_options_are_refused_before_reading_anything(kw: dict[str, Any], code: str) -> None:
    assert code_of(wf.check_request, req(**kw)) == code


def test_parse_time_accepts_iso_and_ns() -> None:
    ns = 1721347080 * 10**9
    assert wf.parse_time("2024-07-18T23:58:00Z", "--start") == ns
    assert wf.parse_time("2024-07-18T23:58:00", "--start") == ns
    assert wf.parse_time("2024-07-19T01:58:00+02:00", "--start") == ns
    assert wf.parse_time("2024-07-18T23:58:00.123456Z", "--start") == ns + 123_456_000
    assert wf.parse_time(str(ns + 7), "--end") == ns + 7


def test_split_seeds_are_fixed_and_distinct() -> None:
    seeds = [wf.split_seed(42, i) for i in range(50)]
    assert seeds == [wf.split_seed(42, i) for i in range(50)] and len(set(seeds)) == 50
    assert wf.split_seed(43, 0) != seeds[0]


def test_plan_validates_grid_values_and_draws_per_split(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy.fixed.half_spread_ticks: [2, -3]\n")
    assert code_of(wf.plan_walkforward, req(grid=str(bad), train=3000, test=2000)) == "E_SWEEP_BAD_VALUE"
    plan = wf.plan_walkforward(req(grid=GRID, train=3000, test=2000))
    assert [len(s.candidates) for s in plan.splits] == [4] * 4 and plan.splits[0].candidates == plan.splits[3].candidates
    rnd = tmp_path / "rnd.yaml"
    rnd.write_text("strategy.fixed.half_spread_ticks: {min: 1, max: 50}\n")
    plan = wf.plan_walkforward(req(grid=str(rnd), method="random", trials=3, train=3000, test=2000, seed=5))
    draws = [tuple(c["strategy.fixed.half_spread_ticks"] for c in s.candidates) for s in plan.splits]
    assert len(set(draws)) > 1 and all(len(d) == 3 for d in draws)
    again = wf.plan_walkforward(req(grid=str(rnd), method="random", trials=3, train=3000, test=2000, seed=5))
    assert [tuple(c["strategy.fixed.half_spread_ticks"] for c in s.candidates) for s in again.splits] == draws
    assert [t.trial_id for t in plan.train_trials()][:4] == ["s0000-t00000", "s0000-t00001", "s0000-t00002",
                                                             "s0001-t00000"]
    t = plan.train_trials()[0]
    assert t.params["event_window"] == {"start": 0, "stop": 3000} and t.seed == 5
    assert {p for p, _ in t.inputs} == {*t.params["ticks"], t.params["config"]}


# ----------------------------------------------------------------------------- metrics and gates
def result(net: float, cvar: float, fills: int = 4, hit: float = 0.5, taker_pct: float = 25.0, **kw: Any) -> dict[str, Any]:
    base = {"net_pnl_usd": net, "cvar95_usd": cvar, "hit_rate": hit, "maker_share_pct": 100.0 - taker_pct,
            "fills": fills, "turnover_usd": 1000.0, "sharpe": 1.0, "max_drawdown_usd": 0.5, "order_age_p95_ms": 90.0,
            "events": 100, "net_bps": 99.0, "taker_share_pct": taker_pct}
    return {**base, **kw}


def test_window_metrics_are_base_units_with_the_objective() -> None:
    m = wf.window_metrics(result(1.23456789, -2.0, taker_pct=30.0), lam=0.5, dp=4)
    assert set(m) == {*wf.METRICS, "objective"}
    assert m["net_pnl_usd"] == 1.2346 and m["maker_share"] == 0.7 and m["objective"] == 0.2346
    assert "net_bps" not in m and "taker_share_pct" not in m


def test_aggregate_averages_pnl_and_weights_rates_by_fills() -> None:
    a = wf.window_metrics(result(2.0, -1.0, fills=1, hit=1.0, taker_pct=0.0), 0.2, 6)
    b = wf.window_metrics(result(-1.0, -3.0, fills=3, hit=0.0, taker_pct=100.0, max_drawdown_usd=2.0), 0.2, 6)
    agg = wf.aggregate([a, b], lam=0.2, dp=6)
    assert agg["windows"] == 2 and agg["net_pnl_usd"] == 0.5 and agg["cvar95_usd"] == -2.0
    assert agg["objective"] == pytest.approx(0.1) and agg["fills"] == 4
    assert agg["hit_rate"] == 0.25 and agg["maker_share"] == 0.25
    assert agg["turnover_usd"] == 2000.0 and agg["max_drawdown_usd"] == 2.0 and agg["events"] == 200
    zero = wf.aggregate([wf.window_metrics(result(0.0, 0.0, fills=0), 0.2, 6)], 0.2, 6)
    assert zero["hit_rate"] == zero["maker_share"] == 0.0


def test_gates_judge_each_metric_with_the_cvar_loss_limit() -> None:
    metrics = {"hit_rate": 0.6, "maker_share": 0.69, "cvar95_usd": -1000.0, "net_pnl_usd": 150.0}
    gates = wf.judge(req(train=1, test=1), metrics)
    assert [(g["gate"], g["metric"], g["op"], g["threshold"], g["passed"]) for g in gates] == [
        ("--gate-min-hit", "hit_rate", ">=", 0.6, True),  # equal passes
        ("--gate-min-maker", "maker_share", ">=", 0.7, False),
        ("--gate-max-cvar", "cvar95_usd", ">=", -1000.0, True),
        ("--gate-min-pnl", "net_pnl_usd", ">=", 100.0, True)]
    gates = wf.judge(req(train=1, test=1, gate_max_cvar=0.0), {**metrics, "cvar95_usd": -0.01})
    assert gates[2]["threshold"] == 0.0 and not gates[2]["passed"]


# ----------------------------------------------------------------------------- selection, with a fake runner
def fake_plan(n_splits: int, candidates: list[dict[str, Any]], **kw: Any) -> wf.WfPlan:
    """Splits whose windows are named by their start (train k*10, validate k*10+5), no data."""
    splits = [wf.Split(k, wf.Window(k * 10, k * 10 + 5, 0, 5), wf.Window(k * 10 + 5, k * 10 + 10, 5, 10), k,
                       [dict(c) for c in candidates]) for k in range(n_splits)]
    r = wf.WfRequest(("d.gz",), "c.yaml", grid="g.yaml", train_minutes=1, validate_minutes=1, **kw)
    return wf.WfPlan(r, None, {}, None, "time", wf.Window(0, 100, 0, 100), splits,  # type: ignore[arg-type]
                     {"config": "/c.yaml", "ticks": ["/d.gz"]}, (("/d.gz", "0" * 64), ("/c.yaml", "1" * 64)),
                     "2" * 64, [{"path": "d.gz", "sha256": "0" * 64}])


def fake_runner(table: dict[tuple[int, int], Any], log: list[list[str]]) -> wf.Phase:
    """``table[(window start, x)]`` is a result dict, or an error string for a failed trial."""
    def run(label: str, trials: list[Trial]) -> list[TrialResult]:
        log.append([t.trial_id for t in trials])
        out = []
        for t in trials:
            got = table[(t.params["window"]["start_ns"], t.params["overrides"]["x"])]
            ok = isinstance(got, dict)
            out.append(TrialResult(t.trial_id, "k", "ok" if ok else "failed", got if ok else None, None if ok else got))
        return sorted(out, key=lambda r: r.trial_id)
    return run


def test_train_best_is_validated_only_on_windows_it_never_saw() -> None:
    # train windows start at 0, 10, 20; validation windows at 5, 15, 25
    table = {(0, 1): result(1.0, 0.0), (0, 2): result(0.0, 0.0),
             (10, 1): result(0.0, 0.0), (10, 2): result(2.0, 0.0),
             (20, 1): result(0.0, -10.0), (20, 2): result(3.0, -1.0),
             (5, 1): result(1.0, -1.0), (15, 1): result(-5.0, -1.0), (25, 1): result(-5.0, -1.0),
             (15, 2): result(0.5, -1.0), (25, 2): result(0.5, -1.0), (5, 2): result(99.0, 0.0)}
    log: list[list[str]] = []
    plan = fake_plan(3, [{"x": 1}, {"x": 2}], lambda_cvar=1.0, gate_min_hit=0.0, gate_min_maker=0.0, gate_min_pnl=0.0)
    out = wf.run_walkforward(plan, fake_runner(table, log))
    assert [s.best for s in plan.splits] == [0, 1, 1]
    assert log[1] == ["v0000-c0000", "v0001-c0000", "v0002-c0000", "v0001-c0001", "v0002-c0001"]  # never (5, 2)
    first, second = out.candidates
    assert (first.params, first.windows, first.metrics["net_pnl_usd"]) == ({"x": 1}, [0, 1, 2], -3.0)
    assert (second.params, second.windows, second.metrics["objective"]) == ({"x": 2}, [1, 2], -0.5)
    assert out.champion is second and all(g["passed"] for g in out.gates) and out.verdict == "PASS"
    # the classic walk-forward estimate: each split's own best on its own window
    assert out.walkforward is not None and out.walkforward["windows"] == 3
    assert out.walkforward["net_pnl_usd"] == round((1.0 + 0.5 + 0.5) / 3, 6)


def test_skipped_and_failed_splits_are_left_out_with_reasons() -> None:
    table = {(0, 1): result(1.0, 0.0), (10, 1): "boom", (20, 1): result(1.0, 0.0), (30, 1): result(1.0, 0.0),
             (5, 1): result(1.0, 0.0, fills=1), (25, 1): result(2.0, 0.0, fills=0), (35, 1): "val boom",
             (15, 1): result(50.0, 0.0)}
    plan = fake_plan(4, [{"x": 1}], min_fills=1, gate_min_hit=0.0, gate_min_maker=0.0, gate_min_pnl=1.0)
    out = wf.run_walkforward(plan, fake_runner(table, []))
    reasons = [s.reasons for s in plan.splits]
    assert reasons[0] == []
    assert reasons[1] == ["every train trial failed (first error: boom)"]
    assert reasons[2] == ["the validation made 0 fills, fewer than --min-fills 1"]
    assert reasons[3] == ["the validation trial failed: val boom"]
    assert out.champion is not None and out.champion.windows == [0]  # window 15 belongs to a skipped split
    assert out.champion.metrics["net_pnl_usd"] == 1.0 and out.verdict == "PASS"
    doc = wf.summary_artifact(out)
    assert [s["split"] for s in doc["skipped_splits"]] == [1, 2, 3]
    assert doc["splits"][1]["best_params"] is None and doc["splits"][2]["validation"]["fills"] == 0


def test_all_train_trials_failing_is_an_error_and_all_skipped_is_no_champion() -> None:
    plan = fake_plan(2, [{"x": 1}])
    assert code_of(wf.run_walkforward, plan, fake_runner({(0, 1): "bad", (10, 1): "bad"}, [])) == "E_WF_TRIALS_FAILED"
    plan = fake_plan(2, [{"x": 1}], min_fills=5)
    table = {(0, 1): result(1.0, 0.0), (10, 1): result(1.0, 0.0), (5, 1): result(1.0, 0.0, fills=4),
             (15, 1): result(1.0, 0.0, fills=4)}
    out = wf.run_walkforward(plan, fake_runner(table, []))
    assert out.champion is None and out.gates == [] and out.verdict == "FAIL" and out.walkforward is None
    assert "No champion" in wf.render_report(wf.summary_artifact(out), plan.request.repro())


def test_ties_go_to_the_earlier_candidate_and_split() -> None:
    table = {(0, 1): result(1.0, 0.0), (0, 2): result(1.0, 0.0), (5, 1): result(1.0, 0.0), (5, 2): result(1.0, 0.0)}
    plan = fake_plan(1, [{"x": 2}, {"x": 1}])
    out = wf.run_walkforward(plan, fake_runner(table, []))
    assert plan.splits[0].best == 0 and out.champion is not None and out.champion.params == {"x": 2}


def test_repro_lists_every_non_default_option() -> None:
    r = wf.WfRequest(("a b.gz",), "cfg.yaml", grid="g.yaml", seed=3, train_minutes=1.0, validate_minutes=0.5,
                     gate_min_hit=0.0, out="out dir")
    assert r.repro() == ("mmkit wf --ticks 'a b.gz' --config cfg.yaml --grid g.yaml --seed 3 --train-minutes 1.0 "
                         "--validate-minutes 0.5 --gate-min-hit 0.0 --out 'out dir'")
