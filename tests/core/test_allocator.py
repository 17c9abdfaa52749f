"""Portfolio allocator: seed formulas with their worked examples, invariants as properties.

Config sections come from the real ``mmkit.config_schema`` dataclasses, so the defaults
the docs promise are the ones exercised.  ``dataclasses.replace`` builds variants.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkit.config_schema import (
    Config,
    CostConfig,
    CostOverride,
    PortfolioConfig,
    PosSkewConfig,
    SmoothingConfig,
)
from mmkit.core.allocator import (
    RECOVER_TICKS,
    VOL_EPS,
    WEIGHT_SUM_TOL,
    Allocator,
    AllocatorInputs,
    CostCalibrator,
    DecayedRate,
    DecayedSum,
    InvariantError,
    SoftBudget,
    SymbolInputs,
    check_weights,
    cost_attenuation,
    delta_cap_usd,
    drawdown_bps,
    fill_rate_attenuation,
    fit_weights,
    inverse_vol_raw,
    liquidity_attenuation,
    max_levels_for,
    pos_skew_breached,
    risk_parity_raw,
    slippage_bps,
    soft_factor_permille,
    step_backoff,
    turnover_factor,
)

NS = 1_000_000_000
MIN = 60 * NS
# The seed preview's five symbols and vols ("Portfolio Allocator (L1/L2)", Preview CLI).
PREVIEW_VOLS = {"BTCUSDT": 0.025, "ETHUSDT": 0.035, "SOLUSDT": 0.045, "ADAUSDT": 0.055, "DOTUSDT": 0.065}
NO_COST = CostConfig(cost_sensitivity=0.0)  # isolates a stage from the (default-on) L6 cost stage


def pf(**kw) -> PortfolioConfig:
    return replace(PortfolioConfig(), **kw)


def inputs(vols: dict[str, float] | None = None, **kw) -> AllocatorInputs:
    vols = vols if vols is not None else PREVIEW_VOLS
    return AllocatorInputs({s: SymbolInputs(vol=v) for s, v in vols.items()}, **kw)


def assert_weights_ok(weights, lo, hi, where=""):
    s = math.fsum(weights)
    assert abs(s - 1.0) <= WEIGHT_SUM_TOL, f"{where}: weights sum to {s!r}"
    if len(weights) > 1:
        bad = [w for w in weights if not lo <= w <= hi]
        assert not bad, f"{where}: weights {bad} outside [{lo}, {hi}]"


# ----------------------------------------------------------------------------- weights: fit
def test_fit_is_proportional_when_no_clamp_binds():
    w = fit_weights([2.0, 1.0, 1.0], 0.0, 1.0)
    assert w == pytest.approx([0.5, 0.25, 0.25], abs=1e-15)


def test_fit_clamps_and_redistributes_the_excess_proportionally():
    # 10:1:1 wants 0.833.. for the first; the cap 0.5 moves the excess to the others 1:1.
    assert fit_weights([10.0, 1.0, 1.0], 0.1, 0.5) == pytest.approx([0.5, 0.25, 0.25], abs=1e-15)
    # a tiny raw weight is lifted to min_weight, the rest shrink in proportion
    w = fit_weights([1.0, 1.0, 0.001], 0.1, 0.9)
    assert w[2] == 0.1 and w[0] == pytest.approx(0.45) and w[1] == pytest.approx(0.45)


def test_fit_zero_raw_gets_min_weight_never_zero():
    w = fit_weights([0.6, 0.4, 0.0], 0.02, 0.5)
    assert w == pytest.approx([0.5, 0.48, 0.02], abs=1e-12)
    # everything positive at the cap still leaves budget: the zero ones share it
    assert fit_weights([1.0, 0.0, 0.0], 0.02, 0.5) == pytest.approx([0.5, 0.25, 0.25])
    # all zero: equal split
    assert fit_weights([0.0, 0.0, 0.0, 0.0], 0.02, 0.5) == [0.25] * 4


def test_fit_one_symbol_takes_everything_clamps_do_not_bind():
    assert fit_weights([3.0], 0.02, 0.5) == [1.0]
    check_weights([1.0], 0.02, 0.5)


def test_fit_rejects_weights_that_cannot_sum_to_one():
    with pytest.raises(ValueError, match="cannot sum to 1"):
        fit_weights([1.0, 1.0, 1.0], 0.4, 0.5)  # 3 x 0.4 > 1
    with pytest.raises(ValueError, match="cannot sum to 1"):
        fit_weights([1.0, 1.0], 0.0, 0.4)  # 2 x 0.4 < 1
    with pytest.raises(ValueError):
        fit_weights([1.0, 1.0], 0.6, 0.5)  # min > max
    with pytest.raises(ValueError):
        fit_weights([1.0, -1.0], 0.0, 1.0)
    with pytest.raises(ValueError):
        fit_weights([1.0, float("nan")], 0.0, 1.0)


def test_check_weights_raises_invariant_error():
    with pytest.raises(InvariantError, match="sum"):
        check_weights([0.5, 0.6], 0.0, 1.0)
    with pytest.raises(InvariantError, match="outside"):
        check_weights([0.7, 0.3], 0.0, 0.6)


@st.composite
def feasible(draw):
    n = draw(st.integers(1, 12))
    lo = draw(st.floats(0.0, 1.0 / n))
    hi = draw(st.floats(max(lo, 1.0 / n), 1.0))
    raw = draw(st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1e6)), min_size=n, max_size=n))
    return raw, lo, hi


@settings(max_examples=400, deadline=None)
@given(feasible())
def test_property_fit_invariants_and_proportionality(case):
    raw, lo, hi = case
    w = fit_weights(raw, lo, hi)
    assert_weights_ok(w, lo, hi)
    if len(raw) > 1 and any(r > 0 for r in raw):
        # unclamped symbols keep their raw proportions (one common scale)
        interior = [(wi, r) for wi, r in zip(w, raw) if r > 0 and lo + 1e-12 < wi < hi - 1e-12]
        scales = [wi / r for wi, r in interior]
        if len(scales) > 1:
            assert max(scales) == pytest.approx(min(scales), rel=1e-6)
        # order is preserved: more raw never means less weight
        pairs = sorted(zip(raw, w))
        assert all(b[1] >= a[1] - 1e-12 for a, b in zip(pairs, pairs[1:]))


# ----------------------------------------------------------------------------- modes
def test_manual_mode_normalizes_and_missing_symbols_get_min_weight():
    cfg = pf(mode="manual", manual_weights={"BTCUSDT": 0.6, "ETHUSDT": 0.4}, min_weight=0.02, max_weight=0.7)
    a = Allocator(cfg, SmoothingConfig())
    r = a.rebalance(inputs({"BTCUSDT": 1.0, "ETHUSDT": 1.0, "SOLUSDT": 1.0}), 0)
    assert r["SOLUSDT"].weight == 0.02
    assert r["BTCUSDT"].weight == pytest.approx(0.6 * 0.98)
    assert r["ETHUSDT"].weight == pytest.approx(0.4 * 0.98)
    # the seed's manual example exactly (two symbols, default clamps 0.02..0.5 would cap 0.6)
    cfg2 = pf(mode="manual", manual_weights={"BTCUSDT": 0.6, "ETHUSDT": 0.4}, max_weight=1.0)
    r2 = Allocator(cfg2, SmoothingConfig()).rebalance(inputs({"BTCUSDT": 1.0, "ETHUSDT": 1.0}), 0)
    assert r2.weights == pytest.approx({"BTCUSDT": 0.6, "ETHUSDT": 0.4})


def test_manual_weights_are_normalized_whatever_their_scale():
    cfg = pf(mode="manual", manual_weights={"A": 6.0, "B": 4.0}, max_weight=1.0)
    r = Allocator(cfg, SmoothingConfig()).rebalance(inputs({"A": 1.0, "B": 1.0}), 0)
    assert r.weights == pytest.approx({"A": 0.6, "B": 0.4})


def test_inverse_vol_reproduces_the_seed_preview_proportions():
    # The seed preview prints 0.4000/0.2857/0.2222/0.1818/0.1538: that is 0.01/vol, not
    # normalized (its TOTAL row says 1.0000 but the column sums to 1.2435).  mmkit keeps the
    # proportions and the sum-to-1 invariant: w = (1/vol) / sum(1/vol).
    seed_printed = {"BTCUSDT": 0.4000, "ETHUSDT": 0.2857, "SOLUSDT": 0.2222, "ADAUSDT": 0.1818, "DOTUSDT": 0.1538}
    r = Allocator(pf(cost=NO_COST), SmoothingConfig()).rebalance(inputs(), 0)
    total = sum(seed_printed.values())
    for s, v in seed_printed.items():
        assert r[s].weight == pytest.approx(v / total, abs=2e-4)
    assert r["BTCUSDT"].weight == pytest.approx(40.0 / (40 + 1 / 0.035 + 1 / 0.045 + 1 / 0.055 + 1 / 0.065))
    assert r.total_target_usd == pytest.approx(10000.0)
    # higher vol, lower weight
    ws = [r[s].weight for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "ADAUSDT", "DOTUSDT")]
    assert ws == sorted(ws, reverse=True)


def test_inverse_vol_zero_vol_is_guarded_by_eps():
    assert inverse_vol_raw([0.0, 0.5]) == [1.0 / VOL_EPS, 2.0]
    r = Allocator(pf(), SmoothingConfig()).rebalance(inputs({"A": 0.0, "B": 0.5, "C": 0.5}), 0)
    assert r["A"].weight == 0.5 and r["B"].weight == pytest.approx(0.25)


def test_missing_vol_falls_back_to_last_value_then_one():
    a = Allocator(pf(ema_alpha=1.0), SmoothingConfig())
    a.rebalance(inputs({"A": 0.02, "B": 0.04}), 0)
    r = a.rebalance(AllocatorInputs({"A": SymbolInputs(vol=None), "B": SymbolInputs(vol=float("nan")),
                                     "C": SymbolInputs()}), MIN)
    assert (r["A"].vol, r["B"].vol, r["C"].vol) == (0.02, 0.04, 1.0)


def test_risk_parity_without_correlations_equals_inverse_vol():
    vols = [0.01, 0.02, 0.05]
    assert risk_parity_raw(vols) == inverse_vol_raw(vols)
    a = Allocator(pf(mode="risk_parity"), SmoothingConfig()).rebalance(inputs(), 0)
    b = Allocator(pf(mode="inverse_vol"), SmoothingConfig()).rebalance(inputs(), 0)
    assert a.weights == b.weights


def test_risk_parity_with_correlations_equalizes_risk_contributions():
    vols = [0.02, 0.03, 0.05, 0.04]
    corr = [[1.0, 0.8, 0.3, 0.1], [0.8, 1.0, 0.2, 0.0], [0.3, 0.2, 1.0, 0.5], [0.1, 0.0, 0.5, 1.0]]
    x = risk_parity_raw(vols, corr)
    w = [v / sum(x) for v in x]
    cov = [[corr[i][j] * vols[i] * vols[j] for j in range(4)] for i in range(4)]
    rc = [w[i] * sum(cov[i][j] * w[j] for j in range(4)) for i in range(4)]
    assert max(rc) == pytest.approx(min(rc), rel=1e-9)
    # correlated pair (0, 1) gets less than inverse-vol would give it
    iv = inverse_vol_raw(vols)
    assert w[0] < iv[0] / sum(iv)
    # through the allocator, with symmetric pair keys in either order
    cfg = pf(mode="risk_parity", min_weight=0.0, max_weight=1.0, ema_alpha=1.0)
    syms = ["A", "B", "C", "D"]
    cm = {("A", "B"): 0.8, ("C", "A"): 0.3, ("A", "D"): 0.1, ("B", "C"): 0.2, ("D", "C"): 0.5}
    r = Allocator(cfg, SmoothingConfig()).rebalance(inputs(dict(zip(syms, vols)), correlations=cm), 0)
    assert [r[s].weight for s in syms] == pytest.approx(w, rel=1e-9)


def test_risk_parity_rejects_bad_correlations():
    cfg = pf(mode="risk_parity")
    with pytest.raises(ValueError, match="correlations"):
        Allocator(cfg, SmoothingConfig()).rebalance(inputs({"A": 0.1, "B": 0.2}, correlations={("A", "B"): 1.5}), 0)


# ----------------------------------------------------------------------------- EMA smoothing
def test_ema_smoothing_blends_weights_without_budget_drift():
    cfg = pf(cost=NO_COST, ema_alpha=0.3)
    a = Allocator(cfg, SmoothingConfig(max_delta_ratio=1.0, max_delta_abs=1e9))
    first = a.rebalance(inputs({"A": 0.01, "B": 0.02, "C": 0.04}), 0)
    second = a.rebalance(inputs({"A": 0.04, "B": 0.02, "C": 0.01}), MIN)
    for s in "ABC":
        expect = 0.3 * second[s].mode_weight + 0.7 * first[s].weight
        assert second[s].weight == pytest.approx(expect, abs=1e-12)
    assert second.total_target_usd == pytest.approx(10000.0, abs=1e-6)


def test_ema_over_many_rebalances_never_drifts():
    import random

    rng = random.Random(7)
    a = Allocator(pf(cost=NO_COST), SmoothingConfig(max_delta_ratio=1.0, max_delta_abs=1e9))
    for k in range(500):
        r = a.rebalance(inputs({s: rng.uniform(0.001, 0.2) for s in "ABCDEFG"}), k * MIN)
        assert_weights_ok(list(r.weights.values()), 0.02, 0.5, f"tick {k}")
        assert r.total_target_usd == pytest.approx(10000.0, abs=1e-6)


def test_symbol_set_change_refits_weights():
    a = Allocator(pf(), SmoothingConfig())
    a.rebalance(inputs({"A": 0.01, "B": 0.02, "C": 0.04}), 0)
    r = a.rebalance(inputs({"A": 0.01, "B": 0.02, "D": 0.03}), MIN)
    assert_weights_ok(list(r.weights.values()), 0.02, 0.5)
    assert set(r.weights) == {"A", "B", "D"}


# ----------------------------------------------------------------------------- L5 soft (F3.6b)
def test_soft_factor_fixed_point_worked_examples():
    # drawdown 3% of HWM, soft cap 5%, pnl sensitivity 0.5:
    # drawdown_bps=300, cap_bps=500, sens=500 permille, x=300*1000//500=600, soft=1000-500*600//1000=700
    assert drawdown_bps(10000.0, 9700.0) == 300
    assert soft_factor_permille(300, 0.05, 0.5) == 700
    assert soft_factor_permille(500, 0.05, 0.5) == 500  # at the cap: full softening
    assert soft_factor_permille(2000, 0.05, 0.5) == 500  # beyond the cap: x saturates at 1000
    assert soft_factor_permille(0, 0.05, 0.5) == 1000
    assert soft_factor_permille(1, 0.0, 0.3) == 700  # cap 0: any drawdown is full softening
    assert soft_factor_permille(0, 0.0, 0.3) == 1000
    assert soft_factor_permille(300, 0.05, 0.0) == 1000  # sensitivity 0: off
    # integer floor division, as in the seed: 333 bps of a 1000 bps cap at sensitivity 1/3
    assert soft_factor_permille(333, 0.1, 0.333) == 1000 - (333 * 333) // 1000


def test_drawdown_bps_truncates_like_the_seed():
    # (10000-9971)/10000*10000.0 is 28.999999999999996 in binary64: int() truncates to 28,
    # on every IEEE-754 platform (the point of F3.6b is that this is reproducible, not exact).
    assert drawdown_bps(10000.0, 9971.0) == 28
    assert drawdown_bps(10000.0, 10500.0) == 0  # above the HWM: no drawdown
    assert drawdown_bps(0.0, 100.0) == 0
    assert drawdown_bps(100.0, -50.0) == 10000


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10000), st.integers(0, 10000), st.floats(0, 1), st.floats(0, 1))
def test_property_soft_factor_bounded_and_monotone(d1, d2, cap, sens):
    lo, hi = sorted((d1, d2))
    a, b = soft_factor_permille(lo, cap, sens), soft_factor_permille(hi, cap, sens)
    assert isinstance(a, int) and 0 <= b <= a <= 1000
    assert a >= 1000 - int(sens * 1000.0)


def test_allocator_soft_factor_scales_the_budget_and_tracks_hwm():
    budget = SoftBudget(drawdown_soft_cap_ratio=0.05, pnl_sensitivity_ratio=0.5)
    a = Allocator(pf(cost=NO_COST), SmoothingConfig(max_delta_ratio=1.0, max_delta_abs=1e9), budget=budget)
    r0 = a.rebalance(inputs(equity_usd=10000.0), 0)
    assert (r0.soft_permille, r0.drawdown_bps, r0.hwm_equity_usd) == (1000, 0, 10000.0)
    r1 = a.rebalance(inputs(equity_usd=9700.0), MIN)
    assert (r1.soft_permille, r1.drawdown_bps) == (700, 300)
    assert r1.deploy_usd == 7000.0 and r1.total_target_usd == pytest.approx(7000.0)
    assert all(s.soft_factor == 0.7 for s in r1.symbols)
    r2 = a.rebalance(inputs(), 2 * MIN)  # no equity update: keeps the last drawdown
    assert r2.soft_permille == 700
    r3 = a.rebalance(inputs(equity_usd=11000.0), 3 * MIN)  # new high-water mark
    assert (r3.soft_permille, r3.hwm_equity_usd) == (1000, 11000.0)


def test_budget_available_caps_the_budget():
    a = Allocator(pf(cost=NO_COST), SmoothingConfig())
    r = a.rebalance(inputs(budget_available_usd=8000.0), 0)
    assert r.budget_available_usd == 8000.0 and r.total_target_usd == pytest.approx(8000.0)
    r = Allocator(pf(cost=NO_COST), SmoothingConfig()).rebalance(inputs(budget_available_usd=50000.0), 0)
    assert r.budget_available_usd == 10000.0  # never more than budget_usd


def test_soft_factor_is_bit_identical_across_runs():
    def run():
        a = Allocator(pf(), SmoothingConfig(), budget=SoftBudget(0.07, 0.6))
        out = []
        for k, eq in enumerate([10000.0, 9876.54321, 9500.1, 9999.0, 9123.456]):
            r = a.rebalance(inputs(equity_usd=eq), k * MIN)
            out.append((r.drawdown_bps, r.soft_permille, tuple(s.target_usd.hex() for s in r.symbols)))
        return out

    assert run() == run()
    # 1 bps of a 700 bps cap: x = 1000 // 700 = 1 and 600 * 1 // 1000 = 0, so no softening
    # (integer floor division, as specified); 876 bps is past the cap: 1000 - 600 = 400.
    assert [x[:2] for x in run()] == [(0, 1000), (123, 895), (499, 573), (1, 1000), (876, 400)]


# ----------------------------------------------------------------------------- L6 cost
def test_l6_cost_formula_worked_example():
    c = CostConfig()
    # t=10000 USD with defaults: slippage = 0.5 + 0.1 * 10000/1000 = 1.5, cost = 1 + 1.5 = 2.5,
    # attenuation = max(0, 1 - 0.5 * min(1, 2.5/100)) = 0.9875
    slip = slippage_bps(10000.0, base_bps=c.slippage_bps_base, k_bps_per_kusd=c.slippage_k_bps_per_kusd,
                        cap_bps=c.max_slippage_bps_cap)
    assert slip == pytest.approx(1.5)
    assert cost_attenuation(c.fee_bps_default + slip, c.cost_sensitivity) == pytest.approx(0.9875)
    assert cost_attenuation(250.0, 0.5) == 0.5  # min(1, cost/100) saturates
    assert cost_attenuation(250.0, 1.0) == 0.0
    assert cost_attenuation(-3.0, 0.5) == 1.0  # a net rebate never inflates a target


def test_l61_dynamic_inputs_spread_volume_and_cap():
    kw = dict(base_bps=0.5, k_bps_per_kusd=0.1, cap_bps=50.0, min_volume_usd=1000.0)
    # spread 4 bps: slippage starts at max(0.5, 4/2) = 2.0, + 0.1 * 10 = 3.0
    assert slippage_bps(10000.0, spread_bps=4.0, **kw) == pytest.approx(3.0)
    # volume below min_volume_usd doubles k: 0.5 + 0.2 * 10 = 2.5
    assert slippage_bps(10000.0, volume_usd=500.0, **kw) == pytest.approx(2.5)
    # both switches off: the inputs are ignored
    assert slippage_bps(10000.0, spread_bps=4.0, volume_usd=500.0, use_shadow_spread=False,
                        use_shadow_volume=False, **kw) == pytest.approx(1.5)
    # the cap: 0.5 + 0.1 * 1000 = 100.5 -> 50
    assert slippage_bps(1_000_000.0, **kw) == 50.0
    # missing observations change nothing
    assert slippage_bps(10000.0, spread_bps=None, volume_usd=None, **kw) == pytest.approx(1.5)


def test_l6_cost_stage_in_the_allocator_one_symbol():
    a = Allocator(pf(), SmoothingConfig())
    r = a.rebalance(AllocatorInputs({"BTCUSDT": SymbolInputs(vol=0.02)}), 0)
    s = r["BTCUSDT"]
    assert s.weight == 1.0
    assert (s.fee_bps, s.slippage_bps, s.cost_bps) == pytest.approx((1.0, 1.5, 2.5))
    assert s.cost_factor == pytest.approx(0.9875) and s.target_usd == pytest.approx(9875.0)


def test_l6_per_symbol_override_applies_to_its_symbol_only():
    cost = replace(CostConfig(), per_symbol={"B": CostOverride(fee_bps=20.0, slippage_bps_base=5.0)})
    r = Allocator(pf(cost=cost), SmoothingConfig()).rebalance(inputs({"A": 0.02, "B": 0.02}), 0)
    assert r["A"].fee_bps == 1.0 and r["B"].fee_bps == 20.0
    # B: slippage 5 + 0.1*5 = 5.5, cost 25.5, attenuation 1 - 0.5*0.255 = 0.8725
    assert r["B"].cost_factor == pytest.approx(0.8725)
    assert r["A"].cost_factor == pytest.approx(1 - 0.5 * (1.0 + 0.5 + 0.5) / 100)


def test_l62_calibrated_k_and_cap_replace_config_values():
    a = Allocator(pf(), SmoothingConfig())
    r = a.rebalance(AllocatorInputs({"X": SymbolInputs(vol=0.02, k_eff=0.35, cap_eff_bps=3.0)}), 0)
    # 0.5 + 0.35 * 10 = 4.0 -> capped at the calibrated 3.0
    assert r["X"].slippage_bps == 3.0
    r = Allocator(pf(), SmoothingConfig()).rebalance(AllocatorInputs({"X": SymbolInputs(vol=0.02, k_eff=0.35)}), 0)
    assert r["X"].slippage_bps == pytest.approx(4.0)


def test_l62_calibrator_ewma_alpha_and_derivation():
    cal = CostCalibrator(CostConfig(), min_samples=3)
    cal.record("X", spread_bps=4.0, volume_usd=1000.0, slippage_bps_observed=3.0, notional_usd=2000.0)
    cal.record("X", spread_bps=2.0, volume_usd=3000.0, slippage_bps_observed=1.0, notional_usd=1000.0)
    assert cal.params("X") is None  # not enough samples yet
    cal.record("X", spread_bps=2.0, volume_usd=3000.0, slippage_bps_observed=1.0, notional_usd=1000.0)
    p = cal.params("X")
    assert p is not None and p.samples == 3
    # EWMA with alpha 0.1: 4 -> 0.1*2 + 0.9*4 = 3.8 -> 0.1*2 + 0.9*3.8 = 3.62
    assert p.spread_ewma_bps == pytest.approx(3.62)
    assert p.volume_ewma_usd == pytest.approx(1000 * 0.81 + 3000 * 0.19)
    # k samples: (3 - max(0.5, 2)) / 2 = 0.5, then (1 - 1)/1 = 0 twice -> 0.5 * 0.81
    assert p.k_eff == pytest.approx(0.405)
    assert 0.5 <= p.cap_eff_bps <= 50.0
    assert p.slippage_ewma_bps == pytest.approx(3.0 * 0.81 + 1.0 * 0.19)


# ----------------------------------------------------------------------------- L6.3 fill rate
def test_l63_fill_rate_attenuation():
    assert fill_rate_attenuation(0.3, floor=0.7, sensitivity=0.5) == pytest.approx(0.8)
    assert fill_rate_attenuation(0.9, floor=0.7, sensitivity=0.5) == 1.0  # above the floor
    assert fill_rate_attenuation(None, floor=0.7, sensitivity=0.5) == 1.0  # no data: r = 1
    assert fill_rate_attenuation(0.0, floor=1.0, sensitivity=1.0) == 0.0
    # defaults (floor 0, sensitivity 0) switch the stage off
    c = CostConfig()
    assert fill_rate_attenuation(0.0, c.fill_rate_floor, c.fill_rate_sensitivity) == 1.0


def test_l63_decayed_fill_rate_counts_bursts_and_halves_with_half_life():
    fr = DecayedRate(half_life_sec=CostConfig().fill_rate_half_life_sec)  # 600 s
    assert fr.rate("X") is None
    for _ in range(3):
        fr.record("X", True, 0)  # a burst in one nanosecond: all three count
    fr.record("X", False, 0)
    assert fr.rate("X") == pytest.approx(0.75)
    fr2 = DecayedRate(600.0)
    fr2.record("X", True, 0)
    fr2.record("X", False, 600 * NS)  # one half-life later the fill weighs 0.5
    assert fr2.rate("X") == pytest.approx(0.5 / 1.5)
    assert fr2.samples("X") == 2


def test_l63_isolation_in_the_allocator():
    cost = replace(CostConfig(cost_sensitivity=0.0), fill_rate_floor=0.7, fill_rate_sensitivity=0.5)
    a = Allocator(pf(cost=cost, ema_alpha=1.0), SmoothingConfig())
    r = a.rebalance(AllocatorInputs({"A": SymbolInputs(vol=0.02, fill_rate=0.3), "B": SymbolInputs(vol=0.02)}), 0)
    assert r["A"].fill_factor == pytest.approx(0.8) and r["B"].fill_factor == 1.0
    assert r["A"].target_usd == pytest.approx(5000 * 0.8) and r["B"].target_usd == pytest.approx(5000.0)
    assert r["A"].weight == r["B"].weight == 0.5  # attenuation shrinks the target, not the share


# ----------------------------------------------------------------------------- L6.4 liquidity
def test_l64_liquidity_seed_worked_example():
    # seed: depth_target=50000, depth=25000, sensitivity=0.5, floor=0.6:
    # raw=0.5, liquidity_factor=max(0.6, 0.5)=0.6, attenuation=1-0.5*(1-0.6)=0.8
    assert liquidity_attenuation(25000.0, 50000.0, 0.5, 0.6) == pytest.approx(0.8)
    cost = replace(CostConfig(cost_sensitivity=0.0), liquidity_depth_usd_target=50000.0,
                   liquidity_sensitivity=0.5, liquidity_min_floor=0.6)
    r = Allocator(pf(cost=cost), SmoothingConfig()).rebalance(
        AllocatorInputs({"BTCUSDT": SymbolInputs(vol=0.02, depth_usd=25000.0)}), 0)
    assert r["BTCUSDT"].liq_factor == pytest.approx(0.8)
    assert r["BTCUSDT"].target_usd == pytest.approx(8000.0)  # "target_usd is reduced by 0.8"


def test_l64_liquidity_edges():
    assert liquidity_attenuation(0.0, 0.0, 1.0, 0.0) == 1.0  # target 0: stage off
    assert liquidity_attenuation(80000.0, 50000.0, 1.0, 0.0) == 1.0  # deep enough
    assert liquidity_attenuation(None, 50000.0, 0.5, 0.6) == pytest.approx(0.8)  # unknown depth = thin, floored
    assert liquidity_attenuation(0.0, 50000.0, 1.0, 0.0) == 0.0


# ----------------------------------------------------------------------------- L7 turnover
def test_l7_turnover_formula():
    # budget 10000, weight 0.5 -> symbol budget 5000; turnover 2500 -> r=0.5, raw=0.5;
    # factor = max(floor 0.7, 1 - 0.4 * (1 - 0.5)) = 0.8
    assert turnover_factor(2500.0, 10000.0, 0.5, sensitivity=0.4, floor=0.7) == pytest.approx(0.8)
    assert turnover_factor(50000.0, 10000.0, 0.5, sensitivity=1.0, floor=0.7) == 0.7  # floored
    assert turnover_factor(0.0, 10000.0, 0.5, sensitivity=1.0, floor=0.0) == 1.0
    # max(1.0, ...) guards a zero budget
    assert turnover_factor(0.5, 0.0, 0.5, sensitivity=1.0, floor=0.0) == pytest.approx(0.5)


def test_l7_decayed_turnover_sum():
    ts = DecayedSum(half_life_sec=CostConfig().turnover_half_life_sec)
    assert ts.value("X", 0) == 0.0
    ts.record_trade_notional("X", 1000.0, 0)
    ts.record_trade_notional("X", -1000.0, 0)  # a sell is turnover too
    assert ts.value("X", 0) == 2000.0
    assert ts.value("X", 600 * NS) == pytest.approx(1000.0)
    ts.record_trade_notional("X", 500.0, 600 * NS)
    assert ts.value("X", 600 * NS) == pytest.approx(1500.0)


def test_l7_in_the_allocator_uses_budget_available_times_weight():
    cost = replace(CostConfig(cost_sensitivity=0.0), turnover_sensitivity=0.4, turnover_floor=0.7)
    a = Allocator(pf(cost=cost), SmoothingConfig())
    r = a.rebalance(AllocatorInputs({"A": SymbolInputs(vol=0.02, turnover_usd=2500.0), "B": SymbolInputs(vol=0.02)}), 0)
    assert r["A"].turnover_factor == pytest.approx(0.8) and r["B"].turnover_factor == 1.0


# ----------------------------------------------------------------------------- stage order
def test_stage_order_and_factors_compose():
    cost = replace(CostConfig(), fill_rate_floor=0.7, fill_rate_sensitivity=0.5, liquidity_depth_usd_target=50000.0,
                   liquidity_sensitivity=0.5, liquidity_min_floor=0.6, turnover_sensitivity=0.4, turnover_floor=0.7)
    a = Allocator(pf(cost=cost), SmoothingConfig(), budget=SoftBudget(0.05, 0.5))
    r = a.rebalance(AllocatorInputs({"A": SymbolInputs(vol=0.02, fill_rate=0.3, depth_usd=25000.0, turnover_usd=1e6),
                                     "B": SymbolInputs(vol=0.04, depth_usd=1e6)}, equity_usd=1000.0), 0)
    assert [name for name, _ in r.stage_totals_usd] == [
        "soft", "cost", "fill", "liq", "turnover", "fee_bias", "smoothing", "norm", "min_guard"]
    for s in r.symbols:
        product = (s.weight * r.budget_available_usd * s.soft_factor * s.cost_factor * s.fill_factor * s.liq_factor
                   * s.turnover_factor * s.fee_bias_factor * s.norm_factor * s.min_guard_factor)
        assert s.target_usd == pytest.approx(product, rel=1e-12)
    # the cost stage sees the post-soft target (slippage grows with size): L5 runs before L6
    a_sym = r["A"]
    assert a_sym.slippage_bps == pytest.approx(0.5 + 0.1 * a_sym.weight * r.deploy_usd / 1000.0)
    # each attenuation stage can only shrink the total
    totals = dict(r.stage_totals_usd)
    assert totals["soft"] >= totals["cost"] >= totals["fill"] >= totals["liq"] >= totals["turnover"]
    assert r["A"].fill_factor == pytest.approx(0.8) and r["A"].liq_factor == pytest.approx(0.8)
    assert r["A"].turnover_factor == pytest.approx(0.7)


# ----------------------------------------------------------------------------- smoothing
def test_delta_cap_formula_and_backoff_ladder():
    sm = SmoothingConfig()
    assert delta_cap_usd(1000.0, sm.max_delta_ratio, sm.max_delta_abs, 1.0) == pytest.approx(150.0)
    assert delta_cap_usd(100.0, sm.max_delta_ratio, sm.max_delta_abs, 1.0) == 50.0  # abs floor
    assert delta_cap_usd(-1000.0, 0.15, 50.0, 0.7) == pytest.approx(105.0)
    steps = len(sm.backoff_steps)
    lvl, clean = 0, 0
    lvl, clean = step_backoff(lvl, clean, True, steps)
    assert (lvl, clean) == (1, 0)
    lvl, clean = step_backoff(lvl, clean, True, steps)
    lvl, clean = step_backoff(lvl, clean, True, steps)
    assert lvl == 2  # bottom of [1.0, 0.7, 0.5]
    for _ in range(RECOVER_TICKS - 1):
        lvl, clean = step_backoff(lvl, clean, False, steps)
    assert lvl == 2
    lvl, clean = step_backoff(lvl, clean, False, steps)
    assert (lvl, clean) == (1, 0)  # one step after 10 clean ticks
    for _ in range(RECOVER_TICKS):
        lvl, clean = step_backoff(lvl, clean, False, steps)
    assert lvl == 0


def test_smoothing_caps_a_budget_jump_and_backs_off_on_breach():
    cfg = pf(cost=NO_COST)
    a = Allocator(cfg, SmoothingConfig(), PosSkewConfig())
    two = {"A": 0.02, "B": 0.02}
    r0 = a.rebalance(inputs(two), 0)
    assert r0["A"].target_usd == 5000.0  # first sight: starts at the target
    a.reconfigure(portfolio=replace(cfg, budget_usd=20000.0))
    assert a.due(1)  # budget change forces a rebalance
    r1 = a.rebalance(inputs(two), 1)
    assert r1["A"].desired_usd == 10000.0
    assert r1["A"].delta_capped and r1["A"].target_usd == pytest.approx(5750.0)  # +15% of 5000
    assert r1["A"].sizing_delta_ratio == pytest.approx(0.15)
    r2 = a.rebalance(inputs(two, skew_breach=True), 2)
    assert (r2.backoff_level, r2.backoff_multiplier) == (1, 0.7)
    assert r2["A"].target_usd == pytest.approx(5750.0 + 5750.0 * 0.15 * 0.7)


def test_skew_breach_from_positions_and_pos_skew_limits():
    ps = PosSkewConfig()  # 1000 per symbol, 2000 per color
    assert not pos_skew_breached({"A": 900.0, "B": -900.0}, {}, ps.per_symbol_abs_limit, ps.per_color_abs_limit)
    assert pos_skew_breached({"A": 1500.0}, {}, ps.per_symbol_abs_limit, ps.per_color_abs_limit)
    assert pos_skew_breached({"A": 900.0, "B": 900.0, "C": 900.0}, {"A": "blue", "B": "blue", "C": "blue"},
                             ps.per_symbol_abs_limit, ps.per_color_abs_limit)
    assert not pos_skew_breached({"A": 1e9}, {}, 0.0, 0.0)  # 0 = disabled
    a = Allocator(pf(), SmoothingConfig(), ps)
    a.rebalance(inputs({"A": 0.02, "B": 0.02}), 0)
    r = a.rebalance(AllocatorInputs({"A": SymbolInputs(vol=0.02, position_usd=1500.0), "B": SymbolInputs(vol=0.02)}), 1)
    assert r.skew_breach and r.backoff_level == 1
    # without the pos_skew section only the explicit flag counts
    b = Allocator(pf(), SmoothingConfig())
    r = b.rebalance(AllocatorInputs({"A": SymbolInputs(vol=0.02, position_usd=1500.0)}), 0)
    assert not r.skew_breach


def test_final_normalization_keeps_the_sum_within_budget_after_delta_caps():
    # A moves up 6000 -> 10000 (cap 900), B down 4000 -> 0 (cap 600): 6900 + 3400 > 10000
    cfg = pf(mode="manual", manual_weights={"A": 0.6, "B": 0.4}, min_weight=0.0, max_weight=1.0, ema_alpha=1.0,
             cost=NO_COST)
    a = Allocator(cfg, SmoothingConfig())
    a.rebalance(inputs({"A": 1.0, "B": 1.0}), 0)
    a.reconfigure(portfolio=replace(cfg, manual_weights={"A": 1.0, "B": 0.0}))
    r = a.rebalance(inputs({"A": 1.0, "B": 1.0}), 1)
    totals = dict(r.stage_totals_usd)
    assert totals["smoothing"] == pytest.approx(10300.0)
    assert r["A"].norm_factor == pytest.approx(10000.0 / 10300.0)
    assert r.total_target_usd == pytest.approx(10000.0)


def test_min_guard_zeroes_dust():
    a = Allocator(pf(cost=NO_COST, ema_alpha=1.0), SmoothingConfig(), budget=SoftBudget(min_target_usd=500.0))
    r = a.rebalance(inputs({"A": 0.01, "B": 0.01, "C": 1.0}), 0)
    assert r["C"].weight == 0.02 and r["C"].min_guard_factor == 0.0 and r["C"].target_usd == 0.0
    assert r["A"].min_guard_factor == 1.0 and r["A"].target_usd == pytest.approx(4900.0)


def test_fee_bias_leans_up_within_cap_and_budget():
    cost = replace(CostConfig(), cost_sensitivity=0.5)
    a = Allocator(pf(cost=cost), SmoothingConfig())
    r = a.rebalance(inputs(fee_bias_ratio=0.5), 0)  # asks for 50%, the cap is fee_bias_cap_ratio 0.05
    before = dict(r.stage_totals_usd)["turnover"]
    assert r.fee_bias_ratio == pytest.approx(min(0.05, 10000.0 / before - 1.0))
    assert r.total_target_usd <= 10000.0 + 1e-9
    b = Allocator(pf(cost=NO_COST), SmoothingConfig()).rebalance(inputs(fee_bias_ratio=0.05), 0)
    assert b.fee_bias_ratio == 0.0  # no headroom: nothing to lean into


# ----------------------------------------------------------------------------- levels, cadence, errors
def test_max_levels_from_weight():
    assert max_levels_for(0.5, 0.5, 1, 10) == 10
    assert max_levels_for(1.0, 0.5, 1, 10) == 10  # one symbol: clamped to the max
    assert max_levels_for(0.0, 0.5, 1, 10) == 1  # never below 1
    assert max_levels_for(0.125, 0.5, 1, 10) == 3  # 2.5 rounds half up
    # the seed preview's printed weights give 8, 6, 4, 4, 3 (it prints 8, 6, 5, 4, 3)
    assert [max_levels_for(w, 0.5, 1, 10) for w in (0.4, 0.2857, 0.2222, 0.1818, 0.1538)] == [8, 6, 4, 4, 3]


def test_due_follows_rebalance_minutes():
    a = Allocator(pf(rebalance_minutes=5.0), SmoothingConfig())
    assert a.due(0)
    a.rebalance(inputs(), 0)
    assert not a.due(5 * MIN - 1) and a.due(5 * MIN)
    a.reconfigure(smoothing=SmoothingConfig(max_delta_ratio=0.2))
    assert not a.due(1)  # smoothing changes do not force
    a.reconfigure(portfolio=pf(rebalance_minutes=5.0, min_weight=0.05))
    assert a.due(1)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="min_weight"):
        Allocator(pf(min_weight=0.6, max_weight=0.5), SmoothingConfig())
    with pytest.raises(ValueError, match="mode"):
        Allocator(pf(mode="equal"), SmoothingConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backoff_steps"):
        Allocator(pf(), SmoothingConfig(backoff_steps=[]))
    a = Allocator(pf(min_weight=0.3), SmoothingConfig())
    with pytest.raises(ValueError, match="cannot sum to 1"):
        a.rebalance(inputs(), 0)  # 5 symbols x 0.3 > 1
    a = Allocator(pf(), SmoothingConfig())
    a.rebalance(inputs(), 10)
    with pytest.raises(ValueError, match="backwards"):
        a.rebalance(inputs(), 9)
    with pytest.raises(ValueError, match="at least one symbol"):
        a.rebalance(AllocatorInputs({}), 11)


def test_a_rebalance_that_raises_leaves_the_state_as_it_was():
    a = Allocator(pf(), SmoothingConfig(), budget=SoftBudget(0.05, 0.5))
    a.rebalance(inputs({"A": 0.02, "B": 0.03}, skew_breach=True, equity_usd=10000.0), 0)
    assert (a.backoff_level, a.hwm_equity_usd) == (1, 10000.0)
    with pytest.raises(ValueError, match="cannot sum to 1"):  # 60 symbols x 0.02 > 1
        a.rebalance(inputs({f"S{i}": 0.02 for i in range(60)}, skew_breach=True, equity_usd=20000.0), 1)
    assert (a.backoff_level, a.hwm_equity_usd) == (1, 10000.0)
    r = a.rebalance(inputs({"A": 0.02, "B": 0.03}, equity_usd=9700.0), 2)
    assert r.soft_permille == 700 and r.backoff_level == 1


def test_config_validation_rejects_what_the_core_cannot_satisfy():
    # the config layer catches these first (E_CFG_WEIGHTS), the core re-checks
    bad = replace(Config(), trading=replace(Config().trading, symbols=["A", "B", "C"]),
                  portfolio=pf(min_weight=0.4))
    assert any(code == "E_CFG_WEIGHTS" for code, _, _ in bad.check())
    assert any(code == "E_CFG_WEIGHTS" for code, _, _ in pf(min_weight=0.6, max_weight=0.5).check())


def test_defaults_from_the_real_config_sections():
    cfg = Config()
    a = Allocator(cfg.portfolio, cfg.allocator.smoothing, cfg.guards.pos_skew)
    r = a.rebalance(inputs({s: 0.02 for s in cfg.trading.symbols}), 0)
    assert r.mode == "inverse_vol" and r.budget_usd == 10000.0
    assert r["BTCUSDT"].weight == 1.0 and r["BTCUSDT"].max_levels == 10
    assert r.backoff_multiplier == 1.0 and r.soft_permille == 1000


def test_determinism_two_allocators_same_inputs_same_output():
    def run():
        a = Allocator(pf(), SmoothingConfig(), PosSkewConfig(), SoftBudget(0.05, 0.5, 10.0))
        return [a.rebalance(inputs({s: 0.01 * (k + i + 1) for i, s in enumerate("ABCDE")}, equity_usd=10000.0 - 37 * k,
                                   skew_breach=k % 3 == 0), k * MIN) for k in range(20)]

    assert run() == run()


# ----------------------------------------------------------------------------- properties of the whole pipeline
sym_inputs = st.builds(
    SymbolInputs,
    vol=st.one_of(st.none(), st.floats(0.0, 5.0)),
    spread_bps=st.one_of(st.none(), st.floats(0.0, 500.0)),
    volume_usd=st.one_of(st.none(), st.floats(0.0, 1e7)),
    fill_rate=st.one_of(st.none(), st.floats(0.0, 1.0)),
    depth_usd=st.one_of(st.none(), st.floats(0.0, 1e6)),
    turnover_usd=st.floats(0.0, 1e6),
    position_usd=st.floats(-5000.0, 5000.0),
)


@st.composite
def scenario(draw):
    n = draw(st.integers(1, 8))
    syms = [f"S{i}" for i in range(n)]
    lo = draw(st.floats(0.0, 1.0 / n))
    hi = draw(st.floats(max(lo, 1.0 / n), 1.0))
    mode = draw(st.sampled_from(["manual", "inverse_vol", "risk_parity"]))
    manual = draw(st.dictionaries(st.sampled_from(syms), st.floats(0.0, 10.0), max_size=n))
    cost = CostConfig(
        cost_sensitivity=draw(st.floats(0, 1)), fill_rate_floor=draw(st.floats(0, 1)),
        fill_rate_sensitivity=draw(st.floats(0, 1)), liquidity_depth_usd_target=draw(st.floats(0, 1e6)),
        liquidity_sensitivity=draw(st.floats(0, 1)), liquidity_min_floor=draw(st.floats(0, 1)),
        turnover_sensitivity=draw(st.floats(0, 1)), turnover_floor=draw(st.floats(0, 1)),
    )
    cfg = PortfolioConfig(budget_usd=draw(st.floats(0.0, 1e6)), mode=mode, manual_weights=manual, min_weight=lo,
                          max_weight=hi, ema_alpha=draw(st.floats(0.01, 1.0)), cost=cost)
    budget = SoftBudget(draw(st.floats(0, 1)), draw(st.floats(0, 1)), draw(st.floats(0, 1000)))
    ticks = draw(st.lists(st.tuples(
        st.lists(sym_inputs, min_size=n, max_size=n),
        st.one_of(st.none(), st.floats(1.0, 1e6)),       # equity
        st.one_of(st.none(), st.floats(0.0, 2e6)),       # budget available
        st.booleans(),                                   # skew breach
        st.floats(0.0, 0.2),                             # fee bias asked
    ), min_size=1, max_size=6))
    return syms, cfg, budget, ticks


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_property_pipeline_invariants_hold_every_rebalance(sc):
    syms, cfg, budget, ticks = sc
    a = Allocator(cfg, SmoothingConfig(), PosSkewConfig(), budget)
    for k, (per, eq, avail, breach, bias) in enumerate(ticks):
        r = a.rebalance(AllocatorInputs(dict(zip(syms, per)), equity_usd=eq, budget_available_usd=avail,
                                        skew_breach=breach, fee_bias_ratio=bias), k * MIN)
        assert_weights_ok([s.mode_weight for s in r.symbols], cfg.min_weight, cfg.max_weight, "mode")
        assert_weights_ok([s.weight for s in r.symbols], cfg.min_weight, cfg.max_weight, "final")
        assert 0 <= r.soft_permille <= 1000 and 0 <= r.drawdown_bps <= 10000
        assert r.total_target_usd <= r.deploy_usd * (1 + 1e-9) + 1e-9
        for s in r.symbols:
            assert s.target_usd >= 0 and math.isfinite(s.target_usd)
            for f in (s.soft_factor, s.cost_factor, s.fill_factor, s.liq_factor, s.turnover_factor, s.norm_factor):
                assert 0.0 <= f <= 1.0
            assert s.min_guard_factor in (0.0, 1.0)
            assert 1.0 <= s.fee_bias_factor <= 1.0 + SmoothingConfig().fee_bias_cap_ratio
            assert cfg.levels_per_side_min <= s.max_levels <= cfg.levels_per_side_max
            if s.delta_cap_usd:
                assert abs(s.delta_applied_usd) <= s.delta_cap_usd * (1 + 1e-12) + 1e-9
        totals = [v for _, v in r.stage_totals_usd]
        assert totals[0] >= totals[1] >= totals[2] >= totals[3] >= totals[4]  # attenuation never adds
        assert totals[-1] <= totals[-2] <= r.deploy_usd * (1 + 1e-9) + 1e-9


def test_fit_weights_keeps_tiny_raw_weights_next_to_large_ones():
    """Regression (found by hypothesis): raw weights 1 and 3.6e-87 must not lose the tiny
    one to float absorption; the cap's excess goes to it and the sum stays 1."""
    w = fit_weights([1.0, 3.5587535781437837e-87, 2.850707497929148e-234, 0.0], 0.0, 0.75)
    assert abs(math.fsum(w) - 1.0) <= 1e-9
    assert w[0] == 0.75 and abs(w[1] - 0.25) <= 1e-12 and all(0.0 <= x <= 0.75 for x in w)


