"""The engine loop on hand-made events: the decision grid, the two clocks, stale books,
the end-of-stream flush and determinism.  The venue is the real ``FillSimulator`` and the
wiring the real ``research.backtest.build_engine``; only the instrument and the events
are made up (tick 0.1, lot 0.001, prices around 100.0)."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from mmkit.config import build_config
from mmkit.core.engine import Engine, EngineResult, crossing_price, feed_clock_shift
from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Quote, SeqGap, Trade
from mmkit.core.fillsim import FillSimulator, FlatFees
from mmkit.core.instruments import Instrument
from mmkit.core.latency import ConstantLatency, NormalLatency
from mmkit.core.queue import RiskAverseQueue
from mmkit.research.backtest import build_engine

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000
T0 = 1_000_000_000_000  # a multiple of 100 ms, so the grid starts at the first event
SYM = "TEST"
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"))


class Recorder:
    """Wraps a strategy and records (now_ns, position_lots) of every decision."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[int, int]] = []

    def quotes(self, ctx: Any) -> Any:
        self.calls.append((ctx.now_ns, ctx.position_lots))
        return self.inner.quotes(ctx)


def make_engine(interval_ms: int = 100, shift_ns: int = 0, latency: Any = None, seed: int = 1,
                cross_fills: bool = True) -> tuple[Engine, Recorder]:
    raw = yaml.safe_load((ROOT / "bench/configs/baseline.yaml").read_text())
    raw["trading"]["symbols"] = [SYM]
    cfg = build_config(raw)
    from mmkit.core.fillsim import FillSimParams

    sim = FillSimulator({SYM: INST}, latency or ConstantLatency(10.0, 10.0), RiskAverseQueue(), FlatFees(-0.5, 5.0),
                        random.Random(seed), FillSimParams(cross_fills=cross_fills))
    eng = build_engine(cfg, {SYM: INST}, sim, shift_ns, interval_ms, 0, True)
    rec = Recorder(eng.rt[SYM].strategy)
    eng.rt[SYM].strategy = rec
    return eng, rec


def snap(t: int, feed: int = 0, bid: int = 1000, ask: int = 1002, size: int = 1000) -> BookSnapshot:
    return BookSnapshot(t, t + feed, SYM, ((bid, size), (bid - 1, size)), ((ask, size), (ask + 1, size)))


def delta(t: int, feed: int = 0, bid: int = 1000, size: int = 1000) -> BookDelta:
    return BookDelta(t, t + feed, SYM, ((bid, size),), ())


def events_of(result: EngineResult, event: str) -> list[dict[str, Any]]:
    return [r for r in result.order_trace if r["event"] == event]


