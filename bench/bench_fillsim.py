"""Benchmark the fill simulator: market events per second through ``on_market`` with two
resting orders, and actions per second through ``submit`` + ``process_arrivals``.

Input is synthetic and seeded (standalone): a BTCUSDT-like grid (tick 0.1, lot 0.001)
around 60,000 USD, 50 levels a side, a stream shaped like a busy perp feed -- 80% book
deltas of 1-3 levels near the top, 20% trades at the touch -- around a slowly wandering
mid.  Our bid and ask rest 3 ticks behind the touch, so most events touch none of our
levels (the fast path), some change the size at our levels and a few trades reach them
(a filled order is re-placed).  Baseline semantics: risk_averse queue, 10 ms constant
latency, maker -0.5 / taker 5 bps.  Figures:

- ``on_market``, 2 resting orders: the engine's per-event cost;
- ``on_market``, no orders: the pure book-keeping floor;
- ``L2Book.apply`` alone on the same stream, for reference;
- arrivals: create + cancel pairs submitted and processed (post-only, resting, acked,
  canceled), per action.

Times are CPU time (``time.process_time``), best of ``--repeat``.

    .venv/bin/python bench/bench_fillsim.py [--events 1000000] [--actions 200000] [--seed 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal

from mmkit.core.book import L2Book
from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Trade
from mmkit.core.fillsim import FillSimulator
from mmkit.core.instruments import Instrument
from mmkit.core.types import CancelOrder, CreateOrder

SYM = "BTCUSDT"
INST = Instrument(SYM, Decimal("0.1"), Decimal("0.001"))
MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
MID = 600_000
DEPTH = 50


def make_stream(n: int, seed: int) -> tuple[BookSnapshot, list]:
    """A snapshot and ``n`` events (deltas and trades), 1 ms apart, book kept uncrossed."""
    rng = random.Random(seed)
    mid = MID
    bids = {mid - i: rng.randint(1, 40) for i in range(1, DEPTH + 1)}
    asks = {mid + i: rng.randint(1, 40) for i in range(1, DEPTH + 1)}
    snap = BookSnapshot(T0, T0, SYM, tuple(bids.items()), tuple(asks.items()))
    out: list = []
    for i in range(1, n + 1):
        ts = T0 + i * MS
        if rng.random() < 0.2:
            side = rng.choice((BUY, SELL))
            px = min(asks) if side == BUY else max(bids)
            out.append(Trade(ts, ts, SYM, side, px, rng.randint(1, 5)))
            continue
        if rng.random() < 0.02:  # the mid wanders a tick now and then
            mid += rng.choice((-1, 1))
        b_lv, a_lv = [], []
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                px = mid - rng.randint(1, 8)
                b_lv.append((px, rng.choice((0, rng.randint(1, 40), rng.randint(1, 40)))))
            else:
                px = mid + rng.randint(1, 8)
                a_lv.append((px, rng.choice((0, rng.randint(1, 40), rng.randint(1, 40)))))
        b_lv += [(px, 0) for px in bids if px >= mid]
        a_lv += [(px, 0) for px in asks if px <= mid]
        for lv, book in ((b_lv, bids), (a_lv, asks)):
            for px, q in lv:
                if q:
                    book[px] = q
                else:
                    book.pop(px, None)
        out.append(BookDelta(ts, ts, SYM, tuple(b_lv), tuple(a_lv)))
    return snap, out


def bench_on_market(snap: BookSnapshot, events: list, with_orders: bool, repeat: int) -> tuple[float, dict]:
    best = float("inf")
    counters: dict = {}
    for _ in range(repeat):
        sim = FillSimulator.baseline({SYM: INST}, random.Random(1))
        sim.on_market(snap)
        seq = 0
        if with_orders:
            for side in (BUY, SELL):
                seq += 1
                sim.submit(CreateOrder(f"o{seq}", SYM, side, MID - side * 4, 2), T0)
            sim.process_arrivals(T0 + 10 * MS)
        on_market = sim.on_market
        live = sim._live  # re-place a filled order (a cheap check, outside the timed call)
        t0 = time.process_time()
        for i, ev in enumerate(events):
            on_market(ev)
            if with_orders and len(live) < 2 and not sim._arrivals:
                book = sim.book(SYM)
                have = {o.side for o in live.values()}
                for side in (BUY, SELL):
                    if side not in have and book.best_bid is not None and book.best_ask is not None:
                        seq += 1
                        px = book.best_bid - 3 if side == BUY else book.best_ask + 3
                        sim.submit(CreateOrder(f"o{seq}", SYM, side, px, 2), ev.ts)
        dt = time.process_time() - t0
        best = min(best, dt)
        sim.drain_reports()
        counters = sim.counters.as_dict()
    return len(events) / best, counters


def bench_book_only(snap: BookSnapshot, events: list, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        book = L2Book(SYM, INST)
        book.apply(snap)
        apply = book.apply
        t0 = time.process_time()
        for ev in events:
            apply(ev)
        best = min(best, time.process_time() - t0)
    return len(events) / best


def bench_arrivals(n: int, seed: int, repeat: int) -> float:
    rng = random.Random(seed)
    prices = [MID - rng.randint(1, 20) for _ in range(n // 2)]
    best = float("inf")
    for _ in range(repeat):
        sim = FillSimulator.baseline({SYM: INST}, random.Random(1))
        sim.on_market(BookSnapshot(T0, T0, SYM, tuple((MID - i, 10) for i in range(1, DEPTH + 1)),
                                   tuple((MID + i, 10) for i in range(1, DEPTH + 1))))
        creates = [CreateOrder(f"c{i}", SYM, BUY, px, 1) for i, px in enumerate(prices)]
        cancels = [CancelOrder(f"c{i}", SYM) for i in range(len(prices))]
        submit, process = sim.submit, sim.process_arrivals
        t0 = time.process_time()
        t = T0
        for c, x in zip(creates, cancels):
            t += MS
            submit(c, t)
            submit(x, t + MS // 2)
            process(t)
        process(t + 10**10)
        best = min(best, time.process_time() - t0)
        assert not sim.open_orders()
    return 2 * len(prices) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--actions", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    snap, events = make_stream(a.events, a.seed)
    n_trades = sum(isinstance(e, Trade) for e in events)
    print(f"stream: {len(events)} events ({n_trades} trades, {len(events) - n_trades} deltas), seed {a.seed}")
    rate, counters = bench_on_market(snap, events, True, a.repeat)
    print(f"on_market, 2 resting orders : {rate:12,.0f} events/s  ({1e6 / rate:.2f} us/event)")
    print(f"  fills {counters['fills']} (maker {counters['maker_fills']}), cross fills {counters['cross_fills']}, "
          f"orders placed {counters['submitted']}")
    rate0, _ = bench_on_market(snap, events, False, a.repeat)
    print(f"on_market, no orders        : {rate0:12,.0f} events/s  ({1e6 / rate0:.2f} us/event)")
    rb = bench_book_only(snap, events, a.repeat)
    print(f"L2Book.apply alone          : {rb:12,.0f} events/s  ({1e6 / rb:.2f} us/event)")
    ra = bench_arrivals(a.actions, a.seed, a.repeat)
    print(f"arrivals (create + cancel)  : {ra:12,.0f} actions/s ({1e6 / ra:.2f} us/action, submit + process + reports)")


if __name__ == "__main__":
    main()
