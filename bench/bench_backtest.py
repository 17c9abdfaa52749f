"""Benchmark ``mmkit backtest run`` end to end from the columnar cache.

Two inputs, each written once to a cache file in a temp folder:

- ``usdm``: the real Binance USD-M BTCUSDT recording (fixtures/real/binance/usdm, the 0718
  file and its 0719 continuation: about 72k events, 5 minutes);
- ``synth``: ``mmkit.data.synth.generate`` (seeded, NOT market data), ``--events`` events
  (default 1,000,000; the issue's 5M takes several minutes per run).

Each is run with ``bench/configs/baseline.yaml`` at decision intervals 100 ms and 1 ms,
each run in a fresh interpreter (multiprocessing "spawn", not fork: a forked child would
count the parent's pages, the built caches among them) so its peak RSS (``ru_maxrss``) is
the run's own (``VmHWM``): the interpreter and mmkit's imports plus the run. The
figures are wall time of ``run_backtest`` (its feed-clock pre-pass over the cache included),
events/s, decisions/s, orders created, fills and peak RSS, of the fastest of ``--repeat``
runs (default 3: on a shared machine single runs vary by up to 30%), with the median run's
events/s beside it.  ``--profile`` prints a cProfile
top-10 by tottime of one run (synth, 100 ms) in this process.

    .venv/bin/python bench/bench_backtest.py [--events 1000000] [--seed 5] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmkit.config import load_config  # noqa: E402
from mmkit.data.cache import write_cache  # noqa: E402
from mmkit.data.readers import open_events  # noqa: E402
from mmkit.research.backtest import BacktestRequest, run_backtest  # noqa: E402

BASELINE = ROOT / "bench/configs/baseline.yaml"
USDM = [str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240718.gz"),
        str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240719.gz")]
INTERVALS_MS = (100, 1)


def build_usdm(folder: Path) -> tuple[Path, int]:
    stream = open_events(USDM, venue="binance-usdm")
    events = list(stream)
    path = folder / "usdm.mmc"
    write_cache(path, events, dict(stream.instruments))
    return path, len(events)


def build_synth(folder: Path, n: int, seed: int) -> tuple[Path, int]:
    from mmkit.data.synth import SYNTH_SYMBOL, generate, synth_instrument

    path = folder / "synth.mmc"
    write_cache(path, generate(seed, n), {SYNTH_SYMBOL: synth_instrument()})
    return path, n


def one_run(cache: str, interval_ms: int) -> dict[str, Any]:
    req = BacktestRequest((cache,), load_config(BASELINE, use_env_profile=False), seed=1,
                          decision_interval_ms=interval_ms)
    t0 = time.perf_counter()
    out = run_backtest(req)
    wall = time.perf_counter() - t0
    eng = out.report["engine"]
    return {"wall_s": wall, "events": eng["events"], "decisions": eng["decisions"], "orders": eng["creates"],
            "fills": eng["fills"], "rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS: ``VmHWM`` (Linux; reset by exec, unlike ``ru_maxrss``,
    which a spawned child inherits from the process it was forked from), else
    ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(conn: Any, cache: str, interval_ms: int) -> None:
    try:
        conn.send(one_run(cache, interval_ms))
    except BaseException as exc:  # noqa: BLE001 - report it to the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    conn.close()


def run_in_child(cache: str, interval_ms: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, cache, interval_ms))
    proc.start()
    child.close()
    result = parent.recv()
    proc.join()
    if "error" in result:
        raise SystemExit(f"run {cache} @ {interval_ms} ms failed: {result['error']}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="synthetic events (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile top-10 (tottime) of the synth 100 ms run")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per input and interval, each in a fresh process (default 3): the best is printed, "
                         "with the median events/s beside it")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    with tempfile.TemporaryDirectory(prefix="mmkit-bench-bt-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        usdm, n_usdm = build_usdm(folder)
        t1 = time.perf_counter()
        synth, n_synth = build_synth(folder, args.events, args.seed)
        t2 = time.perf_counter()
        print(f"cache build: usdm {n_usdm:,} events in {t1 - t0:.2f} s; synth {n_synth:,} events in {t2 - t1:.2f} s")
        print(f"best of {args.repeat} run(s) each; median_ev/s = the median run's events/s")
        print(f"{'input':<6} {'interval':>8} {'events':>10} {'wall_s':>8} {'events/s':>10} {'median_ev/s':>11} "
              f"{'decisions':>10} {'decisions/s':>11} {'orders':>7} {'fills':>7} {'peak_rss_mb':>11}")
        for name, cache in (("usdm", usdm), ("synth", synth)):
            for interval in INTERVALS_MS:
                runs = sorted((run_in_child(str(cache), interval) for _ in range(args.repeat)),
                              key=lambda run: run["wall_s"])
                r, median = runs[0], runs[len(runs) // 2]
                print(f"{name:<6} {interval:>6}ms {r['events']:>10,} {r['wall_s']:>8.2f} "
                      f"{r['events'] / r['wall_s']:>10,.0f} {median['events'] / median['wall_s']:>11,.0f} "
                      f"{r['decisions']:>10,} {r['decisions'] / r['wall_s']:>11,.0f} "
                      f"{r['orders']:>7,} {r['fills']:>7,} {r['rss_mb']:>11.1f}", flush=True)
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            one_run(str(synth), 100)
            prof.disable()
            print("\ncProfile, synth @ 100 ms, top 10 by tottime:")
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
