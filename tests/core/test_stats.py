"""Statistics: every metric by hand on a small session, the building blocks (nearest-rank
percentiles, CVaR tail, Sharpe/Sortino, drawdown), markouts through the signals
tracker, gates, and property tests that every output is finite and deterministic."""

from __future__ import annotations

import json
import math
import statistics
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.core.instruments import Instrument
from mmkit.core.ledger import Ledger
from mmkit.core.signals import MarkoutStats, MarkoutTracker
from mmkit.core.stats import (
    DEFAULT_GATES,
    GATE_OPS,
    STATS_KEYS,
    GateResult,
    GateSpec,
    OrderRecord,
    Stats,
    compute_stats,
    cvar_e8,
    cvar_tail_count,
    evaluate_gates,
    max_drawdown,
    merge_markouts,
    nearest_rank,
    order_ages_ns,
    percentile_nearest_rank,
    periods_per_year,
    sharpe_ratio,
    sortino_ratio,
)
from mmkit.core.types import BUY, SELL, Fill

D = Decimal
F = Fraction
S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S  # on the 1 s grid
E8 = 100_000_000
X = Instrument("X", D("1"), D("1"))
SQRT_PPY = math.sqrt(365 * 86_400)  # 1 s intervals


def at(seconds: float) -> int:
    return T0 + round(seconds * 1000) * MS


# ----------------------------------------------------------------------------- the session
def session():
    """A 4-second session, every number worked out in the comments."""
    L = Ledger({"X": X}, equity_interval_ms=1000)
    mk = MarkoutTracker((200, 500))
    L.sample(at(0))  # equity 0
    mk.on_mid(at(0), 200)  # mid 100
    f1 = Fill(at(0.5), "o1", "X", BUY, 100, 10, "maker", D("-0.1"), 10)  # rebate 0.1
    L.on_fill(f1)
    mk.on_fill(f1.ts, f1.side, f1.price)
    mk.on_mid(at(0.6), 201)  # mid 100.5: the 200 ms markout of f1 is +50 bps
    mk.on_mid(at(0.9), 198)  # mid 99: its 500 ms markout is -100 bps
    L.mark("X", 99, at(0.9))
    L.sample(at(1))  # equity -10 + 0.1 = -9.9, exposure 990
    L.sample(at(2))  # unchanged
    f2 = Fill(at(2.5), "o4", "X", SELL, 102, 10, "taker", D("0.51"), 10)  # 5 bps of 1020
    L.on_fill(f2)  # realized 10 x (102 - 100) = 20
    L.mark("X", 102, at(2.5))
    mk.on_mid(at(2.5), 204)  # mid 102: 200 ms markout of f2 is 0
    mk.on_fill(f2.ts, f2.side, f2.price)
    mk.on_mid(at(2.8), 206)  # mid 103: 500 ms markout of f2 is -(1/102) x 1e4 = -98.0392 bps
    L.sample(at(4))  # 3 s and 4 s: 20 + 0.1 - 0.51 = 19.59, flat
    mk.advance(at(4))
    orders = [
        OrderRecord("o1", "X", BUY, at(0.1), at(0.2), at(0.5), 10, 10),  # age 300 ms, filled
        OrderRecord("o2", "X", SELL, at(0.1), at(0.15), at(0.4), 10, 0, canceled=True, replaces=1),  # 250 ms
        OrderRecord("o3", "X", SELL, at(0.4), 0, at(0.45), 10, 0, rejected=True),  # never placed: no age
        OrderRecord("o4", "X", SELL, at(0.6), at(0.7), at(2.5), 10, 10),  # 1800 ms, filled
        OrderRecord("o5", "X", BUY, at(3), at(3.1), 0, 10, 0),  # still open at the end: 900 ms
    ]
    return L, orders, mk


