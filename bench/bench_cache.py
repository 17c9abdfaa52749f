"""Benchmark the data path: JSONL parse+normalize, cache write, cache load, cache iteration.

Input is synthetic and seeded (standalone): a BTCUSDT-like stream on the Binance spot
grid (tick 0.01, lot 0.00001) shaped like a recorded feed: mostly quotes (bookTicker) and
trades, some small book deltas, a 50-level snapshot every 10,000 events.  Sizes are drawn
so that about 80% of size strings repeat an earlier one (recorded Binance bookTicker and
trade sizes: 63% spot, 76-91% USD-M; prices ~97%), which matters because the reader
memoizes conversions.  The file is written with the mmkit JSONL writer, then:

- JSONL parse+normalize: ``JsonlReader`` over the file, events/s (trade/quote-only file
  and the mixed file);
- cache write: ``write_cache`` of the events already in memory, events/s;
- cache load: ``load_cache`` (header + columns into memory), events/s; also with mmap;
- cache iterate: events rebuilt as Python objects from the columns, events/s.

Timed passes stream the events and keep none (as a backtest does); the round trips
JSONL -> events and events -> cache -> events are checked exactly, untimed.  Figures are
CPU time (``time.process_time``), best of ``--repeat``, with wall time beside them.

    .venv/bin/python bench/bench_cache.py [--events 300000] [--seed 11] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from mmkit.core.events import BUY, SELL, BookDelta, BookSnapshot, Event, Quote, Trade
from mmkit.core.instruments import Instrument
from mmkit.data.cache import load_cache, write_cache
from mmkit.data.jsonl import JsonlReader, write_jsonl

INSTRUMENT = Instrument("BTCUSDT", Decimal("0.01"), Decimal("0.00001"), min_notional=Decimal("5"), venue="binance-spot")


def _size(rng: random.Random) -> int:
    """Lots: log-uniform magnitude, rounded to 2-6 significant digits (coarse sizes repeat)."""
    lots = int(10 ** rng.uniform(0, 7))
    keep = rng.choice((2, 3, 4, 5, 6))
    scale = 10 ** max(0, len(str(lots)) - keep)
    return max(1, lots // scale * scale)


def make_events(n: int, seed: int, *, mixed: bool = True) -> list[Event]:
    rng = random.Random(seed)
    ts = 1_723_161_254_000_000_000
    mid = 6_183_763
    out: list[Event] = []
    sym = INSTRUMENT.symbol
    for i in range(n):
        ts += rng.randint(10_000, 3_000_000)
        recv = ts + rng.randint(200_000, 900_000)
        mid += rng.choice((-1, 0, 0, 0, 1))
        r = rng.random()
        if mixed and i % 10_000 == 0:
            out.append(BookSnapshot(ts, recv, sym, tuple((mid - k, _size(rng)) for k in range(50)),
                                    tuple((mid + 1 + k, _size(rng)) for k in range(50))))
        elif mixed and r < 0.10:
            nb, na = rng.randint(0, 5), rng.randint(0, 5)
            out.append(BookDelta(ts, recv, sym, tuple((mid - rng.randint(0, 30), rng.choice((0, _size(rng)))) for _ in range(nb)),
                                 tuple((mid + 1 + rng.randint(0, 30), rng.choice((0, _size(rng)))) for _ in range(na))))
        elif r < 0.45:
            out.append(Trade(ts, recv, sym, BUY if rng.random() < 0.5 else SELL, mid + rng.choice((0, 1)), _size(rng)))
        else:
            out.append(Quote(ts, recv, sym, mid, _size(rng), mid + 1, _size(rng)))
    return out


def best_of(repeat: int, fn) -> tuple[float, float]:
    """Best CPU time (``time.process_time``) and best wall time of ``repeat`` runs.

    The figures use CPU time: on a shared 2-core box other jobs steal the CPU, and the
    number should measure this code, not the neighbours.  Wall time is printed beside it.
    """
    cpu = wall = float("inf")
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return max(cpu, 1e-9), max(wall, 1e-9)


def rate(n: int, times: tuple[float, float]) -> str:
    return f"{n / times[0]:,.0f} events/s (wall {n / times[1]:,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    instruments = {INSTRUMENT.symbol: INSTRUMENT}
    with tempfile.TemporaryDirectory(prefix="mmkit-bench-") as tmp:
        tq_path, mixed_path, cache_path = Path(tmp, "tq.jsonl"), Path(tmp, "mixed.jsonl"), Path(tmp, "mixed.mmc")
        tq_events = make_events(args.events, args.seed, mixed=False)
        events = make_events(args.events, args.seed + 1, mixed=True)
        write_jsonl(tq_path, tq_events, instruments)
        write_jsonl(mixed_path, events, instruments)
        n = len(events)

        # Holding 300k events in a list would time the garbage collector, not the parser.
        def parse(path: Path) -> int:
            count = 0
            for _ev in JsonlReader(path, instruments=instruments):
                count += 1
            return count

        assert list(JsonlReader(tq_path, instruments=instruments)) == tq_events, "JSONL round trip differs (trade/quote file)"
        assert list(JsonlReader(mixed_path, instruments=instruments)) == events, "JSONL round trip differs (mixed file)"
        t_tq = best_of(args.repeat, lambda: parse(tq_path))
        t_mixed = best_of(args.repeat, lambda: parse(mixed_path))
        t_write = best_of(args.repeat, lambda: write_cache(cache_path, events, instruments, source=mixed_path))

        def load(use_mmap: bool) -> int:
            with load_cache(cache_path, use_mmap=use_mmap) as cache:
                return len(cache)

        t_load = best_of(args.repeat, lambda: load(False))
        t_mmap = best_of(args.repeat, lambda: load(True))

        def iterate() -> int:
            count = 0
            with load_cache(cache_path) as cache:
                for _ev in cache:
                    count += 1
            return count

        with load_cache(cache_path, verify=True) as cache:
            assert list(cache) == events, "cache round trip differs"
        t_iter = best_of(args.repeat, iterate)
        jsonl_mb = mixed_path.stat().st_size / 1e6
        cache_mb = cache_path.stat().st_size / 1e6
    print(f"events: {n:,} (mixed: quotes/trades/deltas/snapshots), JSONL {jsonl_mb:.1f} MB, cache {cache_mb:.1f} MB; "
          f"best of {args.repeat}, CPU time")
    print(f"JSONL parse+normalize (trade/quote file): {rate(len(tq_events), t_tq)}")
    print(f"JSONL parse+normalize (mixed file): {rate(n, t_mixed)}")
    print(f"cache write: {rate(n, t_write)}")
    print(f"cache load (read into memory): {rate(n, t_load)}; {t_mixed[0] / t_load[0]:,.0f}x faster than parsing the JSONL")
    print(f"cache load (mmap): {rate(n, t_mmap)}")
    print(f"cache iterate as event objects: {rate(n, t_iter)}")


if __name__ == "__main__":
    main()
