"""Benchmark the live service (``mmkit run``): decision latency, HTTP latency under load, RSS.

One real ``mmkit run --speed max --loop`` subprocess on the bundled replay data, on a free
loopback port, with throwaway admin tokens and a temporary ``ARTIFACTS_DIR``:

1. decision latency (venue event arrival -> actions emitted) p50/p99 in microseconds, from
   the service's own ``GET /admin/perf/snapshot`` after a warm-up (and again at the end);
2. ``/metrics`` and admin latency p50/p99 under a bounded, open-loop 50 requests/s loopback
   load for ``--seconds`` (default 30): half the requests go to ``/metrics``, half round-robin
   over the read-only admin GET endpoints with two tokens, so no (actor, endpoint) pair
   exceeds the admin rate limit (60 per 60 s); every admin answer must be a 200 (a 503
   from /admin/selfcheck, i.e. a failed self-check under load, is reported, not a failure);
3. RSS of the service process (``/proc/<pid>/status`` VmRSS) at start (after the warm-up)
   and after ``--minutes`` (default 30) of ``--speed max --loop``; it passes when the end
   RSS stays within 10% of the start.

The run ends with SIGTERM; the service must exit 0 with ``open_orders == 0`` in its
``RUN_SUMMARY.json``.  Exit code: 0 all good, 2 a gate failed (RSS growth, a non-200 admin
answer, a dirty shutdown), 1 the service could not be started.

    .venv/bin/python bench/bench_run.py [--minutes 30] [--seconds 30] [--rps 50] [--warmup 30]
        [--speed max] [--config config/example.yaml] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from mmkit.artifacts import parse_json, write_json
from mmkit.live.metrics import nearest_rank

ROOT = Path(__file__).resolve().parent.parent
ADMIN_GETS = (
    "/admin/selfcheck", "/admin/perf/snapshot", "/admin/killswitch", "/admin/config",
    "/admin/thresholds/snapshot", "/admin/throttle/snapshot", "/admin/anti-stale-guard",
    "/admin/alerts/log?tail=20", "/admin/positions", "/admin/orders", "/admin/allocator",
    "/admin/execution/recorder/status", "/admin/audit/log", "/admin/openapi.json",
)
RSS_TOLERANCE = 0.10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` from /proc (Linux); 0 where /proc is unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pct(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50": nearest_rank(xs, 0.50), "p99": nearest_rank(xs, 0.99), "max": max(xs) if xs else 0.0}


class Service:
    """A real ``python -m mmkit run`` child with its own artifacts dir, port and tokens."""

    def __init__(self, config: str, speed: str, minutes: float, artifacts: Path, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = artifacts
        self.tokens = (secrets.token_hex(16), secrets.token_hex(16))
        env = dict(os.environ, ARTIFACTS_DIR=str(artifacts), ADMIN_TOKEN_PRIMARY=self.tokens[0],
                   ADMIN_TOKEN_SECONDARY=self.tokens[1])
        env.pop("ADMIN_AUTH_DISABLED", None)
        # --duration is a backstop only: the bench stops the service itself with SIGTERM
        cmd = [sys.executable, "-m", "mmkit", "run", "--config", config, "--speed", speed, "--loop",
               "--host", "127.0.0.1", "--port", str(self.port), "--duration", str(int(minutes * 60 + 600)), *extra]
        self.log = open(artifacts / "service.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def tail(self, n: int = 20) -> str:
        self.log.flush()
        lines = (self.artifacts / "service.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    async def wait_ready(self, session: aiohttp.ClientSession, timeout_s: float = 90.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise SystemExit(f"mmkit run exited with {self.proc.returncode} before it was ready:\n{self.tail()}")
            try:
                async with session.get(self.url + "/readyz") as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise SystemExit(f"mmkit run not ready after {timeout_s:.0f} s:\n{self.tail()}")

    async def admin(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(self.url + path, headers={"X-Admin-Token": self.tokens[0]}) as r:
            body = await r.read()
            if r.status != 200:
                raise SystemExit(f"GET {path} -> {r.status}: {body[:300]!r}")
            return parse_json(body, path)

    def stop(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """SIGTERM, wait, and read RUN_SUMMARY.json."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        out: dict[str, Any] = {"exit_code": code, "stop_s": round(time.monotonic() - t0, 3)}
        summary = self.artifacts / "RUN_SUMMARY.json"
        if summary.exists():
            s = parse_json(summary.read_bytes(), str(summary))
            body = s.get("body", s)
            out.update({k: body.get(k) for k in ("open_orders", "fills", "uptime_s") if k in body})
        return out


