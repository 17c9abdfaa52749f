"""Ledger: hand-computed books (linear and inverse), fees vs rebates, the Decimal boundary,
the fixed-interval equity curve, daily rows, reconciliation with raw fills; property tests
that positions, PnL and cash flows agree exactly (``==``, never approx)."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.core.fees import fee_for
from mmkit.core.instruments import Instrument
from mmkit.core.ledger import (
    NS_PER_DAY,
    _half_even,
    atto_to_decimal,
    USD_QUANTUM,
    Ledger,
    e8_to_usd,
    recompute,
    usd,
    usd_e8,
)
from mmkit.core.types import BUY, SELL, Fill

D = Decimal
F = Fraction
S = 1_000_000_000  # ns per second
MS = 1_000_000

LIN = Instrument("BTCUSDT", D("0.1"), D("0.001"))  # 1 tick x 1 lot = 0.0001 USD
INV = Instrument("BTCUSD_PERP", D("0.5"), D("1"), contract_multiplier=D("100"), inverse=True)  # 100 USD contracts
UNIT = Instrument("X", D("1"), D("1"))  # prices and sizes are plain numbers


def fill(sym, side, px, qty, liq="maker", fee="0", ts=0, cid="", cum=0):
    return Fill(ts, cid, sym, side, px, qty, liq, D(fee), cum)


def ledger(*insts, interval_ms=1000):
    return Ledger({i.symbol: i for i in insts}, equity_interval_ms=interval_ms)


# ----------------------------------------------------------------------------- linear, by hand
def test_linear_round_trip_with_fees_and_rebates_by_hand():
    L = ledger(LIN)
    # buy 0.010 BTC at 60000.0 as maker: 600 USD, -0.25 bps rebate = -0.015 USD
    L.on_fill(fill("BTCUSDT", BUY, 600_000, 10, "maker", fee_for(D("600.000"), -0.25)))
    # sell 0.010 BTC at 60010.0 as taker: 600.1 USD, 5.5 bps = 0.330055 USD
    L.on_fill(fill("BTCUSDT", SELL, 600_100, 10, "taker", fee_for(D("600.100"), 5.5)))
    p = L.position("BTCUSDT")
    assert p.qty_lots == 0 and p.avg_entry_px is None
    assert p.realized_pnl_settle == F(1, 10)  # 0.010 x 10 USD
    assert p.fees_paid_settle == F("0.330055") and p.rebates_earned_settle == F("0.015")
    t = L.totals()
    assert t.realized_pnl_usd == D("0.1") and t.unrealized_pnl_usd == 0
    assert t.fees_usd == D("0.330055") and t.rebates_usd == D("0.015")  # reported separately, both >= 0
    assert t.net_pnl_usd == D("-0.215055")  # 0.1 - 0.330055 + 0.015
    assert t.turnover_usd == D("1200.1")
    assert (t.maker_notional_usd, t.taker_notional_usd) == (D("600"), D("600.1"))
    assert (t.fills, t.maker_fills, t.taker_fills, t.closing_fills, t.winning_closes) == (2, 1, 1, 1, 1)
    fl = t.floats()  # the float view: each exact value converted once
    assert fl["net_pnl_usd"] == -0.215055 and fl["fills"] == 2 and isinstance(fl["fills"], int)


def test_average_entry_is_exact_and_realized_uses_it():
    L = ledger(UNIT)
    L.on_fill(fill("X", BUY, 100, 1))
    L.on_fill(fill("X", BUY, 101, 2))
    assert L.position("X").avg_entry_px == F(302, 3)  # 100.666..., exact (a Fraction)
    L.on_fill(fill("X", SELL, 102, 1))
    L.mark("X", 103, 0)
    p = L.position("X")
    # rule 2: the released basis 302/3 is rounded half-even to 1e-18 (...666667)
    assert p.realized_pnl_settle == D("1.333333333333333333")  # 102 - 100.666666666666666667
    assert p.unrealized_pnl_settle == D("4.666666666666666667")  # 206 - 201.333333333333333333
    assert p.qty_lots == 2 and abs(p.avg_entry_px - F(302, 3)) <= F(1, 10**18)  # a reduction keeps the average
    assert p.realized_pnl_usd == D("1.33333333") and p.unrealized_pnl_usd == D("4.66666667")
    # the parts are thirds, the whole is exact: cash flow -100 - 202 + 102 + 2 x 103 = 6
    assert p.net_pnl_settle == 6 and L.net_pnl_exact() == 6 and L.totals().net_pnl_usd == D("6")


def test_short_then_flip_long_by_hand():
    L = ledger(UNIT)
    L.on_fill(fill("X", SELL, 100, 3))
    assert L.position("X").avg_entry_px == 100 and L.qty_lots("X") == -3
    L.on_fill(fill("X", BUY, 90, 5))  # closes 3 (+30), opens 2 long at 90
    p = L.position("X")
    assert p.qty_lots == 2 and p.avg_entry_px == 90 and p.realized_pnl_settle == 30
    assert p.closing_fills == 1 and p.winning_closes == 1
    L.on_fill(fill("X", SELL, 85, 2))  # a losing close
    p = L.position("X")
    assert p.qty_lots == 0 and p.realized_pnl_settle == 20
    assert (p.closing_fills, p.winning_closes) == (2, 1)


def test_a_breakeven_close_is_not_a_win():
    L = ledger(UNIT)
    L.on_fill(fill("X", BUY, 100, 1))
    L.on_fill(fill("X", SELL, 100, 1))
    assert (L.totals().closing_fills, L.totals().winning_closes) == (1, 0)


def test_mark_in_ticks_decimal_price_and_half_tick_mid2():
    L = ledger(LIN)
    L.on_fill(fill("BTCUSDT", BUY, 600_000, 10))
    assert L.position("BTCUSDT").unrealized_pnl_settle == 0  # before a mark: the fill price
    L.mark("BTCUSDT", 600_010, 1)  # 60001.0
    assert L.position("BTCUSDT").unrealized_pnl_settle == F(1, 100)
    L.mark("BTCUSDT", D("60000.55"), 2)  # a Decimal price, off the tick grid is fine for a mid
    assert L.position("BTCUSDT").unrealized_pnl_settle == F("0.0055")
    L.mark_mid2("BTCUSDT", 600_000 + 600_001, 3)  # bid + ask: mid 60000.05
    assert L.position("BTCUSDT").mark_px == F("60000.05")
    assert L.position("BTCUSDT").unrealized_pnl_settle == F("0.0005")


def test_mark_refuses_floats_and_nonsense():
    L = ledger(LIN)
    with pytest.raises(TypeError):
        L.mark("BTCUSDT", 60000.5, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        L.mark("BTCUSDT", F(1, 2), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        L.mark("BTCUSDT", 0, 0)
    with pytest.raises(ValueError):
        L.mark("BTCUSDT", D("NaN"), 0)
    with pytest.raises(ValueError):
        L.mark_mid2("BTCUSDT", -2, 0)
    with pytest.raises(KeyError, match="ETHUSDT"):
        L.mark("ETHUSDT", 1, 0)


def test_on_fill_validates():
    L = ledger(LIN)
    with pytest.raises(TypeError, match="Decimal"):
        L.on_fill(Fill(0, "", "BTCUSDT", BUY, 1, 1, "maker", 0.01))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        L.on_fill(fill("BTCUSDT", BUY, 1, 1, fee="Infinity"))
    with pytest.raises(ValueError, match="liquidity"):
        L.on_fill(fill("BTCUSDT", BUY, 1, 1, liq="mid"))
    with pytest.raises(ValueError, match="qty"):
        L.on_fill(fill("BTCUSDT", BUY, 1, 0))
    with pytest.raises(ValueError, match="price"):
        L.on_fill(fill("BTCUSDT", BUY, 0, 1))
    with pytest.raises(ValueError, match="side"):
        L.on_fill(fill("BTCUSDT", 0, 1, 1))
    with pytest.raises(KeyError):
        L.on_fill(fill("ETHUSDT", BUY, 1, 1))
    assert L.totals().fills == 0  # nothing half-booked
    with pytest.raises(ValueError):
        Ledger({"BTCUSDT": LIN}, equity_interval_ms=0)
    with pytest.raises(TypeError):
        Ledger({"BTCUSDT": "not an instrument"})  # type: ignore[dict-item]


def test_duplicate_fill_reports_are_booked_once():
    L = ledger(LIN)
    f1 = fill("BTCUSDT", BUY, 600_000, 4, cid="o1", cum=4, fee="0.01")
    assert L.on_fill(f1) is True
    assert L.on_fill(f1) is False  # redelivered
    assert L.on_fill(fill("BTCUSDT", BUY, 600_000, 6, cid="o1", cum=10)) is True  # the next partial
    assert L.qty_lots("BTCUSDT") == 10 and L.totals().fees_usd == D("0.01")
    # cum_qty 0 = unknown identity: always booked
    L.on_fill(fill("BTCUSDT", BUY, 600_000, 1, cid="o2"))
    L.on_fill(fill("BTCUSDT", BUY, 600_000, 1, cid="o2"))
    assert L.qty_lots("BTCUSDT") == 12


# ----------------------------------------------------------------------------- inverse, by hand
def test_inverse_long_pnl_in_coin_and_usd_at_the_mark():
    L = ledger(INV)
    # 10 contracts x 100 USD = 1000 USD face; buy at 50000, sell at 51000
    L.on_fill(fill("BTCUSD_PERP", BUY, 100_000, 10))
    L.on_fill(fill("BTCUSD_PERP", SELL, 102_000, 10))
    p = L.position("BTCUSD_PERP")
    # 1000 x (1/50000 - 1/51000) = 1/2550 BTC; rule 1 rounds 100/51000 per lot to 1e-18 BTC
    assert p.realized_pnl_settle == D("0.000392156862745100")  # 10 x (0.002 - 0.001960784313725490)
    assert abs(F(p.realized_pnl_settle) - F(1, 2550)) <= F(10, 2 * 10**18)
    assert p.mark_px == 51_000  # no mark yet: the last fill price
    assert p.realized_pnl_usd == D("20")  # 1/2550 BTC x 51000 USD (20.0000000000000001 before the view)
    assert p.turnover_usd == D("2000")  # face value, independent of price
    L.mark("BTCUSD_PERP", D("25500"), 0)  # the coin halves: so does the USD value of the coin PnL
    assert L.totals().realized_pnl_usd == D("10")


def test_inverse_short_and_harmonic_average_entry():
    L = ledger(INV)
    L.on_fill(fill("BTCUSD_PERP", SELL, 100_000, 10))  # short 1000 USD at 50000
    L.on_fill(fill("BTCUSD_PERP", BUY, 80_000, 10))  # cover at 40000
    p = L.position("BTCUSD_PERP")
    assert p.realized_pnl_settle == F(1000, 40_000) - F(1000, 50_000) == D("0.005")  # 1/p terminates: no rounding
    assert p.realized_pnl_usd == D("200")  # 0.005 BTC x 40000
    L2 = ledger(INV)
    L2.on_fill(fill("BTCUSD_PERP", BUY, 80_000, 10))  # 1000 USD at 40000
    L2.on_fill(fill("BTCUSD_PERP", BUY, 120_000, 10))  # 1000 USD at 60000
    # 2 / (1/40000 + 1/60000) = 48000, up to rule 1 (100/60000 BTC per lot is rounded to 1e-18)
    avg = L2.position("BTCUSD_PERP").avg_entry_px
    assert avg != 48_000 and abs(avg - 48_000) < F(1, 10**9)
    L3 = ledger(INV)
    L3.on_fill(fill("BTCUSD_PERP", BUY, 80_000, 10))  # 1000 USD at 40000
    L3.on_fill(fill("BTCUSD_PERP", BUY, 160_000, 10))  # 1000 USD at 80000: 1/p terminates
    assert L3.position("BTCUSD_PERP").avg_entry_px == F(160_000, 3)  # 2 / (1/40000 + 1/80000), exact


def test_inverse_fees_are_coin_and_convert_at_the_mark():
    L = ledger(INV)
    coin_notional = D(1000) / D(50_000)  # 0.02 BTC
    fee = fee_for(coin_notional, 5.5)  # 0.000011 BTC
    L.on_fill(fill("BTCUSD_PERP", BUY, 100_000, 10, "taker", fee))
    L.mark("BTCUSD_PERP", D("51000"), 0)
    p = L.position("BTCUSD_PERP")
    assert p.fees_paid_settle == D("0.000011") and p.fees_paid_usd == D("0.561")
    assert p.unrealized_pnl_usd == D("20")
    assert L.totals().net_pnl_usd == D("19.439")


def test_linear_and_inverse_together_reconcile():
    L = ledger(LIN, INV)
    fills = [
        fill("BTCUSDT", BUY, 600_000, 10, "maker", "-0.015", ts=1),
        fill("BTCUSD_PERP", BUY, 120_000, 10, "maker", "-0.00000042", ts=2),
        fill("BTCUSDT", SELL, 600_010, 5, "taker", "0.0165", ts=3),
    ]
    for f in fills:
        L.on_fill(f)
    L.mark("BTCUSDT", 600_020, 5)
    L.mark("BTCUSD_PERP", 121_000, 5)
    t = L.totals()
    # linear: realized 0.005 x 1.0 = 0.005; unrealized 0.005 x 2.0 = 0.01
    # inverse: 1000 x (1/60000 - 1/60500) BTC = 1/7260 BTC = 8.33333333 USD at 60500
    assert t.realized_pnl_usd == D("0.005")
    assert t.unrealized_pnl_usd == D("8.34333333")
    assert t.fees_usd == D("0.0165")
    assert t.rebates_usd == D("0.04041")  # 0.015 + 0.00000042 BTC x 60500 = 0.015 + 0.02541
    r = L.reconcile(fills)
    assert r.ok
    assert r.total_diff_usd == r.realized_diff_usd == r.fees_diff_usd == r.turnover_diff_usd == D(0)


def test_reconcile_catches_a_missing_or_altered_fill():
    L = ledger(UNIT)
    fills = [fill("X", BUY, 100, 2, fee="0.1"), fill("X", SELL, 103, 1, fee="0.1")]
    for f in fills:
        L.on_fill(f)
    assert L.reconcile(fills).ok
    r = L.reconcile(fills[:1])
    assert not r.ok and r.position_diff_lots == 1 and r.realized_diff_usd == D(3)
    r = L.reconcile([fills[0], fill("X", SELL, 104, 1, fee="0.1")])
    assert not r.ok and r.realized_diff_usd == D(-1) and r.total_diff_usd == D(-1)
    r = L.reconcile([fills[0], fill("X", SELL, 103, 1, fee="0.10000001")])
    assert not r.ok and r.fees_diff_usd == D("-0.00000001") and r.position_diff_lots == 0


# ----------------------------------------------------------------------------- Decimal boundary
def test_usd_view_rounds_once_half_even_to_1e8():
    for x in (F, D):  # exact Decimals and Fractions take the same path to the view
        conv = (lambda a, b: F(a, b)) if x is F else (lambda a, b: D(a) / D(b))
        assert usd(conv(1, 2 * 10**8)) == D("0E-8")  # 0.5e-8 -> even (0)
        assert usd(conv(3, 2 * 10**8)) == D("2E-8")  # 1.5e-8 -> 2
        assert usd(conv(5, 2 * 10**8)) == D("2E-8")  # 2.5e-8 -> 2
        z = usd(conv(-1, 2 * 10**8))
        assert z == 0 and not z.is_signed()  # never -0
        assert usd(conv(12345, 100)).as_tuple().exponent == -8  # one canonical form
        assert usd_e8(conv(-5, 2 * 10**8)) == -2 and usd_e8(conv(7, 4)) == 175_000_000
    assert usd(F(1, 3)) == D("0.33333333") and usd(F(2, 3)) == D("0.66666667")
    assert USD_QUANTUM == D("1e-8") and e8_to_usd(usd_e8(F(7, 4))) == D("1.75")
    assert atto_to_decimal(10**40 + 1) == D("10000000000000000000000.000000000000000001")  # no 28-digit rounding


def test_exact_context_refuses_to_round_silently():
    # fees finer than the 1e-18 book grid cannot be booked exactly: refused, not rounded
    with pytest.raises(ValueError, match="1e-18"):
        ledger(LIN).on_fill(fill("BTCUSDT", BUY, 1, 1, fee="1e-19"))
    # exotic marks are valued by rule 1 (rounded per lot), never by a silent context rounding
    L = ledger(UNIT)
    L.on_fill(fill("X", BUY, 3, 1))
    L.mark("X", D("3.0000000000000000000000001"), 0)
    assert L.position("X").unrealized_pnl_settle == 0


def test_turnover_does_not_drift_like_floats():
    L = ledger(Instrument("Y", D("0.1"), D("1")))
    for _ in range(10):
        L.on_fill(fill("Y", BUY, 1, 1))  # 0.1 USD each
    assert sum([0.1] * 10) != 1.0  # what floats would book
    assert L.totals().turnover_usd == D("1") and L.turnover_exact() == 1


def test_float_views_are_the_exact_values_rounded_once():
    L = ledger(UNIT)
    L.on_fill(fill("X", BUY, 100, 3))
    L.on_fill(fill("X", BUY, 101, 0 + 1))
    L.mark("X", 102, 0)
    p = L.position("X")
    assert p.avg_entry_float == float(F(401, 4)) == 100.25 and p.avg_entry_px == F(401, 4)
    assert ledger(UNIT).position("X").avg_entry_float == 0.0


# ----------------------------------------------------------------------------- equity curve
def test_equity_curve_on_an_absolute_grid_with_gaps_filled():
    L = ledger(UNIT, interval_ms=1000)
    assert L.sample(int(2.5 * S)) == 0  # anchors at the next grid time, 3 s
    assert L.sample(int(2.9 * S)) == 0
    assert L.sample(3 * S) == 1  # exactly on the grid: sampled
    L.on_fill(fill("X", BUY, 100, 1, ts=3 * S))  # a fill stamped 3 s comes after the 3 s sample
    L.mark("X", 105, 3 * S)
    assert L.sample(6 * S + 5) == 3  # 4, 5, 6 s: the state did not change in the gap
    assert L.equity_ts_ns == [3 * S, 4 * S, 5 * S, 6 * S]
    assert L.equity_e8 == [0, 5 * 10**8, 5 * 10**8, 5 * 10**8]
    assert L.exposure_e8 == [0, 105 * 10**8, 105 * 10**8, 105 * 10**8]
    assert L.sample(6 * S + 999 * MS) == 0 and L.sample(5 * S) == 0  # nothing due, or time went back
    pts = L.equity_curve()
    assert pts[1].equity_usd == D("5") and pts[1].exposure_usd == D("105") and pts[0].ts_ns == 3 * S
    assert L.equity_floats()[1] == (4 * S, 5.0)


def test_sampling_is_deterministic_whatever_the_call_pattern():
    def run(calls):
        L = ledger(UNIT, interval_ms=250)
        fills = {1_000 * MS: fill("X", BUY, 100, 2), 2_100 * MS: fill("X", SELL, 103, 1)}
        for t in sorted(set(calls) | set(fills)):
            L.sample(t)
            if t in fills:
                L.on_fill(fills[t])
            L.mark("X", 100 + t // (500 * MS), t)
        L.sample(3_000 * MS)
        return L.equity_ts_ns, L.equity_e8

    dense = run(range(0, 3_000 * MS, 7 * MS))
    sparse = run([0, 1_000 * MS, 2_100 * MS])
    assert dense[0] == sparse[0] == list(range(0, 3_001 * MS, 250 * MS))
    # the sparse caller misses mark changes between its calls, so only points up to the
    # first change differ; the grid and every point after a shared call agree
    assert dense[1][:5] == sparse[1][:5]


def test_daily_rows():
    L = ledger(UNIT, interval_ms=3_600_000)  # hourly
    L.sample(0)
    L.on_fill(fill("X", BUY, 100, 1, fee="0.5", ts=10))
    L.mark("X", 110, 10)
    L.sample(NS_PER_DAY - 1)  # samples 0..23 h of day 0
    L.on_fill(fill("X", SELL, 120, 1, "maker", "-0.25", ts=NS_PER_DAY + 5))
    L.sample(NS_PER_DAY + 3_600 * S)  # day 1: 0 h (before the fill) and 1 h
    rows = L.daily()
    assert [r.utc_day for r in rows] == [0, 1]
    assert (rows[0].fills, rows[0].turnover_usd, rows[0].fees_usd, rows[0].rebates_usd) == (1, D(100), D("0.5"), D(0))
    assert rows[0].equity_usd == D("9.5") and rows[0].pnl_usd == D("9.5")  # 10 unrealized - 0.5 fee
    assert (rows[1].fills, rows[1].turnover_usd, rows[1].rebates_usd) == (1, D(120), D("0.25"))
    assert rows[1].equity_usd == D("19.75") and rows[1].pnl_usd == D("10.25")


def test_peak_exposure_counts_fills_between_samples():
    L = ledger(UNIT)
    L.sample(0)
    L.on_fill(fill("X", BUY, 100, 5, ts=10))
    L.on_fill(fill("X", SELL, 100, 5, ts=20))
    L.sample(S)
    assert L.exposure_e8 == [0, 0] and L.totals().peak_exposure_usd == D(500)


# ----------------------------------------------------------------------------- properties
fills_st = st.lists(
    st.tuples(
        st.sampled_from([BUY, SELL]),
        st.integers(1, 2_000),  # price ticks
        st.integers(1, 50),  # lots
        st.sampled_from(["maker", "taker"]),
        st.integers(-10_000, 10_000),  # fee in 1e-8
        st.booleans(),  # inverse symbol?
    ),
    max_size=40,
)


def _build(rows):
    lin = Instrument("L", D("0.01"), D("0.001"), contract_multiplier=D("1"))
    inv = Instrument("I", D("0.5"), D("1"), contract_multiplier=D("100"), inverse=True)
    fills = [
        Fill(i, f"o{i}", "I" if inv_ else "L", side, px, qty, liq, D(fee).scaleb(-8), 0)
        for i, (side, px, qty, liq, fee, inv_) in enumerate(rows)
    ]
    return {"L": lin, "I": inv}, fills


def _value(inst, px):
    """Rule 1, a third way: the per-lot value rounded half-even to 1e-18 with Decimal.quantize."""
    unit = F(inst.lot_size) * F(inst.contract_multiplier)
    exact = -unit / px if inst.inverse else px * unit
    with localcontext(prec=200):
        q = (D(exact.numerator) / D(exact.denominator)).quantize(D("1e-18"), rounding=ROUND_HALF_EVEN)
    return F(q)


@settings(max_examples=300, deadline=None)
@given(fills_st, st.integers(1, 3_000), st.integers(1, 3_000))
def test_books_equal_cash_flows_exactly(rows, mark_l, mark_i):
    insts, fills = _build(rows)
    L = Ledger(insts)
    for f in fills:
        L.on_fill(f)
    L.mark("L", mark_l, 0)
    L.mark_mid2("I", mark_i, 0)  # bid + ask: odd values are half-tick mids
    net_usd = F(0)
    for sym, inst in insts.items():
        fs = [f for f in fills if f.symbol == sym]
        p = L.position(sym)
        # position == signed sum of fills
        assert p.qty_lots == sum(f.side * f.qty for f in fs)
        # realized + unrealized - fees + rebates == cash flow + open position at the mark - fees
        tick = F(inst.tick_size)
        mark = (F(mark_l) if sym == "L" else F(mark_i, 2)) * tick
        cash = sum((-f.side * f.qty * _value(inst, f.price * tick) for f in fs), F(0))
        fees = sum((F(f.fee) for f in fs), F(0))
        lhs = F(p.realized_pnl_settle) + F(p.unrealized_pnl_settle) - F(p.fees_paid_settle) + F(p.rebates_earned_settle)
        assert lhs == cash + p.qty_lots * _value(inst, mark) - fees == F(p.net_pnl_settle)
        assert F(p.fees_paid_settle) - F(p.rebates_earned_settle) == fees
        # rule 1 moves an inverse value by at most 0.5e-18 coin per lot
        exact_v = -F(inst.lot_size * inst.contract_multiplier) / mark if inst.inverse else None
        if exact_v is not None:
            assert abs(_value(inst, mark) - exact_v) <= F(1, 2 * 10**18)
        assert p.fees_paid_settle >= 0 and p.rebates_earned_settle >= 0
        net_usd += lhs * (mark if inst.inverse else 1)
    assert F(L.net_pnl_exact()) == net_usd
    r = L.reconcile(fills)
    assert r.ok
    assert r.total_diff_usd == r.realized_diff_usd == r.fees_diff_usd == r.rebates_diff_usd == D(0)
    # the Decimal views are the exact values rounded once
    t = L.totals()
    assert abs(F(t.net_pnl_usd) - F(L.net_pnl_exact())) <= F(1, 2 * 10**8)
    assert t.net_pnl_usd == usd(L.net_pnl_exact())


@settings(max_examples=150, deadline=None)
@given(fills_st, st.randoms(use_true_random=False))
def test_net_pnl_does_not_depend_on_fill_order(rows, rnd):
    insts, fills = _build(rows)
    a, b = Ledger(insts), Ledger(insts)
    for f in fills:
        a.on_fill(f)
    shuffled = list(fills)
    rnd.shuffle(shuffled)
    for f in shuffled:
        b.on_fill(f)
    for L in (a, b):
        L.mark("L", 1234, 0)
        L.mark("I", 4321, 0)
    assert a.net_pnl_exact() == b.net_pnl_exact()  # realized alone is path dependent; the total is not
    assert a.turnover_exact() == b.turnover_exact() and a.fees_exact() == b.fees_exact()


@settings(max_examples=150, deadline=None)
@given(fills_st)
def test_flat_book_realized_equals_cash_flow(rows):
    insts, fills = _build(rows)
    # close every symbol at the last price so the books end flat
    for sym in ("L", "I"):
        q = sum(f.side * f.qty for f in fills if f.symbol == sym)
        if q:
            fills.append(Fill(10**6, "close", sym, SELL if q > 0 else BUY, 777, abs(q), "taker", D(0)))
    L = Ledger(insts)
    for f in fills:
        L.on_fill(f)
    for sym, inst in insts.items():
        p = L.position(sym)
        assert p.qty_lots == 0 and p.unrealized_pnl_settle == 0 and p.avg_entry_px is None
        tick = F(inst.tick_size)
        cash = sum((-f.side * f.qty * _value(inst, f.price * tick) for f in fills if f.symbol == sym), F(0))
        assert F(p.realized_pnl_settle) == cash  # flat: realized is exactly the cash flow
    r = recompute(insts, fills, {"L": None, "I": None})
    assert r.realized_usd == L.realized_pnl_exact()


def test_a_long_random_session_reconciles_to_the_cent():
    rng = random.Random(7)
    L = ledger(LIN, INV)
    fills = []
    mid_l, mid_i = 600_000, 120_000
    for i in range(3_000):
        mid_l += rng.randint(-20, 20)
        mid_i += rng.randint(-4, 4)
        L.sample(i * 100 * MS)
        L.mark("BTCUSDT", mid_l, i * 100 * MS)
        L.mark("BTCUSD_PERP", mid_i, i * 100 * MS)
        if rng.random() < 0.3:
            sym, px, inst = ("BTCUSDT", mid_l, LIN) if rng.random() < 0.5 else ("BTCUSD_PERP", mid_i, INV)
            side = rng.choice([BUY, SELL])
            liq = "maker" if rng.random() < 0.8 else "taker"
            qty = rng.randint(1, 20)
            notional = inst.notional_usd(px, qty)
            if inst.inverse:
                notional = notional / (px * inst.tick_size)
            f = Fill(i * 100 * MS, f"o{i}", sym, side, px - side * 3, qty, liq,
                     fee_for(notional, -0.25 if liq == "maker" else 5.5), qty)
            fills.append(f)
            L.on_fill(f)
    L.sample(3_000 * 100 * MS)
    r = L.reconcile(fills)
    assert r.ok and r.total_diff_usd == D(0)
    assert len(L.equity_e8) == 301 and L.equity_e8[-1] == usd_e8(L.net_pnl_exact())


@given(st.integers(-10**30, 10**30), st.integers(1, 10**20))
def test_recompute_rounding_agrees_with_round_half_even(n, d):
    assert _half_even(F(n, d)) == round(F(n, d))
    assert _half_even(F(2 * n + 1, 2)) % 2 == 0  # ties go to even


def test_trim_samples_keeps_the_last_points_and_the_totals() -> None:
    from decimal import Decimal as D

    from mmkit.core.instruments import Instrument as Inst
    from mmkit.core.ledger import Ledger as L

    led = L({"X": Inst("X", D("0.1"), D("0.001"))}, 1000)
    led.mark_mid2("X", 2000, 0)
    for i in range(10):
        led.sample(i * 1_000_000_000)
    n = len(led.equity_ts_ns)
    assert led.trim_samples(3) == n - 3
    assert len(led.equity_ts_ns) == len(led.equity_e8) == len(led.exposure_e8) == 3
    assert led.equity_ts_ns[-1] == 9_000_000_000 and led.trim_samples(5) == 0
    with pytest.raises(ValueError):
        led.trim_samples(-1)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.integers(-10**40, 10**40), st.integers(-10**6, 10**6).map(lambda k: k * 10**10 + 5 * 10**9),
                 st.integers(-10**6, 10**6).map(lambda k: k * 10**10)))
def test_atto_to_e8_is_usd_e8_of_the_decimal(n):
    """The int path of an equity sample: same half-even rounding as the Decimal one, ties
    (exactly half a 1e-8) included."""
    from mmkit.core.ledger import atto_to_e8

    assert atto_to_e8(n) == usd_e8(atto_to_decimal(n))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["0.1", "0.01", "0.5", "0.25", "1", "0.000000001"]),
       st.sampled_from(["0.001", "0.003", "1", "0.5", "0.000000003"]),
       st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 50), st.integers(1, 10**7)), min_size=1,
                max_size=12),
       st.integers(2, 2 * 10**7))
def test_half_tick_marks_and_int_equity_agree_with_fractions(tick, lot, trades, mid2):
    """A linear book marked at a half-tick mid (bid + ask odd): the lot value is the
    half-even rounding of the exact Fraction, and the int equity sample equals the Decimal
    one (``usd_e8(net_pnl_exact())``).  Only a tick x lot of an odd number of 1e-18 makes
    the value a half atto (the rounding case): the smallest tick and lot below."""
    inst = Instrument("LIN", D(tick), D(lot))
    L = Ledger({"LIN": inst})
    for i, (side, qty, px) in enumerate(trades):
        L.on_fill(fill("LIN", side, px, qty, fee="0.0001", ts=i, cid=f"c{i}"))
    L.mark_mid2("LIN", mid2, 5)
    b = L._books["LIN"]
    face_atto = F(D(lot)) * 10**18
    assert b.mark_value() == round(F(mid2, 2) * F(D(tick)) * face_atto)
    assert L._net_e8() == usd_e8(L.net_pnl_exact())


@settings(max_examples=500, deadline=None)
@given(st.integers(-10**30, 10**30), st.integers(1, 10**12))
def test_div_half_even_is_round_of_the_fraction(n, d):
    """The books' one rounding (released basis on a partial close, half-tick lot values,
    equity samples) in ints: the same as Python's half-even ``round`` of the Fraction,
    ties included (``2n`` over ``2d`` style ties via even denominators)."""
    from mmkit.core.ledger import div_half_even

    assert div_half_even(n, d) == round(Fraction(n, d))
    assert div_half_even(2 * n + d, 2 * d) == round(Fraction(2 * n + d, 2 * d))


class _DecimalExposure(Ledger):
    """A ledger whose exposure always takes the Decimal path (the reference)."""

    __slots__ = ()

    def _exposure_e2(self) -> None:
        return None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["fill", "mid2", "mark", "dmark", "sample"]), st.sampled_from(["A", "B"]),
                          st.sampled_from([BUY, SELL]), st.integers(1, 40), st.integers(1, 10**6)),
                min_size=1, max_size=40))
def test_int_exposure_path_matches_the_decimal_one(steps):
    """Equity samples' exposure and the peak exposure, computed in ints while every book
    is linear with an int mark, equal the Decimal path's (forced by a ledger whose int
    path is off), through fills, int and half-tick marks and Decimal marks."""
    insts = {"A": Instrument("A", D("0.1"), D("0.001")), "B": Instrument("B", D("0.5"), D("0.003"))}
    fast, slow = Ledger(insts), _DecimalExposure(insts)
    t = 0
    for i, (kind, sym, side, qty, px) in enumerate(steps):
        t += 400_000_000
        for L in (fast, slow):
            if kind == "fill":
                L.on_fill(fill(sym, side, px, qty, fee="0.01", ts=t, cid=f"c{i}"))
            elif kind == "mid2":
                L.mark_mid2(sym, 2 * px + (qty % 2), t)
            elif kind == "mark":
                L.mark(sym, px, t)
            elif kind == "dmark":
                L.mark(sym, D(px) / 7, t)
            else:
                L.sample(t)
        assert fast._peak_ex == slow._peak_ex
    assert fast._ex_e8 == slow._ex_e8 and fast._eq_e8 == slow._eq_e8
    assert fast.peak_exposure_exact() == slow.peak_exposure_exact()