def test_every_metric_of_a_small_session_by_hand():
    L, orders, mk = session()
    assert L.equity_e8 == [0, -990_000_000, -990_000_000, 1_959_000_000, 1_959_000_000]
    st_ = compute_stats(L, orders, mk.all_stats(), start_ns=at(0), end_ns=at(4), starting_capital_usd=D(1000))
    s = st_.to_dict()
    assert list(s) == list(STATS_KEYS)
    assert s["net_pnl_usd"] == 19.59
    assert s["gross_pnl_usd"] == 20.0
    assert (s["fees_usd"], s["rebates_usd"], s["turnover_usd"]) == (0.51, 0.1, 2020.0)
    assert s["net_bps"] == float(F("19.59") / 2020 * 10_000)  # 96.98 bps
    assert s["taker_share_pct"] == float(F(1020 * 100, 2020))  # 50.495 %
    assert s["fill_rate"] == 0.5  # o1, o4 of the 4 placed
    assert s["hit_rate"] == 1.0  # one closing fill, +20
    # ages sorted [250, 300, 900, 1800]: ranks ceil(.5 x 4) = 2, ceil(.95 x 4) = 4, ceil(.99 x 4) = 4
    assert (s["order_age_p50_ms"], s["order_age_p95_ms"], s["order_age_p99_ms"]) == (300.0, 1800.0, 1800.0)
    diffs = [-9.9, 0.0, 29.49, 0.0]
    assert s["sharpe"] == pytest.approx(statistics.mean(diffs) / statistics.stdev(diffs) * SQRT_PPY, rel=1e-12)
    assert s["sortino"] == pytest.approx(statistics.mean(diffs) / math.sqrt(9.9**2 / 4) * SQRT_PPY, rel=1e-12)
    assert s["max_drawdown_usd"] == 9.9  # from the starting 0
    assert s["max_drawdown_ratio"] == float(F("9.9") / 1000)
    assert s["cvar95_usd"] == -9.9  # ceil(5% of 4) = 1 worst change
    assert s["markout_200ms_bps"] == 25.0  # (50 + 0) / 2
    assert s["markout_500ms_bps"] == float(F(-1_000_000 - 980_392, 2 * 10_000))  # truncated per fill
    assert s["adverse_fill_rate"] == 1.0  # both 500 ms markouts < 0
    assert s["position_max_abs_usd"] == 1000.0  # 10 lots at 100 right after the buy
    assert s["position_mean_abs_usd"] == float(F(0 + 990 + 990 + 0 + 0, 5))
    # 4 s window = 1/15 min: 5 creates, 1 cancel, 1 replace
    assert (s["quotes_per_min"], s["cancels_per_min"], s["replaces_per_min"]) == (75.0, 15.0, 15.0)
    assert (s["fills"], s["orders"]) == (2, 5)
    json.dumps(s, allow_nan=False)  # the artifact writer's rule
    results = evaluate_gates(st_)
    assert [(r.name, r.passed) for r in results] == [
        ("net_bps", True), ("taker_share_pct", False), ("order_age_p95_ms", False)]
    assert results[2] == GateResult("order_age_p95_ms", 1800.0, 350.0, "<=", False)


def test_an_empty_run_is_all_zeros_not_nan():
    L = Ledger({"X": X})
    s = compute_stats(L, start_ns=0, end_ns=0, starting_capital_usd=1).to_dict()
    assert all(v == 0 for v in s.values())
    json.dumps(s, allow_nan=False)


def test_compute_stats_refuses_bad_windows_and_capital():
    L = Ledger({"X": X})
    with pytest.raises(ValueError, match="before"):
        compute_stats(L, start_ns=10, end_ns=0, starting_capital_usd=1)
    for cap in (0, -5, D("NaN")):
        with pytest.raises(ValueError, match="capital"):
            compute_stats(L, start_ns=0, end_ns=1, starting_capital_usd=cap)


