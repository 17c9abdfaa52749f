"""Benchmark the market-data path on the real Binance USD-M recording, and convert's memory.

Standalone (``.venv/bin/python bench/bench_data.py``).  The real USD-M pair
(``fixtures/real/binance/usdm/btcusdt_20240718.gz`` + ``..19.gz``, 71,979 events read as one
stream) is converted once to mmkit JSONL and to the cache in a temp folder; then, events/s
of CPU time (``time.process_time``, best of ``--repeat``; wall time beside it):

- each reader on the same data: Binance raw (gunzip, parse, sync and sequence checks),
  mmkit JSONL (parse+normalize, target >= 300k events/s; the compiled scanner and the
  pure-Python path, each on all events and on the trade and quote lines only), cache
  (load, iterate as events);
- book apply: every level of every book event into ``core.book.L2Book.apply_level``
  (target >= 1M updates/s), and whole events through ``L2Book.apply``;
- cache write (events in memory -> file) and cache load (target >= 5M events/s: header and
  columns read into memory; mmap);
- ``data inspect`` (reader + statistics) and the synthetic generator, for reference.

Then peak memory of ``convert``: a child process per run (``resource.getrusage`` of itself,
ru_maxrss) converts a synthetic JSONL file of N and of 4N events (``mmkit data synth``;
the N file is the first N lines of the 4N one) to the cache and to JSONL.  Flat figures
mean memory does not grow with the input.  The cache writer buffers up to 262,144 rows per
column before spilling them to a temp file, so N must be above that for the 1x run to
reach the bound (the default is 300,000).  It runs first, while this process is small: a
child's ru_maxrss starts from its parent's.

    .venv/bin/python bench/bench_data.py [--repeat 3] [--rss-events 300000] [--no-rss]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmkit.core.book import ASK, BID, L2Book  # noqa: E402
from mmkit.core.events import BookDelta, BookSnapshot  # noqa: E402
from mmkit.data.cache import load_cache, write_cache  # noqa: E402
from mmkit.data.convert import convert  # noqa: E402
from mmkit.data.inspect import inspect_files  # noqa: E402
from mmkit.data.jsonl import COMPILED, JsonlReader  # noqa: E402
from mmkit.data.readers import open_events  # noqa: E402
from mmkit.data.synth import generate, write_synth  # noqa: E402

USDM = [str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240718.gz"), str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240719.gz")]
CHILD = """
import resource, sys
from mmkit.data.convert import convert
n = convert([sys.argv[1]], sys.argv[2], to_fmt=sys.argv[3], venue="synthetic").tally.total if len(sys.argv) > 1 else 0
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    cpu = wall = float("inf")
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return max(cpu, 1e-9), max(wall, 1e-9)


def line(label: str, n: int, t: tuple[float, float], unit: str = "events/s", target: str = "") -> None:
    print(f"{label:44s} {n / t[0]:>14,.0f} {unit}  (wall {n / t[1]:,.0f}){target}")


def count(it: object) -> int:
    n = 0
    for _ in it:  # type: ignore[attr-defined]
        n += 1
    return n


def rss_run(*args: str) -> tuple[int, int]:
    """Run convert in a fresh child; return (events, the child's own peak RSS in KiB from getrusage)."""
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    n, kb = out.stdout.split()
    return int(n), int(kb)


