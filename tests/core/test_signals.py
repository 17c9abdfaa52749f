"""Signals: EWMA volatility, trade intensity, imbalance/microprice/micro bias, markouts.

Worked examples come from the seed ("M1 - Markout" test values, "Micro Signals" cap and
metric); config sections are the real ``mmkit.config_schema`` dataclasses so the
documented defaults are what the estimators consume.
"""

from __future__ import annotations

import dataclasses
import math
import random
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmkit.config_schema import SignalsConfig
from mmkit.core.book import L2Book
from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, Trade
from mmkit.core.instruments import Instrument
from mmkit.core.signals import (
    EwmaVol,
    MarkoutStats,
    MarkoutTracker,
    SignalSnapshot,
    SymbolSignals,
    TradeIntensity,
    book_imbalance,
    cap_micro_bias,
    make_signal_snapshot,
    markout_bps_e4,
    micro_bias_raw_ticks,
    micro_bias_strength,
    microprice_ticks,
    top_imbalance,
    top_lots,
)

S = 1_000_000_000
MS = 1_000_000


# ----------------------------------------------------------------------------- volatility
def test_vol_of_alternating_mid_is_the_per_second_return():
    vol = EwmaVol(30.0)
    r = math.log(101 / 100)
    for i in range(200):
        assert vol.on_mid(i * S, 100.0 if i % 2 == 0 else 101.0)
    # every sample is r**2 per 1 s, so the weight-normalized average is exactly r**2
    assert vol.vol_per_sqrt_s == pytest.approx(r, rel=1e-12)
    assert vol.vol_bps_per_sqrt_s == pytest.approx(r * 1e4, rel=1e-12)
    assert vol.samples == 199


def test_vol_scales_with_sqrt_time_not_with_tick_spacing():
    # same per-second variance sampled every 10 ms and every 1 s gives the same estimate
    sigma = 2e-4
    out = []
    for dt_ms in (10, 1000):
        v = EwmaVol(30.0)
        step = sigma * math.sqrt(dt_ms / 1000)
        lm = math.log(60000.0)
        for i in range(20000 if dt_ms == 10 else 400):
            lm += step if i % 2 else -step
            v.on_mid(i * dt_ms * MS, math.exp(lm))
        out.append(v.vol_per_sqrt_s)
    assert out[0] == pytest.approx(sigma, rel=1e-6)
    assert out[1] == pytest.approx(sigma, rel=1e-6)


def test_vol_estimates_a_random_walk():
    rng = random.Random(11)
    sigma = 1e-4  # per sqrt(second): 1 bps
    v = EwmaVol(600.0)
    lm = math.log(60000.0)
    for i in range(1, 60001):  # 100 ms steps for 100 minutes
        lm += rng.gauss(0.0, sigma * math.sqrt(0.1))
        v.on_mid(i * 100 * MS, math.exp(lm))
    assert v.vol_per_sqrt_s == pytest.approx(sigma, rel=0.1)


def test_vol_half_life_weights_old_data_by_one_half():
    hl = 30.0
    v = EwmaVol(hl)
    a, b = 1e-4, 3e-4
    t = 0
    lm = 0.0
    v.on_mid(t, math.exp(lm))
    for i in range(20000):  # long phase with variance rate a**2 per s (1 s steps)
        t += S
        lm += a if i % 2 else -a
        v.on_mid(t, math.exp(lm))
    for i in range(int(hl)):  # exactly one half-life of variance rate b**2
        t += S
        lm += b if i % 2 else -b
        v.on_mid(t, math.exp(lm))
    assert v.variance_per_s == pytest.approx((a * a + b * b) / 2, rel=1e-9)