# ----------------------------------------------------------------------------- state / restore (restarts)
def test_state_round_trips_and_a_restored_allocator_continues_like_the_original():
    import json

    a = Allocator(pf(), SmoothingConfig())
    a.rebalance(inputs(), 0)
    a.rebalance(inputs({**PREVIEW_VOLS, "BTCUSDT": 0.05}), 5 * MIN)
    st = a.state()
    assert json.loads(json.dumps(st, allow_nan=False)) == st  # JSON-safe
    assert st["version"] == 1 and st["last_rebalance_ns"] == 5 * MIN and set(st["weights"]) == set(PREVIEW_VOLS)
    b = Allocator(pf(), SmoothingConfig())
    assert b.state() != st
    b.restore(st)
    assert b.state() == st and b.due(5 * MIN + 1)  # a restore forces the next rebalance
    nxt = inputs({**PREVIEW_VOLS, "SOLUSDT": 0.01})
    assert b.rebalance(nxt, 10 * MIN).targets_usd == a.rebalance(nxt, 10 * MIN).targets_usd


def test_restore_validates_and_is_all_or_nothing():
    a = Allocator(pf(), SmoothingConfig(backoff_steps=[1.0, 0.5]))
    a.rebalance(inputs(), 0)
    good = a.state()
    b = Allocator(pf(), SmoothingConfig(backoff_steps=[1.0, 0.5]))
    before = b.state()
    for bad in (None, [], {**good, "version": 2}, {**good, "weights": {"BTCUSDT": -1.0}},
                {**good, "weights": {"BTCUSDT": float("nan")}}, {**good, "targets_usd": [1.0]},
                {**good, "hwm_equity_usd": "x"}, {**good, "backoff_level": -1}, {**good, "clean_ticks": True},
                {**good, "last_rebalance_ns": 1.5}, {**good, "extra": 1}):
        with pytest.raises(ValueError):
            b.restore(bad)
        assert b.state() == before
    b.restore({**good, "backoff_level": 9})  # past this ladder: the last step
    assert b.backoff_level == 1