def rss_check(tmp: Path, n: int) -> None:
    big, small = tmp / "synth_4x.jsonl", tmp / "synth_1x.jsonl"
    write_synth(str(big), 7, 4 * n)
    with open(big, "rb") as src, open(small, "wb") as dst:
        for i, raw in enumerate(src):
            if i == n:
                break
            dst.write(raw)
    _, base = rss_run()
    print(f"\npeak RSS of convert (child process, ru_maxrss); interpreter + imports alone: {base / 1024:.1f} MiB")
    for fmt in ("cache", "jsonl"):
        figures = []
        for path in (small, big):
            events, kb = rss_run(str(path), str(tmp / f"out.{fmt}"), fmt)
            figures.append(kb)
            size = path.stat().st_size / 2**20
            print(f"  jsonl -> {fmt:5s} {events:>9,} events ({size:6.1f} MiB in): peak RSS {kb / 1024:7.1f} MiB")
        print(f"  jsonl -> {fmt:5s} 4x input / 1x input: peak RSS ratio {figures[1] / figures[0]:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rss-events", type=int, default=300_000, help="N of the peak-RSS check (N and 4N events; keep N above "
                    "the cache writer's 262,144-row spill threshold, below it the 1x run buffers less)")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS check")
    args = ap.parse_args()
    r = args.repeat
    with tempfile.TemporaryDirectory(prefix="mmkit-bench-data-") as name:
        tmp = Path(name)
        if not args.no_rss:  # first, while this process is small: a child's ru_maxrss starts at its parent's
            rss_check(tmp, args.rss_events)
        jsonl, cache, tq = tmp / "usdm.jsonl", tmp / "usdm.mmkc", tmp / "usdm_tq.jsonl"
        convert(USDM, str(jsonl))
        convert(USDM, str(cache))
        with open(jsonl, "rb") as src, open(tq, "wb") as dst:  # the trade and quote lines only
            dst.writelines(raw for raw in src if b'"kind":"trade"' in raw or b'"kind":"quote"' in raw)
        n = count(open_events(USDM))
        n_tq = count(JsonlReader(tq, venue="binance-usdm"))
        print(f"\nBinance USD-M BTCUSDT 2024-07-18/19 (real): {n:,} events ({n - n_tq:,} book events, 44 levels per delta "
              f"on average); JSONL {jsonl.stat().st_size / 1e6:.1f} MB, cache {cache.stat().st_size / 1e6:.1f} MB; "
              f"CPU time, best of {r}")
        # readers first, with no events held in memory (a big live heap would time the garbage collector)
        line("reader: binance raw (2 x .gz)", n, best_of(r, lambda: count(open_events(USDM))))
        paths = [("compiled", True), ("pure Python", False)] if COMPILED else [("pure Python, not built", False)]
        for label, compiled in paths:
            line(f"reader: mmkit JSONL, all events ({label})", n,
                 best_of(r, lambda: count(JsonlReader(jsonl, venue="binance-usdm", compiled=compiled))),
                 target="   target >= 300,000")
            line(f"reader: mmkit JSONL, trades+quotes ({label})", n_tq,
                 best_of(r, lambda: count(JsonlReader(tq, venue="binance-usdm", compiled=compiled))))
        line("reader: cache (load + iterate as events)", n, best_of(r, lambda: count(load_cache(cache))))
        line("data inspect (binance raw, all statistics)", n, best_of(r, lambda: inspect_files(USDM)))
        line("data inspect (cache)", n, best_of(r, lambda: inspect_files([str(cache)])))
        line("data convert binance -> cache (end to end)", n, best_of(r, lambda: convert(USDM, str(tmp / "c.mmkc"))))
        line("synth generate (seeded, event objects)", 200_000, best_of(r, lambda: count(generate(7, 200_000))))

        stream = open_events(USDM)
        events = list(stream)
        instruments = stream.instruments
        gc.freeze()  # the events list is permanent: keep the collector from re-scanning it in every timing
        book_events = [e for e in events if type(e) in (BookSnapshot, BookDelta)]
        # every level in the order the events apply them: per event, bids then asks
        ordered = [(s, p, q) for e in book_events for s, lv in ((BID, e.bids), (ASK, e.asks)) for p, q in lv]

        def apply_levels() -> None:
            book = L2Book("BTCUSDT")
            apply = book.apply_level
            for side, px, qty in ordered:
                apply(side, px, qty)

        def apply_events() -> None:
            book = L2Book("BTCUSDT")
            for e in book_events:
                book.apply(e)

        line("book apply_level (every level of USD-M)", len(ordered), best_of(r, apply_levels), "updates/s", "   target >= 1,000,000")
        line("book apply(BookDelta|BookSnapshot)", len(book_events), best_of(r, apply_events))
        line("cache write (events in memory -> file)", n, best_of(r, lambda: write_cache(tmp / "w.mmkc", events, instruments)))

        def load(mmap: bool) -> int:
            with load_cache(cache, use_mmap=mmap) as c:
                return len(c)

        line("cache load (read into memory)", n, best_of(r, lambda: load(False)), target="   target >= 5,000,000")
        line("cache load (mmap)", n, best_of(r, lambda: load(True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