def test_vol_ignores_invalid_ticks_and_keeps_the_last_value():
    v = EwmaVol(30.0)
    assert v.on_mid(0, 100.0)
    assert v.on_mid(S, 101.0)
    kept = v.vol_per_sqrt_s
    assert kept > 0
    for ts, mid in ((2 * S, 0.0), (2 * S, -5.0), (2 * S, float("nan")), (2 * S, float("inf")),
                    (S, 150.0), (S // 2, 150.0)):  # bad mid, equal and earlier time
        assert not v.on_mid(ts, mid)
    assert v.vol_per_sqrt_s == kept
    assert v.rejected == 6 and v.samples == 1
    assert v.last_ts == S
    # the next valid tick is measured from the last valid one
    assert v.on_mid(2 * S, 101.0)
    assert v.samples == 2


def test_vol_needs_a_positive_half_life():
    with pytest.raises(ValueError):
        EwmaVol(0)


# ----------------------------------------------------------------------------- trade intensity
def test_trade_intensity_of_a_steady_flow():
    ti = TradeIntensity(10.0)
    for i in range(2000):  # 10 trades per second, alternating 3 buy lots and 1 sell lot
        ti.on_trade(i * 100 * MS, BUY if i % 2 == 0 else SELL, 3 if i % 2 == 0 else 1)
    now = 1999 * 100 * MS
    trades, buy, sell = ti.rates(now)
    # a discrete flow decayed continuously: exact value is k / (1 - d) with d = 2**(-dt/hl)
    d = 2 ** (-0.1 / 10.0)
    assert trades == pytest.approx(math.log(2) / 10.0 / (1 - d), rel=1e-6)
    assert trades == pytest.approx(10.0, rel=0.01)
    assert buy == pytest.approx(15.0, rel=0.02)
    assert sell == pytest.approx(5.0, rel=0.02)
    # no trades for one half-life: the rates halve; reading does not change state
    later = ti.rates(now + 10 * S)
    assert later[0] == pytest.approx(trades / 2, rel=1e-9)
    assert ti.rates(now) == (trades, buy, sell)


def test_trade_intensity_tolerates_reordered_trades():
    ti = TradeIntensity(10.0)
    ti.on_trade(5 * S, BUY, 1)
    ti.on_trade(4 * S, SELL, 1)  # earlier: added without decay
    assert ti.trades == 2 and ti.last_ts == 5 * S
    assert ti.rates(5 * S)[0] == pytest.approx(2 * math.log(2) / 10.0)
    assert TradeIntensity(1.0).rates(0) == (0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------- micro signals
def test_microprice_and_imbalance_of_the_touch():
    # seed micro example: bid 100.0 x 2, ask 100.2 x 1 (tick 0.1 -> 1000 / 1002)
    assert microprice_ticks(1000, 1002, 2, 1) == pytest.approx((1000 * 1 + 1002 * 2) / 3)
    assert top_imbalance(2, 1) == pytest.approx(1 / 3)
    assert top_imbalance(0, 0) == 0.0
    assert microprice_ticks(1000, 1002, 0, 0) == 1001.0
    # at the touch, (microprice - mid) / half-spread equals the imbalance
    mp = microprice_ticks(1000, 1002, 2, 1)
    assert (mp - 1001) / 1.0 == pytest.approx(top_imbalance(2, 1))


def test_micro_bias_is_capped_at_impact_cap_ratio_of_the_raw_delta():
    # seed "Micro Signals": bias_adjust within +-impact_cap_ratio * |delta_raw| per tick
    assert cap_micro_bias(5.0, 10.0, 0.10) == pytest.approx(1.0)
    assert cap_micro_bias(-5.0, -10.0, 0.10) == pytest.approx(-1.0)
    assert cap_micro_bias(0.3, 10.0, 0.10) == 0.3
    assert cap_micro_bias(0.3, 0.0, 0.10) == 0.0
    assert cap_micro_bias(50.0, 10.0, 7.0) == 10.0  # ratio clamped to [0, 1]
    assert cap_micro_bias(5.0, 10.0, -1.0) == 0.0
    # metric micro_bias_strength = |bias_adjust| / max(|delta_raw|, 1e-9)
    assert micro_bias_strength(1.0, 10.0) == pytest.approx(0.10)
    assert micro_bias_strength(0.5, 0.0) == pytest.approx(0.5e9)


@given(raw=st.floats(-1e6, 1e6), delta=st.floats(-1e6, 1e6), cap=st.floats(0, 1))
def test_micro_bias_strength_never_exceeds_the_cap(raw, delta, cap):
    adj = cap_micro_bias(raw, delta, cap)
    assert abs(adj) <= abs(raw) + 1e-12
    assert micro_bias_strength(adj, delta) <= cap + 1e-9 or abs(delta) < 1e-9
    assert adj == 0 or math.copysign(1, adj) == math.copysign(1, raw)


def test_micro_bias_raw_combines_imbalance_bps_and_microprice_weight():
    cfg = SignalsConfig()
    # imbalance 0.5 at mid 600000 ticks: 0.5 * 0.5 bps = 0.25 bps = 15 ticks; tilt 0.4 tick * 0.5
    raw = micro_bias_raw_ticks(600000.0, 0.5, 0.4, cfg.imbalance_bias_bps, cfg.microprice_weight_ratio)
    assert raw == pytest.approx(15.0 + 0.2)


# ----------------------------------------------------------------------------- markouts
def _tracker_with(price_exec: int, mid_t0: int, mid_t200: int, mid_t500: int, side: int = BUY) -> MarkoutTracker:
    """The seed's ``record_markout(symbol, color, price_exec, mid_t0, mid_t200, mid_t500)`` as events."""
    m = MarkoutTracker(SignalsConfig().markout_horizons_ms)
    m.on_mid(0, 2 * mid_t0)
    m.on_fill(0, side, price_exec)
    m.on_mid(200 * MS, 2 * mid_t200)
    m.on_mid(500 * MS, 2 * mid_t500)
    m.advance(500 * MS)
    return m


def test_markout_seed_examples():
    # seed: record_markout("BTCUSDT", "blue", 50000, 50000, 50025, 50050) -> 5.0 / 10.0 bps,
    # sum_bps_int == 50000 (5.0 * 10000)
    m = _tracker_with(50000, 50000, 50025, 50050)
    s200, s500 = m.stats(200), m.stats(500)
    assert (s200.count, s200.sum_bps_e4, s200.avg_bps, s200.up, s200.down) == (1, 50000, 5.0, 1, 0)
    assert (s500.sum_bps_e4, s500.avg_bps) == (100000, 10.0)
    # negative: 49975 / 49950 -> -5.0 / -10.0 bps, counted as down (adverse)
    m = _tracker_with(50000, 50000, 49975, 49950)
    assert m.stats(200).avg_bps == -5.0 and m.stats(500).avg_bps == -10.0
    assert m.stats(200).down == 1 and m.stats(200).adverse_fill_ratio == 1.0
    # ADAUSDT 0.5 -> 0.501 / 0.502 (tick 0.001): 20 / 40 bps
    m = _tracker_with(500, 500, 501, 502)
    assert m.stats(200).avg_bps == 20.0 and m.stats(500).avg_bps == 40.0


def test_markout_seed_average_of_three_fills():
    # ETHUSDT 3000 -> (3003, 3006), (3006, 3012), (3009, 3018): 200 ms avg 20.0, 500 ms avg 40.0
    m = MarkoutTracker((200, 500))
    m.on_mid(0, 6000)
    t = 0
    for d200, d500 in ((3003, 3006), (3006, 3012), (3009, 3018)):
        m.on_mid(t, 6000)
        m.on_fill(t, BUY, 3000)
        m.on_mid(t + 200 * MS, 2 * d200)
        m.on_mid(t + 500 * MS, 2 * d500)
        t += 1 * S
    m.advance(t)
    assert m.stats(200) == MarkoutStats(200, 3, 600000, 3, 0)
    assert m.stats(200).avg_bps == 20.0 and m.stats(500).avg_bps == 40.0


def test_markout_is_signed_by_side_and_exact_on_half_ticks():
    # sell at 100 and the mid falls to 99.5: good for us, +50 bps
    assert markout_bps_e4(SELL, 100, 199) == 500000
    assert markout_bps_e4(BUY, 100, 199) == -500000
    # truncated toward zero (seed F3.6b int()), not floored: 1/3 * 1e4 bps
    assert markout_bps_e4(BUY, 3, 8) == 33333333
    assert markout_bps_e4(SELL, 3, 8) == -33333333
    assert markout_bps_e4(BUY, 3, 6) == 0


@given(side=st.sampled_from((BUY, SELL)), px=st.integers(1, 10**9), mid2=st.integers(1, 2 * 10**9))
def test_markout_fixed_point_matches_exact_rational(side, px, mid2):
    exact = side * (Fraction(mid2, 2) - px) / px * 10**8
    got = markout_bps_e4(side, px, mid2)
    assert got == int(exact)  # int() truncates toward zero, like the seed


def test_markout_uses_the_mid_in_force_at_the_horizon():
    m = MarkoutTracker((200,))
    m.on_mid(0, 2000)
    m.on_fill(100 * MS, BUY, 1000)  # due at 300 ms
    m.on_mid(250 * MS, 2002)  # in force from 250 ms: this is the mid at 300 ms
    m.on_mid(400 * MS, 2010)  # after the due time: must not be used
    assert m.stats(200).sum_bps_e4 == markout_bps_e4(BUY, 1000, 2002) == 100000  # 10 bps
    # a mid change exactly at the due time is in force at that time
    m2 = MarkoutTracker((200,))
    m2.on_mid(0, 2000)
    m2.on_fill(0, BUY, 1000)
    m2.on_mid(200 * MS, 2004)
    assert m2.stats(200).count == 0  # still pending until time moves on
    m2.advance(200 * MS)
    assert m2.stats(200).sum_bps_e4 == 200000
    # no mid change: advance matures with the current mid
    m3 = MarkoutTracker((200,))
    m3.on_mid(0, 2000)
    m3.on_fill(0, SELL, 1000)
    m3.advance(199 * MS)
    assert m3.pending() == 1
    m3.advance(200 * MS)
    assert m3.pending() == 0 and m3.stats(200).count == 1 and m3.stats(200).sum_bps_e4 == 0


def test_markout_waits_for_a_first_mid_and_checks_inputs():
    m = MarkoutTracker((200, 500))
    m.on_fill(0, BUY, 100)
    m.advance(10 * S)
    assert m.pending() == 1
    m.on_mid(11 * S, 202)
    assert m.stats(200).count == 1 and m.stats(500).count == 1
    assert m.stats(500).avg_bps == 100.0
    with pytest.raises(ValueError):
        MarkoutTracker((200, 200))
    with pytest.raises(ValueError):
        MarkoutTracker((0,))
    with pytest.raises(ValueError):
        m.on_fill(0, 0, 100)
    with pytest.raises(ValueError):
        m.on_fill(0, BUY, 0)
    m.on_fill(20 * S, BUY, 100)
    m.on_fill(19 * S, BUY, 100)  # out of order is kept sorted (see the test below)
    assert m.pending() == 2
    assert MarkoutStats(200, 0, 0, 0, 0).avg_bps == 0.0
    assert MarkoutStats(200, 0, 0, 0, 0).adverse_fill_ratio == 0.0
    assert [s.horizon_ms for s in m.all_stats()] == [200, 500]


def test_markout_average_rounds_to_six_decimals():
    s = MarkoutStats(200, 3, 10, 3, 0)  # 10e-4 / 3 bps
    assert s.avg_bps == round(10 / 3 / 1e4, 6) == 0.000333


# ----------------------------------------------------------------------------- imbalance over n levels
def _book(bids: dict[int, int], asks: dict[int, int]) -> L2Book:
    b = L2Book("T")
    b.apply_snapshot(list(bids.items()), list(asks.items()))
    return b


@settings(max_examples=200)
@given(
    bids=st.dictionaries(st.integers(1, 500), st.integers(1, 1000), max_size=40),
    asks=st.dictionaries(st.integers(501, 1000), st.integers(1, 1000), max_size=40),
    n=st.integers(1, 8),
)
def test_walked_imbalance_equals_the_books_sorted_imbalance(bids, asks, n):
    book = _book(bids, asks)
    expected = book.imbalance(n)
    got = book_imbalance(book, n)
    assert got == pytest.approx(0.0 if expected is None else expected, abs=1e-15)


def test_top_lots_on_dense_and_sparse_sides():
    dense = {100 - i: 1 + i for i in range(50)}
    assert top_lots(dense, 100, -1, 3) == 1 + 2 + 3
    sparse = {10**6: 1, 5: 2, 3: 4}  # the walk gives up and falls back to a partial sort
    assert top_lots(sparse, 10**6, -1, 2) == 1 + 2
    assert top_lots({1: 5}, 1, 1, 3) == 5


# ----------------------------------------------------------------------------- per symbol
INST = Instrument("BTCUSDT", Decimal("0.1"), Decimal("0.001"))


def test_symbol_signals_consume_the_documented_config_defaults():
    cfg = SignalsConfig()
    sig = SymbolSignals("BTCUSDT", cfg)
    assert sig.vol.half_life_ns == 30 * S
    assert sig.intensity.half_life_ns == 10 * S
    assert sig.markouts.horizons_ms == (200, 500)
    assert (sig.imbalance_levels, sig.imbalance_bias_bps, sig.microprice_weight_ratio, sig.impact_cap_ratio) == (
        5, 0.5, 0.5, 0.10)
    with pytest.raises(ValueError):
        SymbolSignals("X", dataclasses.replace(cfg, imbalance_levels=0))


def test_symbol_signals_snapshot_from_a_real_book():
    sig = SymbolSignals("BTCUSDT", SignalsConfig())
    book = L2Book("BTCUSDT", INST)
    snap_ev = BookSnapshot(0, 0, "BTCUSDT", tuple((600000 - i, 10 + i) for i in range(10)),
                           tuple((600002 + i, 5) for i in range(10)))
    book.apply(snap_ev)
    sig.on_event(snap_ev, book)
    delta = BookDelta(S, S, "BTCUSDT", ((600001, 4),), ())
    book.apply(delta)
    sig.on_event(delta, book)
    sig.on_event(Trade(S, S, "BTCUSDT", BUY, 600002, 7))
    sig.on_fill(S, BUY, 600001)
    snap = sig.snapshot(S, book)
    assert isinstance(snap, SignalSnapshot)
    assert snap.mid_ticks == (600001 + 600002) / 2
    assert snap.vol_samples == 1 and snap.vol_per_sqrt_s > 0
    assert snap.vol_bps_per_sqrt_s == pytest.approx(snap.vol_per_sqrt_s * 1e4)
    assert snap.imbalance == pytest.approx(book.imbalance(5))
    mp = microprice_ticks(600001, 600002, 4, 5)
    assert snap.microprice_tilt_ticks == pytest.approx(mp - snap.mid_ticks)
    assert snap.micro_bias_raw_ticks == pytest.approx(
        micro_bias_raw_ticks(snap.mid_ticks, snap.imbalance, snap.microprice_tilt_ticks, 0.5, 0.5))
    assert snap.trades_per_s == pytest.approx(math.log(2) / 10)
    assert snap.buy_lots_per_s == pytest.approx(7 * math.log(2) / 10)
    assert snap.impact_cap_ratio == 0.10
    sig.on_event(Quote(2 * S, 2 * S, "BTCUSDT", 600003, 1, 600005, 1))
    assert sig.vol.samples == 2
    later = sig.snapshot(3 * S, book)  # matures the +200 / +500 ms markouts
    assert later.ts_ns == 3 * S
    assert sig.markouts.stats(200).count == 1 and sig.markouts.stats(500).count == 1


def test_symbol_signals_skip_crossed_or_one_sided_touches():
    sig = SymbolSignals("BTCUSDT", SignalsConfig())
    sig.on_touch(0, 100, 100)
    sig.on_touch(0, None, 101)
    sig.on_touch(0, 101, 100)
    assert sig.vol.last_ts is None
    empty = L2Book("BTCUSDT")
    snap = sig.snapshot(5, empty)
    assert snap.mid_ticks is None and snap.imbalance == 0.0 and snap.micro_bias_raw_ticks == 0.0


class _Touch:
    """A minimal stand-in book: just the touch (no levels), as a quote feed gives."""

    def __init__(self, bid: int, ask: int, bq: int, aq: int) -> None:
        self.best_bid, self.best_ask, self.best_bid_qty, self.best_ask_qty = bid, ask, bq, aq


def test_snapshot_from_a_touch_only_book_uses_the_top_of_book_imbalance():
    sig = SymbolSignals("BTCUSDT", SignalsConfig())
    snap = sig.snapshot(0, _Touch(1000, 1002, 3, 1))
    assert snap.imbalance == pytest.approx(0.5)
    assert snap.microprice_tilt_ticks == pytest.approx(0.5)


def test_snapshot_builder_matches_the_dataclass():
    fields = tuple(f.name for f in dataclasses.fields(SignalSnapshot))
    assert make_signal_snapshot.__slots__ == fields  # type: ignore[attr-defined]
    a = make_signal_snapshot(*range(len(fields)))
    assert type(a) is SignalSnapshot and a == SignalSnapshot(*range(len(fields)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.ts_ns = 5  # type: ignore[misc]


def test_markout_accepts_a_fill_earlier_than_one_already_queued():
    """Exchange clocks interleave across channels: a fill may carry an earlier ts than the
    one before it.  It is kept in due-time order and matures against its own horizon."""
    m = MarkoutTracker((200,))
    m.on_mid(0, 2000)
    m.on_fill(150 * MS, BUY, 1000)  # due 350 ms
    m.on_fill(100 * MS, BUY, 1000)  # due 300 ms: earlier, arrives later
    m.on_mid(320 * MS, 2002)  # in force from 320 ms: after the 300 ms fill matured at 2000
    m.advance(400 * MS)
    assert m.stats(200).count == 2
    assert m.stats(200).sum_bps_e4 == markout_bps_e4(BUY, 1000, 2000) + markout_bps_e4(BUY, 1000, 2002)
