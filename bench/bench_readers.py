"""Benchmark the exchange readers on their real fixtures: events/s, from the compressed file.

For each reader and real recording in ``fixtures/real/`` this reads the file(s) end to end
(decompression, parsing, sync and sequence checks, conversion to integer ticks/lots, event
objects) and prints events per second, best of ``--repeat`` runs (small files are re-read
until ``--min-seconds`` have passed).  CPU time of this process is used, so a busy machine
distorts the figures less than wall time would; wall time is printed too.

    .venv/bin/python bench/bench_readers.py [--repeat 3] [--min-seconds 0.5]

Target: >= 100k events/s on the Binance USD-M recording (the 0718+0719 pair, read as one).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmkit.data.binance import BinanceReader  # noqa: E402
from mmkit.data.bybit import BybitReader  # noqa: E402
from mmkit.data.tardis import TardisReader  # noqa: E402
from mmkit.errors import MmkitError  # noqa: E402

REAL = ROOT / "fixtures" / "real"
CASES = [
    ("binance usdm (0718+0719)", BinanceReader, ["binance/usdm/btcusdt_20240718.gz", "binance/usdm/btcusdt_20240719.gz"], {}),
    ("binance spot (0808)", BinanceReader, ["binance/spot/btcusdt_20240808.gz"], {}),
    ("binance coin-m (0808)", BinanceReader, ["binance/cm/btcusd_perp_20240808.gz"], {}),
    ("bybit ob500 history (zip)", BybitReader, ["bybit/xrpusdt-ob500.data.zip"], {}),
    ("bybit ws recording (FastMM)", BybitReader, ["bybit/raw_md_stream.jsonl"], {}),
    ("tardis incremental_book_L2", TardisReader, ["tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv"], {}),
    ("tardis book_snapshot_25", TardisReader, ["tardis/binance-futures_book_snapshot_25_BTCUSDT.csv"], {}),
    ("tardis trades", TardisReader, ["tardis/bitmex_trades_XBTUSD.csv"], {}),
    ("tardis quotes", TardisReader, ["tardis/huobi-dm-swap_quotes_BTC-USD.csv"], {}),
]
SPOT_GRID = 'version: 1\ninstruments:\n  - {venue: binance-spot, symbol: BTCUSDT, tick_size: "0.01", lot_size: "0.000001"}\n'


def once(reader_cls, paths, kw) -> tuple[int, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    n = 0
    for _ in reader_cls(paths, **kw):
        n += 1
    return n, time.process_time() - cpu, time.perf_counter() - wall


def measure(reader_cls, paths, kw, repeat: int, min_seconds: float) -> tuple[int, float, float]:
    best_cpu = best_wall = float("inf")
    n = 0
    for _ in range(repeat):
        total_n, total_cpu, total_wall = 0, 0.0, 0.0
        while total_cpu < min_seconds or total_n == 0:
            n, cpu, wall = once(reader_cls, paths, kw)
            total_n, total_cpu, total_wall = total_n + n, total_cpu + cpu, total_wall + wall
            if n == 0:
                break
        best_cpu = min(best_cpu, total_cpu / max(total_n, 1))
        best_wall = min(best_wall, total_wall / max(total_n, 1))
    return n, best_cpu, best_wall


def json_ceiling(paths: list[str], repeat: int) -> float:
    """Lines/s of merely gunzipping and ``json.loads``-ing every line: the reference ceiling."""
    import json

    from mmkit.data.io import open_text

    best = float("inf")
    n = 0
    for _ in range(repeat):
        cpu = time.process_time()
        n = 0
        for path in paths:
            with open_text(path) as fh:
                for line in fh:
                    json.loads(line[line.find(" ") + 1:])
                    n += 1
        best = min(best, (time.process_time() - cpu) / n)
    return 1 / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    args = ap.parse_args()
    print(f"{'reader':34s} {'events':>8s} {'events/s (cpu)':>15s} {'events/s (wall)':>16s}")
    for name, cls, rel, kw in CASES:
        paths = [str(REAL / r) for r in rel]
        try:
            n, cpu, wall = measure(cls, paths, kw, args.repeat, args.min_seconds)
            note = ""
        except MmkitError as exc:
            if exc.code != "E_DATA_OFF_GRID" or "spot" not in name:
                raise
            # the built-in spot lot is coarser than the 6-decimal depth sizes: use the data's grid
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
                fh.write(SPOT_GRID)
            os.environ["MMKIT_INSTRUMENTS"] = fh.name
            try:
                n, cpu, wall = measure(cls, paths, kw, args.repeat, args.min_seconds)
            finally:
                del os.environ["MMKIT_INSTRUMENTS"]
                os.unlink(fh.name)
            note = "  (spot lot 0.000001 via MMKIT_INSTRUMENTS)"
        print(f"{name:34s} {n:8d} {1 / cpu:15,.0f} {1 / wall:16,.0f}{note}")
    usdm = [str(REAL / r) for r in CASES[0][2]]
    print(f"{'(reference: gunzip + json.loads)':34s} {'':8s} {json_ceiling(usdm, args.repeat):15,.0f}   lines/s of the USD-M pair")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