# ----------------------------------------------------------------------------- building blocks
def test_nearest_rank_percentiles():
    assert nearest_rank(20, 95) == 19 and nearest_rank(20, 95.0) == 19  # no float fuzz: 0.95 x 20 = 19
    assert nearest_rank(1, 50) == nearest_rank(1, 99) == 1
    assert nearest_rank(100, 99) == 99 and nearest_rank(101, 99) == 100
    assert nearest_rank(4, 50) == 2 and nearest_rank(3, 50) == 2
    assert nearest_rank(10, 0.001) == 1 and nearest_rank(10, 100) == 10
    assert percentile_nearest_rank([5, 1, 4, 2, 3], 50) == 3
    assert percentile_nearest_rank([], 95) == 0
    with pytest.raises(ValueError):
        nearest_rank(0, 50)
    with pytest.raises(ValueError):
        nearest_rank(10, 0)
    with pytest.raises(ValueError):
        nearest_rank(10, 101)


def test_cvar_tail_and_value():
    assert [cvar_tail_count(n) for n in (0, 1, 19, 20, 21, 40, 41, 100)] == [0, 1, 1, 1, 2, 2, 3, 5]
    assert cvar_e8([]) == 0
    assert cvar_e8([7]) == 7  # one observation is its own tail
    diffs = [3, -8, 1, -2, 0] * 4 + [-11]  # n = 21: the worst 2 are -11 and -8
    assert cvar_e8(diffs) == F(-19, 2)
    assert cvar_e8([5, 6, 7]) == 5  # a tail of gains stays positive (signed, as the seed stores it)


def test_sharpe_and_sortino_by_hand():
    assert sharpe_ratio([1, 3], 1) == pytest.approx(2 / math.sqrt(2), rel=1e-15)
    assert sharpe_ratio([1, 3], 4) == pytest.approx(2 * 2 / math.sqrt(2), rel=1e-15)
    assert sharpe_ratio([1, 2, 3, 4], 1) == pytest.approx(2.5 / statistics.stdev([1, 2, 3, 4]), rel=1e-15)
    assert sharpe_ratio([-1, -3], 1) == pytest.approx(-2 / math.sqrt(2), rel=1e-15)
    assert sortino_ratio([2, -1, 2, -1], 1) == pytest.approx(0.5 / math.sqrt(0.5), rel=1e-15)
    assert sortino_ratio([-2, -1], 1) == pytest.approx(-1.5 / math.sqrt(2.5), rel=1e-15)
    # undefined -> 0, never NaN or inf
    for f in (sharpe_ratio, sortino_ratio):
        assert f([], 1) == f([5], 1) == f([0, 0, 0], 1) == 0.0
    assert sharpe_ratio([2, 2, 2], 1) == 0.0  # no variance
    assert sortino_ratio([1, 2, 3], 1) == 0.0  # no losing interval
    assert periods_per_year(1000) == 31_536_000 and periods_per_year(60_000) == 525_600
    with pytest.raises(ValueError):
        periods_per_year(0)


def test_max_drawdown_usd_and_ratio():
    dd, ratio = max_drawdown([0, 100, 50, 150, 30, 80], 1000)
    assert dd == 120 and ratio == F(120, 1150)
    # the largest USD fall and the largest relative fall happen at different times
    dd, ratio = max_drawdown([-100, 10_000, 9_850], 1000)
    assert dd == 150 and ratio == F(100, 1000)
    assert max_drawdown([], 1) == (0, 0) and max_drawdown([1, 2, 3], 1) == (0, 0)
    assert max_drawdown([-5], 10) == (5, F(1, 2))  # the start counts as the first peak (0)
    with pytest.raises(ValueError):
        max_drawdown([1], 0)


def test_order_ages_and_fill_rate_rules():
    recs = [
        OrderRecord("a", "X", BUY, 0, 10 * MS, 110 * MS, 1, 0, canceled=True),
        OrderRecord("b", "X", BUY, 0, 0, 50 * MS, 1, 0, rejected=True),
        OrderRecord("c", "X", BUY, 5 * MS, 0, 8 * MS, 1, 1),  # filled before its ack: aged from creation
        OrderRecord("d", "X", BUY, 0, 900 * MS, 0, 1, 0),  # open at the end
    ]
    assert order_ages_ns(recs, 1_000 * MS) == [100 * MS, 3 * MS, 100 * MS]
    assert [r.was_placed for r in recs] == [True, False, True, True]


