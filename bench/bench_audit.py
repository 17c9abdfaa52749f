"""Benchmark the audit log: single appends (lock + fsync each), batched appends (one lock and
one fsync per batch) and verify, on a temporary log.

    python bench/bench_audit.py [--n 100000] [--single 5000] [--batch 1000] [--signed]

Prints one ``key=value`` line per figure; the last line is ``VERIFY_TARGET=PASS|FAIL``
(verify must exceed 100000 entries/s).  Exit 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

try:
    from mmkit import audit
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from mmkit import audit

VERIFY_TARGET_PER_S = 100_000


def _payload(i: int) -> dict:
    return {"backoff_level": i % 4, "cap": 0.5, "delta_raw": 0.125, "guard": "position_skew", "i": i,
            "state": "breach" if i % 2 else "recover", "symbol": "BTCUSDT"}


def _report(name: str, entries: int, seconds: float, **extra: object) -> float:
    rate = entries / seconds if seconds > 0 else float("inf")
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    print(f"{name} entries={entries} seconds={seconds:.3f} entries_per_s={rate:.0f}" + (f" {fields}" if fields else ""), flush=True)
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="entries appended in batches, then verified (default 100000)")
    ap.add_argument("--single", type=int, default=5_000, help="entries appended one by one, each fsynced (default 5000)")
    ap.add_argument("--batch", type=int, default=1_000, help="entries per batched append (default 1000)")
    ap.add_argument("--signed", action="store_true", help="sign entries with an HMAC key (and check sigs on verify)")
    args = ap.parse_args(argv)
    key = b"bench-key" if args.signed else None

    with tempfile.TemporaryDirectory(prefix="mmkit-bench-audit-") as tmp:
        log = audit.AuditLog(Path(tmp) / "audit.jsonl", key=key)

        t0 = time.perf_counter()
        for i in range(args.single):
            log.append("GUARD", _payload(i))
        _report("append_single", args.single, time.perf_counter() - t0, signed=args.signed)

        t0 = time.perf_counter()
        done = 0
        while done < args.n:
            size = min(args.batch, args.n - done)
            log.append_many([("ALLOC", _payload(done + j)) for j in range(size)])
            done += size
        _report("append_batched", args.n, time.perf_counter() - t0, batch=args.batch, signed=args.signed)

        total = args.single + args.n
        size_mb = log.path.stat().st_size / 1e6
        t0 = time.perf_counter()
        res = log.verify()
        rate = _report("verify", res.entries_checked, time.perf_counter() - t0, status=res.status,
                       mb=f"{size_mb:.1f}", signed=args.signed)
        if res.status != "OK" or res.entries_checked != total:
            print(f"VERIFY_TARGET=FAIL (status {res.status}, {res.entries_checked} of {total} entries: {res.detail})")
            return 1
    ok = rate > VERIFY_TARGET_PER_S
    print(f"VERIFY_TARGET={'PASS' if ok else 'FAIL'} (>{VERIFY_TARGET_PER_S} entries/s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