def decision_us(perf: dict[str, Any]) -> dict[str, float]:
    """Decision latency p50/p99 (us) from the service's perf snapshot."""
    d = perf.get("decision_latency_us") or perf.get("decision_latency") or {}
    if not isinstance(d, dict) or not d:
        raise SystemExit(f"/admin/perf/snapshot has no decision latency: keys {sorted(perf)}")
    get = (lambda k: float(d[k])) if "p50" in d else (lambda k: float(d[f"{k}_us"]))
    return {"n": int(d.get("n", d.get("count", 0))), "p50_us": get("p50"), "p99_us": get("p99")}


async def http_load(svc: Service, session: aiohttp.ClientSession, seconds: float, rps: float) -> dict[str, Any]:
    """Open-loop load: request i starts at t0 + i/rps whatever the previous ones do (bounded in flight)."""
    lat: dict[str, list[float]] = {"metrics": [], "admin": []}
    statuses: dict[str, dict[int, int]] = {"metrics": {}, "admin": {}}
    per_endpoint: dict[str, list[float]] = {}
    errors: list[str] = []
    not_ok: list[str] = []
    in_flight = asyncio.Semaphore(int(rps * 2))
    skipped = 0

    async def one(kind: str, path: str, token: str | None) -> None:
        headers = {"X-Admin-Token": token} if token else {}
        t = time.perf_counter()
        try:
            async with session.get(svc.url + path, headers=headers) as r:
                await r.read()
                ms = (time.perf_counter() - t) * 1000.0
                statuses[kind][r.status] = statuses[kind].get(r.status, 0) + 1
                if r.status == 200 or (r.status == 503 and path == "/admin/selfcheck"):  # 503 = checks failed: an answer
                    lat[kind].append(ms)
                    if kind == "admin":
                        per_endpoint.setdefault(path.split("?")[0], []).append(ms)
                else:
                    not_ok.append(f"{path.split('?')[0]} {r.status}")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            errors.append(f"{path}: {type(exc).__name__}")
        finally:
            in_flight.release()

    n = int(seconds * rps)
    admin_slots = [(p, tok) for tok in svc.tokens for p in ADMIN_GETS]
    tasks = []
    t0 = time.perf_counter()
    for i in range(n):
        delay = t0 + i / rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight.locked():
            skipped += 1  # the bound: never more than 2*rps requests outstanding
            continue
        await in_flight.acquire()
        if i % 2 == 0:
            tasks.append(asyncio.create_task(one("metrics", "/metrics", None)))
        else:
            path, tok = admin_slots[(i // 2) % len(admin_slots)]
            tasks.append(asyncio.create_task(one("admin", path, tok)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    return {
        "seconds": round(wall, 2), "sent": len(tasks), "achieved_rps": round(len(tasks) / wall, 1), "skipped": skipped,
        "metrics_ms": pct(lat["metrics"]), "admin_ms": pct(lat["admin"]),
        "statuses": {k: {str(c): v for c, v in sorted(s.items())} for k, s in statuses.items()},
        "errors": len(errors), "not_ok": sorted(set(not_ok)), "admin_by_endpoint_p50_ms": {k: nearest_rank(v, 0.5) for k, v in sorted(per_endpoint.items())},
    }


async def run(args: argparse.Namespace, artifacts: Path) -> dict[str, Any]:
    svc = Service(args.config, args.speed, args.minutes, artifacts, args.extra)
    res: dict[str, Any] = {"config": args.config, "speed": args.speed, "minutes": args.minutes, "load_seconds": args.seconds, "rps": args.rps}
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            res["ready_s"] = round(await svc.wait_ready(session), 2)
            t_ready = time.monotonic()
            res["rss_ready_bytes"] = rss_bytes(svc.proc.pid)
            await asyncio.sleep(args.warmup)
            res["rss_start_bytes"] = rss_bytes(svc.proc.pid)
            res["decision_after_warmup"] = decision_us(await svc.admin(session, "/admin/perf/snapshot"))
            print(f"ready in {res['ready_s']} s; RSS at start {res['rss_start_bytes'] / 2**20:.1f} MiB; decision "
                  f"p50 {res['decision_after_warmup']['p50_us']:.1f} us p99 {res['decision_after_warmup']['p99_us']:.1f} us "
                  f"(n={res['decision_after_warmup']['n']:,})", flush=True)
            res["load"] = await http_load(svc, session, args.seconds, args.rps)
            ld = res["load"]
            print(f"load {ld['achieved_rps']} req/s for {ld['seconds']} s: /metrics p50 {ld['metrics_ms']['p50']:.2f} ms "
                  f"p99 {ld['metrics_ms']['p99']:.2f} ms; admin p50 {ld['admin_ms']['p50']:.2f} ms p99 "
                  f"{ld['admin_ms']['p99']:.2f} ms; statuses {ld['statuses']}"
                  + (f"; non-200: {', '.join(ld['not_ok'])}" if ld["not_ok"] else ""), flush=True)
            samples = []
            end = t_ready + args.minutes * 60.0
            next_print = time.monotonic() + 60.0
            while time.monotonic() < end:
                if svc.proc.poll() is not None:
                    raise SystemExit(f"mmkit run died during the soak (exit {svc.proc.returncode}):\n{svc.tail()}")
                samples.append(rss_bytes(svc.proc.pid))
                if time.monotonic() >= next_print:
                    print(f"  t={time.monotonic() - t_ready:6.0f} s RSS {samples[-1] / 2**20:.1f} MiB", flush=True)
                    next_print += 60.0
                await asyncio.sleep(min(5.0, max(0.0, end - time.monotonic())))
            res["rss_end_bytes"] = rss_bytes(svc.proc.pid)
            res["rss_max_bytes"] = max(samples + [res["rss_end_bytes"]])
            res["decision_run"] = decision_us(await svc.admin(session, "/admin/perf/snapshot"))
    finally:
        res["shutdown"] = svc.stop()
    start, endb = res["rss_start_bytes"], res["rss_end_bytes"]
    res["rss_growth_ratio"] = round(endb / start - 1.0, 4) if start else None
    res["rss_within_10pct"] = bool(start) and abs(endb - start) <= RSS_TOLERANCE * start
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="soak length of the --speed max --loop run (default 30)")
    ap.add_argument("--seconds", type=float, default=30.0, help="HTTP load duration (default 30)")
    ap.add_argument("--rps", type=float, default=50.0, help="HTTP load, requests per second (default 50)")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds after ready before the start RSS (default 30)")
    ap.add_argument("--config", default="config/example.yaml")
    ap.add_argument("--speed", default="max", help="replay pace of the service: max (default), 10 or 1 (a baseline "
                    "for the HTTP figures: at max the replay keeps the event loop busy)")
    ap.add_argument("--json", dest="json_out", help="also write the results as canonical JSON here")
    ap.add_argument("extra", nargs="*", help="extra arguments for mmkit run (after --)")
    args = ap.parse_args(argv)
    if args.minutes * 60 < args.warmup + args.seconds:
        ap.error("--minutes must cover --warmup + --seconds")
    with tempfile.TemporaryDirectory(prefix="mmkit-bench-run-") as tmp:
        res = asyncio.run(run(args, Path(tmp)))
    d, sd = res["decision_run"], res["shutdown"]
    print(f"decision latency over the run: p50 {d['p50_us']:.1f} us, p99 {d['p99_us']:.1f} us (n={d['n']:,})")
    print(f"RSS start {res['rss_start_bytes'] / 2**20:.1f} MiB -> end {res['rss_end_bytes'] / 2**20:.1f} MiB "
          f"(max {res['rss_max_bytes'] / 2**20:.1f} MiB, growth {100 * (res['rss_growth_ratio'] or 0):+.1f}%) after "
          f"{args.minutes:g} min: {'within' if res['rss_within_10pct'] else 'NOT within'} 10%")
    print(f"shutdown: exit {sd['exit_code']} in {sd['stop_s']} s, open_orders={sd.get('open_orders')}, fills={sd.get('fills')}")
    if args.json_out:
        write_json(args.json_out, res)
    answered = [x for x in res["load"]["not_ok"] if x != "/admin/selfcheck 503"]
    admin_ok = not answered and res["load"]["errors"] == 0
    clean = sd["exit_code"] == 0 and sd.get("open_orders") == 0
    return 0 if (res["rss_within_10pct"] and admin_ok and clean) else 2


if __name__ == "__main__":
    raise SystemExit(main())