def test_markouts_merge_across_symbols():
    a = MarkoutStats(500, 3, 30_000, 2, 1)
    b = MarkoutStats(500, 1, -50_000, 0, 1)
    c = MarkoutStats(200, 2, 10, 1, 0)
    m = merge_markouts([a, c, b])
    assert list(m) == [200, 500]
    assert m[500] == MarkoutStats(500, 4, -20_000, 2, 2)
    assert m[500].adverse_fill_ratio == 0.5


def test_adverse_horizon_is_a_parameter():
    L = Ledger({"X": X})
    mks = [MarkoutStats(500, 4, 0, 3, 1), MarkoutStats(5000, 4, 0, 1, 3)]
    s500 = compute_stats(L, [], mks, start_ns=0, end_ns=1, starting_capital_usd=1)
    s5k = compute_stats(L, [], mks, start_ns=0, end_ns=1, starting_capital_usd=1, adverse_horizon_ms=5000)
    assert (s500.adverse_fill_rate, s5k.adverse_fill_rate) == (0.25, 0.75)
    assert s500.markout_200ms_bps == 0.0  # no 200 ms samples: 0, not NaN


# ----------------------------------------------------------------------------- the float boundary
def test_net_bps_is_exact_at_the_gate_boundary():
    # net 1.13 USD on 4520 USD turnover is exactly 2.5 bps; naive float math says 2.4999999999999996
    assert 1.13 / 4520.0 * 1e4 < 2.5
    inst = Instrument("Y", D("0.005"), D("1"))
    L = Ledger({"Y": inst})
    L.on_fill(Fill(0, "a", "Y", BUY, inst.px_to_ticks("2259.435"), 1, "maker"))
    L.on_fill(Fill(1, "b", "Y", SELL, inst.px_to_ticks("2260.565"), 1, "maker"))
    s = compute_stats(L, start_ns=0, end_ns=1, starting_capital_usd=1000)
    assert (s.net_pnl_usd, s.turnover_usd, s.net_bps) == (1.13, 4520.0, 2.5)
    assert evaluate_gates(s)[0].passed


def test_stats_refuse_non_finite_values():
    vals = dict.fromkeys(STATS_KEYS, 0.0)
    vals["fills"] = vals["orders"] = 0
    Stats(**vals)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            Stats(**{**vals, "sharpe": bad})
    with pytest.raises(TypeError):
        Stats(**{**vals, "net_pnl_usd": D("1")})


# ----------------------------------------------------------------------------- gates
def test_gates_defaults_boundaries_and_mappings():
    assert [(g.name, g.op, g.threshold) for g in DEFAULT_GATES] == [
        ("net_bps", ">=", 2.5), ("taker_share_pct", "<=", 15.0), ("order_age_p95_ms", "<=", 350.0)]
    at_limit = {"net_bps": 2.5, "taker_share_pct": 15.0, "order_age_p95_ms": 350.0}
    assert all(r.passed for r in evaluate_gates(at_limit))  # the threshold itself passes
    worse = {"net_bps": 2.4999, "taker_share_pct": 15.0001, "order_age_p95_ms": 350.001}
    assert not any(r.passed for r in evaluate_gates(worse))
    # a mapping takes each metric's direction from GATE_OPS, in the mapping's order
    res = evaluate_gates({"cvar95_usd": -700.0, "hit_rate": 0.5}, {"hit_rate": 0.6, "cvar95_usd": -1000})
    assert [(r.name, r.op, r.passed) for r in res] == [("hit_rate", ">=", False), ("cvar95_usd", ">=", True)]
    assert GATE_OPS["adverse_fill_rate"] == "<="
    res = evaluate_gates({"sharpe": 1.0}, [GateSpec("sharpe", ">", 1.0)])
    assert res == [GateResult("sharpe", 1.0, 1.0, ">", False)]
    assert evaluate_gates({}, []) == []
    with pytest.raises(ValueError, match="direction"):
        evaluate_gates({"fills": 3}, {"fills": 1})
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_gates({"net_bps": 3.0}, [GateSpec("nope", ">=", 1)])
    with pytest.raises(ValueError, match="finite"):
        evaluate_gates({"net_bps": math.nan})
    with pytest.raises(ValueError):
        GateSpec("net_bps", "==", 1)
    with pytest.raises(ValueError):
        GateSpec("net_bps", ">=", math.inf)


