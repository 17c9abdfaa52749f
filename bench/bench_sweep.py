"""Benchmark ``mmkit sweep run``: trials/s per executor, the speedup of two workers over
one, and the whole-command wall time.

The sweep: 20 trials of the fixed baseline (``bench/configs/baseline.yaml``;
``strategy.fixed.half_spread_ticks`` 1..5 x ``strategy.fixed.skew_ticks`` 0, 0.25, 0.5, 0.75)
over the real Binance USD-M BTCUSDT recording (fixtures/real/binance/usdm, the 0718 file
and its 0719 continuation: about 72k events, 8 minutes).  ``--small`` uses the 0718 file
alone (11k events).

Per executor (``--executor``, repeatable; default serial, process:1, process:2):

- **trials/s**: 20 / the wall time of ``executor.run`` in this process (fresh trial store;
  pool start-up and each worker's one data load included);
- **command wall**: ``.venv/bin/mmkit sweep run ... --executor X`` as a subprocess with a
  fresh store (interpreter start, imports, planning, data load, trials, artifact write).

The speedup is trials/s of ``process:2`` over ``process:1`` (same code path, one worker
more); with ``serial`` but no ``process:1`` it is taken over ``serial``.  Every executor
must produce byte-identical ``PARAM_SWEEP.json`` (checked; ``MM_FREEZE_UTC=1``).

    .venv/bin/python bench/bench_sweep.py [--executor serial --executor process:2] [--small]

Dask: with the default executors and ``mmkit[dask]`` installed (or ``--dask-workers N``),
a real local cluster (``dask scheduler`` + N single-threaded ``dask worker`` processes on
127.0.0.1, ``mmkit.research.dask_local``) is started and its ``tcp://`` address benched
like any executor, then shut down.  Its workers live across both measurements, so the
command wall of the dask row finds the recording already loaded (as on a long-lived
cluster); its trials/s row includes the one data load per worker.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmkit import artifacts  # noqa: E402
from mmkit.research import sweep  # noqa: E402
from mmkit.research.executors import TrialStore, make_executor  # noqa: E402

BASELINE = ROOT / "bench/configs/baseline.yaml"
USDM = [str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240718.gz"),
        str(ROOT / "fixtures/real/binance/usdm/btcusdt_20240719.gz")]
GRID = "strategy.fixed.half_spread_ticks: [1, 2, 3, 4, 5]\nstrategy.fixed.skew_ticks: [0.0, 0.25, 0.5, 0.75]\n"
DEFAULT_EXECUTORS = ["serial", "process:1", "process:2"]


def in_process(spec: str, ticks: list[str], grid: Path, folder: Path) -> tuple[float, bytes]:
    plan = sweep.plan_sweep(sweep.SweepRequest(tuple(ticks), str(BASELINE), str(grid), seed=1))
    store = TrialStore(folder / f"inproc_{spec.replace(':', '_').replace('/', '_')}.jsonl")
    t0 = time.perf_counter()
    doc = sweep.run_sweep(plan, make_executor(spec), store)
    wall = time.perf_counter() - t0
    assert doc["summary"]["failed"] == 0, [r["error"] for r in doc["results"] if r["error"]][:3]
    return wall, artifacts.canonical_bytes(doc)


def whole_command(spec: str, ticks: list[str], grid: Path, folder: Path) -> float:
    tag = spec.replace(":", "_").replace("/", "_")
    cmd = [str(ROOT / ".venv/bin/mmkit"), "sweep", "run", *[a for t in ticks for a in ("--events", t)],
           "--grid", str(grid), "--config", str(BASELINE), "--seed", "1", "--executor", spec,
           "--out", str(folder / f"cmd_{tag}.json"), "--store", str(folder / f"cmd_{tag}.jsonl")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MM_PROGRESS": "0"})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{spec}: mmkit sweep run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return wall


def start_local_dask(requested: int | None, default: int):
    """A local dask cluster of N workers on 127.0.0.1, shut down at exit; None for 0 (or
    for the default when the dask extra is missing)."""
    n = default if requested is None else requested
    if n <= 0:
        return None
    from mmkit.errors import MmkitError
    from mmkit.research.dask_local import LocalDaskCluster

    folder = tempfile.mkdtemp(prefix="bench_sweep_dask_")
    atexit.register(shutil.rmtree, folder, True)
    try:
        cluster = LocalDaskCluster(folder, workers=n)
    except MmkitError as exc:
        if requested is not None:
            raise SystemExit(exc.line()) from exc
        print(f"dask: skipped ({exc.code}: pip install 'mmkit[dask]')")
        return None
    atexit.register(cluster.close)
    cluster.start()
    print(f"dask: local cluster {cluster.address}, {n} single-threaded workers")
    return cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executor", action="append", help="serial, process, process:N, tcp://HOST:PORT (repeatable)")
    ap.add_argument("--small", action="store_true", help="only the 0718 file (11k events)")
    ap.add_argument("--dask-workers", type=int, default=None, metavar="N",
                    help="also bench a local dask cluster of N workers (default: 2 with the default executors "
                         "when mmkit[dask] is installed; 0: no dask)")
    args = ap.parse_args()
    specs = args.executor or DEFAULT_EXECUTORS
    cluster = start_local_dask(args.dask_workers, default=2 if args.executor is None else 0)
    if cluster is not None:
        specs = [*specs, cluster.address]
    ticks = USDM[:1] if args.small else USDM
    os.environ["MM_FREEZE_UTC"] = "1"
    rates: dict[str, float] = {}
    blobs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        folder = Path(tmp)
        grid = folder / "grid.yaml"
        grid.write_text(GRID)
        n = len(sweep.expand(sweep.read_grid(str(grid)), "grid", None, 0))
        print(f"sweep: {n} trials, fixed baseline, {'0718' if args.small else '0718+0719'} USD-M BTCUSDT, "
              f"{os.cpu_count()} cores")
        print(f"{'executor':<28} {'trials/s':>9} {'run s':>8} {'command wall s':>15}")
        for spec in specs:
            wall, blob = in_process(spec, ticks, grid, folder)
            cmd_wall = whole_command(spec, ticks, grid, folder)
            rates[spec], blobs[spec] = n / wall, blob
            print(f"{spec:<28} {n / wall:>9.2f} {wall:>8.2f} {cmd_wall:>15.2f}", flush=True)
    same = len(set(blobs.values())) == 1
    print(f"PARAM_SWEEP.json identical across executors: {'yes' if same else 'NO'}")
    base = "process:1" if "process:1" in rates else ("serial" if "serial" in rates else None)
    if base and "process:2" in rates:
        print(f"speedup process:2 over {base}: {rates['process:2'] / rates[base]:.2f}x (target >= 1.8x)")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
