"""Fees: exact fee arithmetic, the shipped Bybit VIP table, rolling volume, fee-aware bias."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config_schema import BybitFeesConfig, FeesConfig, FeeTier, SmoothingConfig, TradingConfig
from mmkit.core.fees import (
    FEE_QUANTUM,
    NS_PER_DAY,
    FeeSchedule,
    FeeTiers,
    RollingVolume,
    effective_fee_bps,
    fee_bias,
    fee_bias_from_config,
    fee_for,
    to_decimal,
    utc_day,
)

D = Decimal
DAY = NS_PER_DAY
BYBIT = FeesConfig().bybit


# ----------------------------------------------------------------------------- exact money
def test_fee_for_is_exact_and_quantized_to_1e8():
    assert fee_for(D("12345.67"), 1.8) == D("2.22222060")  # 2.222220600 exactly
    assert fee_for(D("100"), -2.5) == D("-0.02500000")  # negative maker = rebate = money received
    assert fee_for(D("61837.63") * D("0.020"), 5.5) == D("0.68021393")  # 1236.7526 * 5.5e-4 = 0.6802139300
    assert fee_for(D("100"), 1).as_tuple().exponent == -8  # one canonical representation


def test_fee_for_rounds_half_even_symmetrically():
    assert fee_for(D("0.00005"), 1) == D("0E-8")  # 0.5e-8 -> 0 (even)
    assert fee_for(D("0.00015"), 1) == D("2E-8")  # 1.5e-8 -> 2 (even)
    assert fee_for(D("0.00025"), 1) == D("2E-8")  # 2.5e-8 -> 2 (even)
    assert fee_for(D("0.00015"), -1) == -fee_for(D("0.00015"), 1)
    zero = fee_for(D("0.00005"), -1)
    assert zero == 0 and not zero.is_signed()  # a rebate that rounds away is 0, not -0


def test_fee_for_takes_bps_as_written_not_as_binary():
    # Decimal(1.8) would be 1.8000000000000000444...; the config said 1.8
    assert to_decimal(1.8) == D("1.8")
    assert fee_for(D("1e12"), 1.8) == D("180000000.00000000")
    assert fee_for(D("1000"), "0.25") == fee_for(D("1000"), D("0.25")) == fee_for(D("1000"), 0.25)


def test_fee_for_refuses_inexact_or_non_finite_input():
    with pytest.raises(TypeError, match="Decimal"):
        fee_for(1000.0, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fee_for(D("NaN"), 1.0)
    with pytest.raises(ValueError):
        fee_for(D("1000"), float("inf"))
    with pytest.raises(TypeError):
        fee_for(D("1000"), True)


@settings(max_examples=500, deadline=None)
@given(st.decimals(min_value=D("-1e9"), max_value=D("1e9"), places=8, allow_nan=False, allow_infinity=False),
       st.decimals(min_value=D("-1000"), max_value=D("1000"), places=4, allow_nan=False, allow_infinity=False))
def test_property_fee_for_equals_rational_rounding(notional, bps):
    exact = Fraction(notional) * Fraction(bps) / 10000
    q = Fraction(1, 10**8)
    n = exact / q
    floor = n.numerator // n.denominator
    rem = n - floor
    k = floor + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and floor % 2 == 1) else 0)
    assert fee_for(notional, bps) == D(k) * FEE_QUANTUM
    assert fee_for(notional, -bps) == -fee_for(notional, bps)


def test_replaying_fills_books_the_same_fees():
    fills = [(D("61837.63") * D("0.020"), "maker"), (D("3012.5") * D("1.7"), "taker"), (D("0.5"), "maker")]
    sched = FeeSchedule(maker_bps=-0.25, taker_bps=5.5)
    first = sum((sched.fee_for(n, liq) for n, liq in fills), D(0))
    second = sum((sched.fee_for(n, liq) for n, liq in reversed(fills)), D(0))
    # -1236.7526*0.25e-4 = -0.030918815 -> -0.03091882 (half-even), 5121.25*5.5e-4 = 2.8166875,
    # -0.5*0.25e-4 = -0.0000125: 2.81668750 - 0.03091882 - 0.00001250
    assert first == second == D("2.78575618")


def test_fee_schedule_from_trading_config_and_effective_rate():
    tc = TradingConfig()
    sched = FeeSchedule(tc.maker_fee_bps, tc.taker_fee_bps)
    assert sched.bps("maker") == 1.0 and sched.bps("taker") == 5.0
    assert sched.fee_for(D("10000"), "taker") == D("5.00000000")
    assert sched.effective_bps(1.0) == 1.0
    assert effective_fee_bps(0.8, 2.0, 5.5) == pytest.approx(2.7)
    with pytest.raises(ValueError, match="liquidity"):
        sched.bps("passive")
    with pytest.raises(ValueError):
        effective_fee_bps(1.5, 1.0, 2.0)
    with pytest.raises(ValueError):
        FeeSchedule(float("nan"), 1.0)


# ----------------------------------------------------------------------------- tiers
def test_shipped_bybit_table_tier_lookup_and_distance():
    t = FeeTiers(BYBIT.tiers)
    assert len(t) == 6
    assert t.tier_for(0).level == 0
    assert t.tier_for(9_999_999.99).level == 0
    assert t.tier_for(10_000_000).level == 1  # the threshold itself reaches the tier
    assert t.tier_for(D("25000000")).level == 2
    assert t.tier_for(1e12).level == 5
    assert t.tier_for(-5).level == 0
    assert t.distance_to_next_usd(9_990_000) == pytest.approx(10_000.0)
    assert t.distance_to_next_usd(300e6) == 0.0  # top tier: nowhere to go
    assert t.next_tier(t.tier_for(300e6)) is None
    assert t.tier_for(60e6).schedule == FeeSchedule(1.4, 3.5)


def test_tier_status_carries_the_metrics():
    s = FeeTiers(BYBIT.tiers).status(9_990_000, maker_share_ratio=0.8)
    assert (s.level, s.next_level) == (0, 1)
    assert s.effective_bps_now == pytest.approx(0.8 * 2.0 + 0.2 * 5.5)
    assert s.expected_next_bps == pytest.approx(0.8 * 1.8 + 0.2 * 4.0)
    assert s.improvement_bps == pytest.approx(0.46)
    top = FeeTiers(BYBIT.tiers).status(1e12)
    assert top.next_level is None and top.distance_usd == 0.0 and top.improvement_bps == 0.0


@pytest.mark.parametrize(
    "rows, match",
    [
        ([], "empty"),
        ([(0, 5.0, 2.0, 5.5)], "start at 0"),
        ([(0, 0.0, 2.0, 5.5), (2, 25e6, 1.6, 3.75), (1, 10e6, 1.8, 4.0)], "out of order"),
        ([(0, 0.0, 2.0, 5.5), (1, 0.0, 1.8, 4.0)], "out of order"),
        ([(0, 0.0, 2.0, 5.5), (1, 10e6, 2.5, 4.0)], "charges more"),
        ([(0, 0.0, 2.0, 5.5), (1, 10e6, 1.0, 6.0)], "charges more"),
    ],
)
def test_out_of_order_tier_tables_are_rejected_by_core_and_config(rows, match):
    tiers = [FeeTier(level=lv, min_volume_usd=v, maker_bps=m, taker_bps=t) for lv, v, m, t in rows]
    with pytest.raises(ValueError, match=match):
        FeeTiers(tiers)
    problems = BybitFeesConfig(tiers=tiers).check()
    assert problems and all(code == "E_CFG_FEE_TIERS" for code, _, _ in problems)


def test_shipped_table_passes_config_validation():
    assert BybitFeesConfig().check() == []


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 1e10), st.floats(0, 1e10))
def test_property_tier_is_monotone_in_volume(v1, v2):
    t = FeeTiers(BYBIT.tiers)
    lo, hi = sorted((v1, v2))
    a, b = t.tier_for(lo), t.tier_for(hi)
    assert a.level <= b.level and b.maker_bps <= a.maker_bps and b.taker_bps <= a.taker_bps
    assert a.min_volume_usd <= lo
    assert t.distance_to_next_usd(lo) >= 0


# ----------------------------------------------------------------------------- rolling 30-day volume
def test_utc_day_index():
    assert utc_day(0) == 0 and utc_day(DAY - 1) == 0 and utc_day(DAY) == 1
    assert utc_day(-1) == -1  # floor, not truncation
    assert utc_day(1_735_732_800 * 10**9) == 20089  # 2025-01-01T12:00:00Z
    with pytest.raises(TypeError):
        utc_day(1.5)  # type: ignore[arg-type]


def test_rolling_volume_window_is_30_utc_days_inclusive():
    rv = RollingVolume()
    rv.add(0, D("100.5"))
    rv.add(DAY - 1, 200)  # same UTC day
    rv.add(29 * DAY, "300.25")
    assert rv.total(29 * DAY) == D("600.75")  # days 0..29
    assert rv.total(30 * DAY) == D("300.25")  # day 0 left the window
    assert rv.total_usd(30 * DAY) == 300.25
    rv.add(5 * DAY, D("-50"))  # a sell's notional counts as volume
    assert rv.total(29 * DAY) == D("650.75")


def test_rolling_volume_prunes_and_ignores_fills_older_than_the_window():
    rv = RollingVolume(days=30)
    rv.add(100 * DAY, 1000)
    rv.add(10 * DAY, 999)  # far older than the latest window: ignored
    assert rv.total(100 * DAY) == D(1000)
    rv.add(200 * DAY, 1)
    assert len(rv._buckets) == 1  # noqa: SLF001 - bounded state is the point
    assert rv.total(100 * DAY) == D(0)  # that bucket is gone; asked windows are recent ones


def test_rolling_volume_sum_is_exact_whatever_the_order():
    amounts = [D("0.1"), D("0.2"), D("0.3")] * 1000
    a, b = RollingVolume(), RollingVolume()
    for i, x in enumerate(amounts):
        a.add(i * 1000, x)
    for i, x in enumerate(reversed(amounts)):
        b.add(i * 1000, x)
    assert a.total(DAY) == b.total(DAY) == D("600.0")


def test_rolling_volume_feeds_the_tier():
    rv, t = RollingVolume(), FeeTiers(BYBIT.tiers)
    for d in range(30):
        rv.add(d * DAY, 400_000)
    assert t.tier_for(rv.total(29 * DAY)).level == 1  # 12M over 30 days
    assert t.tier_for(rv.total(40 * DAY)).level == 0  # 19 days x 400k = 7.6M


# ----------------------------------------------------------------------------- fee-aware bias
def test_fee_bias_gates_and_size():
    t = FeeTiers(BYBIT.tiers)
    thr, imp, cap = BYBIT.distance_usd_threshold, BYBIT.min_improvement_bps, SmoothingConfig().fee_bias_cap_ratio
    assert (thr, imp, cap) == (25000.0, 0.2, 0.05)  # seed defaults
    # 10,000 USD from tier 1, maker-only improvement 2.0 -> 1.8 = 0.2 bps (exactly the minimum)
    b = fee_bias(t.status(9_990_000), thr, imp, cap)
    assert b.reason == "applied" and b.ratio == pytest.approx(0.05 * (1 - 10000 / 25000))
    assert fee_bias(t.status(9_000_000), thr, imp, cap).reason == "too_far"
    assert fee_bias(t.status(1e12), thr, imp, cap).reason == "top_tier"
    assert fee_bias(t.status(9_990_000), thr, 0.5, cap).reason == "small_improvement"
    assert fee_bias(t.status(9_990_000), thr, imp, 0.0).ratio == 0.0
    # continuous: 0 at the threshold, the cap at the boundary
    assert fee_bias(t.status(10_000_000 - 25_000), thr, imp, cap).ratio == 0.0
    assert fee_bias(t.status(10_000_000 - 1e-6), thr, imp, cap).ratio == pytest.approx(cap)


def test_fee_bias_from_config_sections():
    b = fee_bias_from_config(9_990_000, BYBIT, SmoothingConfig().fee_bias_cap_ratio)
    assert b.ratio == pytest.approx(0.03) and b.status.distance_usd == pytest.approx(10_000.0)
    # the table from config is honored: a custom two-tier table
    custom = replace(BYBIT, tiers=[FeeTier(0, 0.0, 2.0, 5.0), FeeTier(1, 1e6, 0.0, 3.0)])
    assert fee_bias_from_config(990_000, custom, 0.05).ratio == pytest.approx(0.05 * (1 - 10_000 / 25_000))


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 3e8), st.floats(0, 1e6), st.floats(0, 2), st.floats(0, 1))
def test_property_fee_bias_bounded(volume, thr, imp, cap):
    b = fee_bias(FeeTiers(BYBIT.tiers).status(volume), thr, imp, cap)
    assert 0.0 <= b.ratio <= cap
    assert (b.ratio > 0) == (b.reason == "applied" and b.ratio > 0)


def test_fee_for_ignores_the_callers_decimal_context():
    """The fee math runs in its own fixed context: a caller's low precision or another
    rounding mode in the thread's context changes nothing."""
    from decimal import ROUND_DOWN, Decimal, localcontext

    from mmkit.core.fees import fee_for

    cases = [(Decimal("12345.678912345"), "-0.5"), (Decimal("0.00000123"), "2.5"), (Decimal("98765432.1"), "5")]
    want = [fee_for(n, bps) for n, bps in cases]
    with localcontext() as ctx:
        ctx.prec = 4
        ctx.rounding = ROUND_DOWN
        assert [fee_for(n, bps) for n, bps in cases] == want


def test_fee_for_remembers_float_rates_without_changing_a_fee():
    from mmkit.core import fees

    fees._RATES.clear()
    cases = [(D("12345.67"), 1.8), (D("100"), -2.5), (D("0.00015"), -0.0), (D("0.00015"), 0.0), (D("7"), 0.1)]
    first = [fee_for(n, r) for n, r in cases]
    assert set(fees._RATES) == {1.8, -2.5, 0.0, 0.1}  # -0.0 and 0.0 share a key
    assert [fee_for(n, r) for n, r in cases] == first == [fee_for(n, fees.to_decimal(r)) for n, r in cases]
    assert str(first[2]) == str(first[3]) == "0E-8"  # the shared key gives the same unsigned zero
    with pytest.raises(ValueError):
        fee_for(D("1"), float("nan"))
