"""Benchmark the L2 book hot path: level updates applied per second and best bid/ask reads.

Input is synthetic and seeded (standalone): a 1,000-level-a-side book around a drifting
mid, then a stream of updates shaped like a busy perp feed: mostly size changes near the
top, plus new levels and deletes (often of the best level, which exercises the heap).
Times are CPU time (``time.process_time``), best of ``--repeat``: on a shared box the
neighbours' load should not count.  ``--book`` picks ``L2Book`` (``dict``), the C-backed
``NativeL2Book`` of the compiled engine loop (``native``) or both (default, when built);
the figures are per Python call, so they measure the call as much as the book.

    .venv/bin/python bench/bench_book.py [--updates 1000000] [--seed 7] [--repeat 3] [--book both]
"""

from __future__ import annotations

import argparse
import random
import time

from typing import Any

from mmkit.core import book as book_module
from mmkit.core.book import ASK, BID, L2Book
from mmkit.core.events import BookDelta


def make_updates(n: int, seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int, int]]]:
    """A snapshot (bids, asks) and ``n`` realistic ``(side, ticks, lots)`` updates."""
    rng = random.Random(seed)
    mid = 6_000_000
    bids = {mid - 1 - i: rng.randint(1, 5000) for i in range(1000)}
    asks = {mid + 1 + i: rng.randint(1, 5000) for i in range(1000)}
    snap = (list(bids.items()), list(asks.items()))
    out: list[tuple[int, int, int]] = []
    best_bid, best_ask = mid - 1, mid + 1
    for _ in range(n):
        side = BID if rng.random() < 0.5 else ASK
        book = bids if side == BID else asks
        r = rng.random()
        depth = int(rng.expovariate(0.2))  # mostly within ~5 ticks of the top
        if side == BID:
            px = best_bid - depth
        else:
            px = best_ask + depth
        if r < 0.12 and len(book) > 50:  # delete (often the best level)
            qty = 0
        elif r < 0.20:  # improve the top by one tick (new level) if it keeps the book uncrossed
            px = best_bid + 1 if side == BID else best_ask - 1
            if best_ask - best_bid <= 2:
                px = best_bid - depth if side == BID else best_ask + depth
            qty = rng.randint(1, 5000)
        else:
            qty = rng.randint(1, 5000)
        if qty:
            book[px] = qty
        else:
            book.pop(px, None)
        if side == BID:
            if qty and px > best_bid:
                best_bid = px
            elif not qty and px == best_bid:
                best_bid = max(bids)
        elif qty and px < best_ask:
            best_ask = px
        elif not qty and px == best_ask:
            best_ask = min(asks)
        out.append((side, px, qty))
    return snap[0], snap[1], out


def bench(n: int, seed: int, repeat: int, cls: Any = L2Book) -> dict[str, float]:
    bids, asks, updates = make_updates(n, seed)
    best_apply = float("inf")
    for _ in range(repeat):
        book = cls("BENCH")
        book.apply_snapshot(bids, asks)
        apply = book.apply_level
        t0 = time.process_time()
        for side, px, qty in updates:
            apply(side, px, qty)
        best_apply = min(best_apply, time.process_time() - t0)
    assert not book.crossed, "generator produced a crossed book"
    deltas = []
    sizes = random.Random(seed + 1)
    i = 0
    while i < len(updates):  # the same updates grouped into exchange-style delta messages of 1-8 levels
        k = sizes.randint(1, 8)
        chunk = updates[i : i + k]
        deltas.append(BookDelta(i, i, "BENCH", tuple((p, q) for s, p, q in chunk if s == BID),
                                tuple((p, q) for s, p, q in chunk if s == ASK)))
        i += k
    best_events = float("inf")
    for _ in range(repeat):
        book = cls("BENCH")
        book.apply_snapshot(bids, asks)
        apply_event = book.apply
        t0 = time.process_time()
        for ev in deltas:
            apply_event(ev)
        best_events = min(best_events, time.process_time() - t0)
    reads = n
    best_read = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _i in range(reads):
            book.best_bid
            book.best_ask
        best_read = min(best_read, time.process_time() - t0)
    t0 = time.process_time()
    for _i in range(reads // 10):
        book.mid_ticks
        book.microprice_ticks
    t_derived = time.process_time() - t0
    return {
        "updates": n,
        "book_updates_per_s": n / best_apply,
        "delta_events": len(deltas),
        "delta_events_per_s": len(deltas) / best_events,
        "best_bid_ask_reads_per_s": reads / best_read,
        "mid_and_microprice_per_s": (reads // 10) / t_derived,
        "levels_at_end": len(book.bids) + len(book.asks),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--book", choices=("dict", "native", "both"), default="both")
    args = ap.parse_args()
    classes = []
    if args.book in ("dict", "both"):
        classes.append(L2Book)
    if args.book in ("native", "both"):
        if book_module.NativeL2Book is None:
            if args.book == "native":
                raise SystemExit("NativeL2Book is not built (mmkit.core._nbook needs a C compiler at install)")
        else:
            classes.append(book_module.NativeL2Book)
    for cls in classes:
        res = bench(args.updates, args.seed, args.repeat, cls)
        name = cls.__name__
        print(f"{name} apply_level: {res['book_updates_per_s']:,.0f} updates/s ({res['updates']:,} updates, "
              f"best of {args.repeat})")
        print(f"{name} apply(BookDelta): {res['delta_events_per_s']:,.0f} events/s ({res['delta_events']:,} deltas, "
              f"{res['delta_events_per_s'] * res['updates'] / res['delta_events']:,.0f} levels/s)")
        print(f"{name} best bid/ask reads: {res['best_bid_ask_reads_per_s']:,.0f} reads/s (both sides per read)")
        print(f"{name} mid + microprice: {res['mid_and_microprice_per_s']:,.0f} /s")
        print(f"{name} levels at end: {res['levels_at_end']:,}")


if __name__ == "__main__":
    main()