# ----------------------------------------------------------------------------- decision grid
def test_decisions_on_the_first_book_change_at_or_after_each_boundary() -> None:
    eng, rec = make_engine(interval_ms=100)
    evs: list[Any] = [snap(T0)]
    for i in range(1, 20):  # book changes every 30 ms: 30, 60, ..., 570
        evs.append(delta(T0 + 30 * i * MS, size=1000 + i))
        evs.append(Quote(T0 + 30 * i * MS + 1, T0 + 30 * i * MS + 1, SYM, 1000, 5, 1002, 5))  # quotes never decide
        evs.append(Trade(T0 + 30 * i * MS + 2, T0 + 30 * i * MS + 2, SYM, BUY, 1002, 1))  # nor do trades
    res = eng.run(evs)
    got = [(t - T0) // MS for t, _ in rec.calls]
    assert got == [0, 120, 210, 300, 420, 510]
    assert res.counters.decisions == 6 and res.counters.book_events == 20 and res.counters.trades == 19


def test_interval_zero_decides_on_every_book_change() -> None:
    eng, rec = make_engine(interval_ms=0)
    evs: list[Any] = [snap(T0)] + [delta(T0 + 7 * i * MS, size=1000 + i) for i in range(1, 12)]
    evs.append(Quote(T0 + 100 * MS, T0 + 100 * MS, SYM, 1000, 5, 1002, 5))
    res = eng.run(evs)
    assert [(t - T0) // MS for t, _ in rec.calls] == [7 * i for i in range(12)]
    assert res.counters.decisions == 12


# ----------------------------------------------------------------------------- clocks
def test_local_side_sees_events_after_feed_latency_and_reports_after_entry_plus_response() -> None:
    feed = 5 * MS
    eng, rec = make_engine(interval_ms=0)
    evs = [snap(T0, feed), delta(T0 + 100 * MS, feed, size=999)]
    res = eng.run(evs)
    creates, acks = events_of(res, "create"), events_of(res, "ack_create")
    assert [r["ts"] - T0 for r in creates] == [feed, feed]  # decided at local receive time
    assert [r["exchange_ts"] - T0 for r in acks] == [feed + 10 * MS] * 2  # arrived after the entry latency
    assert [r["ts"] - T0 for r in acks] == [feed + 20 * MS] * 2  # seen after entry + response
    assert res.start_ns == T0 + feed


def test_clock_shift_moves_the_local_clock() -> None:
    feed = 5 * MS
    eng, _ = make_engine(interval_ms=0, shift_ns=feed)
    res = eng.run([snap(T0, feed), delta(T0 + 100 * MS, feed, size=999)])
    assert [r["ts"] - T0 for r in events_of(res, "create")] == [0, 0]
    assert [r["ts"] - T0 for r in events_of(res, "ack_create")] == [20 * MS] * 2
    assert res.clock_shift_ns == feed and res.start_ns == T0


def test_a_fill_is_seen_only_after_the_response_latency() -> None:
    eng, rec = make_engine(interval_ms=0)
    evs: list[Any] = [snap(T0)]
    # our ask rests at 1004 (mid 1001 + 3 ticks); a buy print through it at 300 ms fills it
    evs.append(Trade(T0 + 300 * MS, T0 + 300 * MS, SYM, BUY, 1005, 50))
    evs += [delta(T0 + 305 * MS, size=990), delta(T0 + 309 * MS, size=991), delta(T0 + 310 * MS, size=992),
            delta(T0 + 320 * MS, size=993)]
    res = eng.run(evs)
    assert len(res.fills) == 1 and res.fills[0].ts == T0 + 300 * MS and res.fills[0].qty == 10
    seen = {(t - T0) // MS: pos for t, pos in rec.calls}
    assert seen[305] == 0 and seen[309] == 0  # the fill is in flight
    assert seen[310] == -10 and seen[320] == -10  # delivered at 300 + 10 ms: reports before market ties
    (fill_row,) = events_of(res, "fill")
    assert fill_row["ts"] == T0 + 310 * MS and fill_row["exchange_ts"] == T0 + 300 * MS


def test_feed_clock_shift_modes() -> None:
    assert feed_clock_shift([7, -3, 12]) == -3
    assert feed_clock_shift([], "auto") == 0
    assert feed_clock_shift([7], "raw") == 0
    assert feed_clock_shift([7], "offset", 42) == 42


# ----------------------------------------------------------------------------- stale book
def test_seq_gap_cancels_and_no_decision_until_the_next_snapshot() -> None:
    eng, rec = make_engine(interval_ms=0)
    gap_t = T0 + 100 * MS
    evs: list[Any] = [snap(T0), delta(T0 + 50 * MS, size=990),
                      SeqGap(gap_t, gap_t, SYM, 10, 12)]
    evs += [delta(gap_t + i * 10 * MS, size=900 + i) for i in range(1, 6)]  # stale: no decisions
    resnap = gap_t + 200 * MS
    evs += [snap(resnap, bid=1010, ask=1012), delta(resnap + 10 * MS, bid=1010, size=700)]
    res = eng.run(evs)
    assert res.counters.stale_cancels == 1
    cancels = events_of(res, "cancel")
    assert len(cancels) == 2 and {c["reason"] for c in cancels} == {"stale_book"} and cancels[0]["ts"] == gap_t
    times = [t for t, _ in rec.calls]
    assert not [t for t in times if gap_t <= t < resnap]
    assert resnap in times and res.counters.skipped_decisions == 5
    # the two orders from before the gap are canceled, two new ones were created at the snapshot
    assert len(events_of(res, "canceled")) == 2
    assert [c["ts"] for c in events_of(res, "create")] == [T0, T0, resnap, resnap]
    assert {r.client_id: r.canceled for r in res.orders} == {"bt-TEST-1": True, "bt-TEST-2": True,
                                                             "bt-TEST-3": False, "bt-TEST-4": False}


# ----------------------------------------------------------------------------- flush
def test_end_of_stream_flush_delivers_in_flight_reports() -> None:
    eng, rec = make_engine(interval_ms=0)
    last = T0 + 50 * MS
    # the last event fills our ask (acked at 20 ms); its report (due at 60 ms) is in flight
    res = eng.run([snap(T0), Trade(last, last, SYM, BUY, 1004, 10)])
    assert res.counters.fills == 1 and len(res.fills) == 1
    assert eng.ledger.qty_lots(SYM) == -10
    assert events_of(res, "fill")[0]["ts"] == last + 10 * MS
    assert res.end_ns == last + 10 * MS


def test_flush_delivers_acks_of_orders_sent_on_the_last_event() -> None:
    eng, _ = make_engine(interval_ms=0)
    res = eng.run([snap(T0)])  # one event: the creates arrive and are acked after the stream
    assert res.counters.creates == 2 and len(events_of(res, "ack_create")) == 2
    assert res.end_ns == T0 + 20 * MS
    assert all(r.placed_ns == T0 + 20 * MS and r.done_ns == 0 for r in res.orders)


# ----------------------------------------------------------------------------- determinism
def _walk(n: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    mid = 10_000
    t = T0
    evs: list[Any] = [BookSnapshot(t, t + 2 * MS, SYM, tuple((mid - i, 500) for i in range(1, 6)),
                                   tuple((mid + i, 500) for i in range(1, 6)))]
    for _ in range(n):
        t += rng.randint(1, 40) * MS
        if rng.random() < 0.3:
            side = rng.choice((BUY, SELL))
            evs.append(Trade(t, t + rng.randint(1, 5) * MS, SYM, side, mid + side * rng.randint(1, 5), rng.randint(1, 30)))
        else:
            mid += rng.choice((-1, 0, 1))
            evs.append(BookDelta(t, t + rng.randint(1, 5) * MS, SYM,
                                 tuple((mid - i, rng.randint(1, 900)) for i in range(1, 4)) + ((mid, 0),),
                                 tuple((mid + i, rng.randint(1, 900)) for i in range(1, 4))))
    return evs


def _fingerprint(res: EngineResult) -> tuple[Any, ...]:
    return (res.counters.as_dict(), list(res.fills), list(res.orders), list(res.order_trace), res.end_ns)


def test_same_events_and_seed_give_identical_results() -> None:
    evs = _walk(3000, 7)
    runs = []
    for _ in range(2):
        eng, _rec = make_engine(interval_ms=50, latency=NormalLatency(10.0, 3.0), seed=3)
        runs.append(_fingerprint(eng.run(iter(evs))))
    assert runs[0] == runs[1]
    assert runs[0][0]["fills"] > 0 and runs[0][0]["decisions"] > 50


# ----------------------------------------------------------------------------- incremental use (the live service)
def test_feeding_in_batches_equals_one_run() -> None:
    evs = _walk(3000, 11)
    eng, _ = make_engine(interval_ms=50, latency=NormalLatency(10.0, 3.0), seed=5)
    whole = _fingerprint(eng.run(iter(evs)))
    eng2, _ = make_engine(interval_ms=50, latency=NormalLatency(10.0, 3.0), seed=5)
    fed = 0
    for i in range(0, len(evs), 7):
        fed += eng2.feed(evs[i:i + 7])
    assert fed == len(evs)
    assert _fingerprint(eng2.close()) == whole


def test_pause_cancels_everything_and_stops_quoting_until_resume() -> None:
    evs = _walk(2000, 13)
    eng, rec = make_engine(interval_ms=50)
    eng.feed(evs[:300])
    eng.settle()
    assert eng.open_orders() > 0
    sent = eng.pause("kill_switch")
    assert sent > 0 and eng.paused and eng.pause_reason == "kill_switch"
    eng.settle()
    assert eng.open_orders() == 0
    calls = len(rec.calls)
    eng.feed(evs[300:400])
    assert len(rec.calls) == calls and eng.open_orders() == 0
    eng.resume()
    eng.feed(evs[400:])
    assert len(rec.calls) > calls
    res = eng.close()
    assert any(r["event"] == "cancel" and r["reason"] == "kill_switch" for r in res.order_trace)


# ----------------------------------------------------------------------------- allocator
def test_allocator_rebalances_the_budget_across_symbols_on_its_period() -> None:
    """Two symbols; the calmer one gets the larger inverse-vol share, targets follow the
    allocator (half per side), and the next rebalance waits for ``rebalance_minutes``."""
    raw = yaml.safe_load((ROOT / "bench/configs/baseline.yaml").read_text())
    raw["trading"]["symbols"] = ["AAA", "BBB"]
    raw["portfolio"] = {"budget_usd": 10000.0, "mode": "inverse_vol", "rebalance_minutes": 1.0, "max_weight": 0.9}
    cfg = build_config(raw)
    insts = {s: Instrument(s, Decimal("0.1"), Decimal("0.001")) for s in ("AAA", "BBB")}
    sim = FillSimulator(insts, ConstantLatency(10.0, 10.0), RiskAverseQueue(), FlatFees(-0.5, 5.0), random.Random(1))
    eng = build_engine(cfg, insts, sim, 0, 100, 0, False)
    rng = random.Random(4)
    evs: list[Any] = []
    t = T0
    mids = {"AAA": 10_000, "BBB": 10_000}
    for i in range(3000):
        t += 50 * MS
        sym = "AAA" if i % 2 else "BBB"
        mids[sym] += rng.choice((-1, 1)) * (1 if sym == "AAA" else 8)  # BBB moves 8x more
        m = mids[sym]
        evs.append(BookSnapshot(t, t + MS, sym, ((m - 1, 500), (m - 2, 500)), ((m + 1, 500), (m + 2, 500))))
    eng.feed(evs)
    res = eng.close()
    assert res.counters.rebalances == len(eng.allocations) >= 2
    times = [a.ts_ns for a in eng.allocations]
    assert all(b - a >= 60 * 1_000_000_000 for a, b in zip(times, times[1:]))
    last = eng.allocations[-1]
    w = {s.symbol: s.weight for s in last.symbols}
    assert abs(sum(w.values()) - 1.0) < 1e-9 and w["AAA"] > w["BBB"]
    for s in last.symbols:
        assert eng.rt[s.symbol].target_usd_per_side == s.target_usd / 2.0
        assert eng.rt[s.symbol].budget.target_usd == Decimal(repr(s.target_usd / 2.0))


# ----------------------------------------------------------------------------- operator flatten, history trim
def test_flatten_sends_a_tracked_crossing_order_whose_fill_is_booked() -> None:
    eng, _ = make_engine(interval_ms=0)
    # our ask (1004) is filled by a buy print; the report arrives at 60 ms
    eng.feed([snap(T0), Trade(T0 + 50 * MS, T0 + 50 * MS, SYM, BUY, 1004, 10), delta(T0 + 100 * MS, size=990)])
    assert eng.ledger.qty_lots(SYM) == -10
    eng.pause("operator")
    eng.settle()
    assert eng.open_orders() == 0
    fills = eng.counters.fills
    res = eng.flatten(SYM)
    assert res.sent and res.side == BUY and res.price == 1002 and res.qty == 10 and res.before_lots == -10
    assert eng.open_orders() == 1  # tracked by the engine and the order manager
    om = eng.rt[SYM].orders
    assert om.get(res.client_id) is not None and res.client_id.startswith("bt-TEST-")
    eng.settle()
    assert eng.ledger.qty_lots(SYM) == 0 and eng.counters.fills == fills + 1 and eng.open_orders() == 0
    assert om.get(res.client_id).state == "filled" and om.open_orders() == []
    out = eng.close()
    rec = next(r for r in out.orders if r.client_id == res.client_id)
    assert rec.filled_lots == 10 and rec.done_ns > 0 and out.fills[-1].liquidity == "taker"
    assert eng.flatten(SYM).why == "flat"


def test_flatten_with_an_empty_book_side_sends_nothing() -> None:
    eng, _ = make_engine(interval_ms=0)
    eng.feed([snap(T0), Trade(T0 + 50 * MS, T0 + 50 * MS, SYM, BUY, 1004, 10), delta(T0 + 100 * MS, size=990)])
    eng.pause()
    eng.settle()
    eng.rt[SYM].book.asks.clear()  # nobody to buy from
    res = eng.flatten(SYM)
    assert (res.sent, res.why, res.client_id) == (False, "empty book side", None) and eng.open_orders() == 0


def test_crossing_price_reaches_the_level_that_covers_the_size() -> None:
    asks = {1002: 5, 1003: 5, 1005: 10}
    assert crossing_price(asks, BUY, 4) == 1002 and crossing_price(asks, BUY, 6) == 1003
    assert crossing_price(asks, BUY, 20) == 1005 and crossing_price(asks, BUY, 99) == 1005  # thinner: worst level
    assert crossing_price({1000: 5, 999: 5}, SELL, 7) == 999 and crossing_price({}, SELL, 1) is None


def test_trim_history_drops_report_history_but_not_totals() -> None:
    eng, _ = make_engine(interval_ms=50, latency=NormalLatency(10.0, 3.0), seed=3)
    eng.feed(_walk(3000, 7))
    eng.settle()
    totals = eng.ledger.totals()
    n_fills, n_points = eng.counters.fills, len(eng.ledger.equity_ts_ns)
    assert n_fills > 5 and n_points > 10
    dropped = eng.trim_history(keep_fills=5, keep_equity_points=10)
    assert dropped["records"] > 0 and dropped["fills"] == n_fills - 5 and dropped["equity_points"] == n_points - 10
    led = eng.ledger
    assert led.totals() == totals and len(led.equity_ts_ns) == len(led.equity_e8) == len(led.exposure_e8) == 10
    assert eng.trim_history(keep_fills=5, keep_equity_points=10) == {"records": 0, "fills": 0, "equity_points": 0}
    res = eng.close()  # the report now covers only the kept window
    assert len(res.fills) == 5 and all(r.done_ns == 0 for r in res.orders)  # finished records are gone
    assert res.counters.fills == n_fills  # counters are not history