# ----------------------------------------------------------------------------- properties
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-10**15, 10**15), max_size=60), st.integers(1, 10**15))
def test_curve_metrics_are_finite_and_consistent(equity, capital):
    diffs = [b - a for a, b in zip(equity, equity[1:])]
    sh = sharpe_ratio(diffs, periods_per_year(1000))
    so = sortino_ratio(diffs, periods_per_year(1000))
    assert math.isfinite(sh) and math.isfinite(so)
    if diffs and sum(diffs) != 0 and len(diffs) > 1:
        assert (sh == 0 or (sh > 0) == (sum(diffs) > 0)) and (so == 0 or (so > 0) == (sum(diffs) > 0))
    dd, ratio = max_drawdown(equity, capital)
    assert dd >= 0 and ratio >= 0 and math.isfinite(float(ratio))
    assert dd >= max([0] + [-e for e in equity])  # at least the fall from the starting 0
    c = cvar_e8(diffs)
    if diffs:
        assert min(diffs) <= c <= F(sum(diffs), len(diffs))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=50), st.integers(1, 100), st.integers(1, 100))
def test_nearest_rank_is_an_observed_value_and_monotonic(values, p, q):
    lo, hi = min(p, q), max(p, q)
    assert percentile_nearest_rank(values, lo) in values
    assert percentile_nearest_rank(values, lo) <= percentile_nearest_rank(values, hi)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(90, 110), st.integers(1, 20),
                       st.sampled_from(["maker", "taker"]), st.integers(-50, 500), st.integers(85, 115)),
             max_size=30),
    st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9), st.booleans(), st.integers(0, 3)), max_size=20),
)
def test_compute_stats_is_finite_and_deterministic(rows, recs):
    def run():
        L = Ledger({"X": X}, equity_interval_ms=100)
        mk = MarkoutTracker()
        for i, (side, px, qty, liq, fee, mid) in enumerate(rows):
            t = i * 150 * MS
            L.sample(t)
            mk.on_mid(t, 2 * mid)
            L.mark("X", mid, t)
            L.on_fill(Fill(t, f"o{i}", "X", side, px, qty, liq, D(fee).scaleb(-4), qty))
            mk.on_fill(t, side, px)
        end = len(rows) * 150 * MS + S
        L.sample(end)
        mk.advance(end)
        orders = [OrderRecord(f"r{i}", "X", BUY, a, a, a + b, 5, 5 if filled else 0, not filled, False, n)
                  for i, (a, b, filled, n) in enumerate(recs)]
        return compute_stats(L, orders, mk.all_stats(), start_ns=0, end_ns=end, starting_capital_usd=500).to_dict()

    a, b = run(), run()
    assert a == b
    assert json.dumps(a, allow_nan=False, sort_keys=True) == json.dumps(b, allow_nan=False, sort_keys=True)
    assert all(math.isfinite(v) for v in a.values())
    assert 0 <= a["taker_share_pct"] <= 100 and 0 <= a["fill_rate"] <= 1 and 0 <= a["hit_rate"] <= 1
    assert 0 <= a["adverse_fill_rate"] <= 1 and a["max_drawdown_usd"] >= 0
    assert a["order_age_p50_ms"] <= a["order_age_p95_ms"] <= a["order_age_p99_ms"]
    assert a["net_pnl_usd"] == pytest.approx(a["gross_pnl_usd"] - a["fees_usd"] + a["rebates_usd"], abs=1e-9)
