"""The live service: the trading core under a wall clock, inside asyncio (``mmkit run``).

What runs (docs/run.md is the operator's view):

- the **engine loop**: venue events (the replay venue's async source, paced at ``--speed``)
  are fed to the same ``Engine`` the backtester builds (``research.backtest.build_engine``
  over ``build_fillsim``); the engine's decision timer (``backtest.decision_interval_ms``
  on its clock) runs the strategy on book changes.  Each event is fed alone, so the
  decision latency (event arrival to actions emitted) is measured per event;
- **background loops**, each with a heartbeat and measured tick durations: ``risk``
  (equity and PnL into the guards, gauges), ``allocator`` (publishes the engine's
  rebalances, which run every ``portfolio.rebalance_minutes`` on its decision ticks),
  ``snapshot`` (integrity snapshots), ``metrics_json`` (``artifacts/metrics.json``),
  ``alerts_prune``, ``soak`` (RSS, fds, threads, gc with guard thresholds), ``status``
  (the TTY line or logfmt), and the event-loop **drift** monitor (sleep 50 ms, measure
  the overshoot);
- the HTTP surface (``mmkit.live.http``) on top of this object, which implements
  ``mmkit.live.api.ServiceApi``.

Fail safe.  A guard breach or a kill switch cancels every open order *before* anything
else (then it is audited in the hash-chained ``audit.jsonl`` and written to
``alerts.log``).  Stopping (SIGTERM, SIGINT, ``--duration``, the end of the data, an
error) stops the feed, stops quoting and cancels every open order, waits for the acks
(``Engine.settle``, bounded), flushes the recorder and the snapshots and writes
``RUN_SUMMARY.json`` (``open_orders`` must be 0) through the atomic writer.

State survives restarts: throttle, allocator and order-id snapshots are loaded on start
(a refused one is counted and the service starts clean), and a restarted replay continues
the data clock after the latest restored time (``ReplayScan.loop_after``).

Operator hooks go through the core's public APIs only: ``Engine.flatten`` (a crossing
order the order manager tracks, so its fill is booked), ``Engine.trim_history``,
``OrderManager.set_anti_stale``, ``Allocator.state``/``restore``.  The service owns the
thresholds store ``POST /admin/thresholds/reload`` swaps and checks the throttle against
it on every risk tick; ``execution_replay`` walks a recorder file (seed "E2.7").
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
import os
import random
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from mmkit import artifacts, log
from mmkit.audit import AuditLog
from mmkit.clock import utc_now_iso
from mmkit.config import LoadedConfig, load_config, to_dict
from mmkit.core.allocator import Allocation, Allocator
from mmkit.core.circuit import CircuitBreaker
from mmkit.core.engine import Engine, feed_clock_shift
from mmkit.core.fees import FeeTiers
from mmkit.core.gates import GuardEvent
from mmkit.core.risk import IntradayCapsGuard, KillSwitch, PositionSkewGuard, RiskGuard
from mmkit.core.throttle import OPS, Throttle
from mmkit.core.types import Ack, Action, Fill, Reject, VenueReport
from mmkit.errors import EXIT_USAGE, MmkitError
from mmkit.live import snapshots as snap
from mmkit.live.alerts import AlertsLog
from mmkit.live.metrics import LiveMetrics, nearest_rank
from mmkit.live import recorder as rec
from mmkit.live.recorder import ExecRecorder
from mmkit.live.status import StatusLine
from mmkit.live.thresholds import Thresholds, ThresholdsStore
from mmkit.research.backtest import build_engine, build_fillsim
from mmkit.venues.replay import ReplayScan, ReplayVenue, scan_recording

__all__ = ["BUNDLED_DATA", "LiveService", "RunOptions", "default_data_path", "percentiles"]

BUNDLED_DATA = "btcusdt_20240718.gz"
NS_PER_MS = 1_000_000
SHUTDOWN_ROUNDS = 5
DRIFT_SLEEP_S = 0.05
BEAT_S = 1.0
LATENCY_RING = 20_000
SIM_RETENTION = 4096
"""Finished client ids the paper venue remembers (duplicate detection): the order manager
keeps the same number, and a bounded set keeps RSS flat over days."""
HISTORY_FILLS = 1000
SENT_AT_MAX = 100_000
HISTORY_EQUITY_POINTS = 3600
# Guards whose breach pulls every resting order at once (they block risk-increasing
# orders; a resting quote is one).  Throttle backoff and the color bias only slow or lean.
CANCEL_GUARDS = ("risk:", "intraday:", "pos_skew:freeze", "killswitch", "circuit")
CANCEL_KINDS = ("breach", "block", "fire", "open")
KILLSWITCH_ACTIONS = ("pause", "resume", "flatten")
# Config keys a reload applies to the running engine; other changes wait for a restart.
HOT_PREFIXES = ("portfolio.", "allocator.", "guards.pos_skew.", "strategy.order_ttl_ms", "strategy.price_drift_bps",
                "strategy.enable_anti_stale_guard", "logging.")
ANTI_STALE_KEYS = ("enabled", "order_ttl_ms", "price_drift_bps")
# POST /admin/throttle/load: the fields of a throttle snapshot (v2, and v1's derived meta
# fields), plus the read-only fields GET /admin/throttle/snapshot adds (ignored on load).
THROTTLE_STATE_KEYS = frozenset({"version", "window_sec", "symbols", "backoff", "ws_backoff",
                                 "window_since", "events_total", "backoff_ms_max", "last_event_ts"})
THROTTLE_VIEW_KEYS = frozenset({"now_ns", "events_in_window_total", "backoff_ms", "limits", "thresholds"})
# Throttle thresholds: one alert per breach episode, and at most one per key in this many seconds.
THRESHOLD_REALERT_S = 60.0
REPLAY_YIELD_EVERY = 1024


def default_data_path() -> Path:
    """The bundled recording (package data, see ``mmkit/resources/replay/PROVENANCE.md``)."""
    return Path(str(resources.files("mmkit").joinpath("resources", "replay", BUNDLED_DATA)))


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


def percentiles(values: Any, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """Nearest-rank percentiles ``{"p50": ..}`` of ``values`` (0.0 when empty)."""
    xs = list(values)
    return {f"p{int(q * 100)}": round(nearest_rank(xs, q), 3) for q in qs}


@dataclasses.dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``mmkit run`` asks for.  ``speed`` ``None`` = max; ``port`` 0 = any free port;
    ``http=False`` runs without the HTTP surface (tests of the core loop)."""

    data: tuple[str, ...] = ()
    venue: str | None = None
    speed: float | None = 1.0
    loop: bool = False
    duration_s: float | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    seed: int = 0
    fmt: str | None = None
    http: bool = True
    signals: bool = False
    status: bool = True


class _Loops:
    """Heartbeats and tick durations of the background loops (and the engine loop)."""

    def __init__(self, metrics: LiveMetrics) -> None:
        self.metrics = metrics
        self.last: dict[str, float] = {}

    def tick(self, name: str, ms: float) -> None:
        self.last[name] = time.monotonic()
        self.metrics.on_loop_tick(name, ms)

    def beat(self, name: str) -> None:
        self.last[name] = time.monotonic()

    def ages(self) -> dict[str, float]:
        now = time.monotonic()
        return {k: round(now - v, 3) for k, v in sorted(self.last.items())}


class LiveService:
    """One running engine with its loops, state files and operator controls.

    Build it (inputs are read and checked here, so a bad config or recording fails before
    anything starts), then ``await run()``; ``request_stop`` (or a signal) ends it through
    the fail-safe shutdown.  The methods below the lifecycle implement ``ServiceApi``.
    """

    def __init__(self, loaded: LoadedConfig, options: RunOptions = RunOptions(),
                 artifacts_dir: str | Path | None = None) -> None:
        self.loaded = loaded
        self.options = options
        self.artifacts_dir = Path(artifacts_dir or os.environ.get("ARTIFACTS_DIR") or "artifacts")
        cfg = loaded.config
        venue_name = options.venue or cfg.venue.name
        if venue_name != "replay":
            raise MmkitError("E_LIVE_VENUE_UNAVAILABLE", f"venue {venue_name!r} is not available in this build; "
                             "use --venue replay (paper fills on recorded data)", EXIT_USAGE)
        self.data = tuple(options.data) or (str(default_data_path()),)
        self.scan: ReplayScan = scan_recording(self.data, fmt=options.fmt)
        bt = cfg.backtest
        self.clock_shift_ns = feed_clock_shift([self.scan.min_latency_ns], bt.feed_clock, bt.feed_clock_offset_ns)
        sim = build_fillsim(cfg, self.scan.instruments, random.Random(options.seed), "queue_aware", None, None,
                            retention=SIM_RETENTION)
        self.venue = ReplayVenue(self.scan, sim, options.speed, options.loop,
                                 on_submit=self._on_submit, on_report=self._on_venue_report)
        self.engine: Engine = build_engine(cfg, self.scan.instruments, self.venue, self.clock_shift_ns,
                                           bt.decision_interval_ms, 0, False)
        self.engine.on_fill_hooks.append(self._on_fill)
        gates = self.engine.gates.gates if self.engine.gates is not None else ()
        self._gate_logs = [g for g in gates if hasattr(g, "pending_events")]
        self.killswitch_gate: KillSwitch = self._gate(gates, KillSwitch)
        self.risk: RiskGuard = self._gate(gates, RiskGuard)
        self.intraday: IntradayCapsGuard = self._gate(gates, IntradayCapsGuard)
        self.skew: PositionSkewGuard = self._gate(gates, PositionSkewGuard)
        self.circuit: CircuitBreaker = self._gate(gates, CircuitBreaker)
        self.throttle: Throttle = self._gate(gates, Throttle)
        if self.engine.allocator is None:
            raise RuntimeError("the engine has no allocator")
        self.allocator: Allocator = self.engine.allocator
        self.fee_tiers = FeeTiers(cfg.fees.bybit.tiers)
        self.metrics = LiveMetrics()
        self.registry = self.metrics.registry
        self.loops = _Loops(self.metrics)
        self.alerts = AlertsLog(self.artifacts_dir / "alerts.log")
        self.recorder = ExecRecorder(self.artifacts_dir)
        self.audit = AuditLog(self.artifacts_dir / "audit.jsonl")
        self.snapshots = snap.SnapshotStore(self.artifacts_dir / "snapshots", on_load=self.metrics.on_snapshot_load,
                                            on_write=self.metrics.on_snapshot_write)
        self.status_line = StatusLine() if options.status else None
        # the thresholds POST /admin/thresholds/reload swaps (the HTTP layer uses this store);
        # until the first reload, the config's throttle.global / throttle.per_symbol
        self.thresholds = ThresholdsStore(config_thresholds(cfg.throttle))
        self._thr_active: set[str] = set()
        self._thr_breaches: Counter[str] = Counter()
        self._thr_alerted: dict[str, float] = {}
        self._replaying = False
        self.state = "built"
        self.stop_reason = ""
        self.error: BaseException | None = None
        self.http: Any = None
        self.http_port: int | None = None
        self.pending_restart: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._driver: asyncio.Task[Any] | None = None
        self._t_start = time.monotonic()
        self._last_event_at: float | None = None
        self._loop_no = -1
        self._latency_us: deque[float] = deque(maxlen=LATENCY_RING)
        self._sent_at: dict[str, tuple[int, str]] = {}
        self._guard_counts: Counter[str] = Counter()
        self._ks_actions: Counter[str] = Counter()
        self._alloc: Allocation | None = None
        self._soak_breached: set[str] = set()
        self._rss_start = 0
        self._rss_max = 0
        self._rss_last = 0
        self._shutdown_cancels = 0
        self._io_lock = threading.Lock()
        self._io_gen = 0
        self._io_written = 0
        self._symbols = sorted(self.engine.rt)

    @staticmethod
    def _gate(gates: Any, cls: type) -> Any:
        for g in gates:
            if isinstance(g, cls):
                return g
        raise RuntimeError(f"the engine has no {cls.__name__} gate")

    # ================================================================== lifecycle
    async def run(self, on_started: Callable[[LiveService], None] | None = None) -> dict[str, Any]:
        """Start, run until a stop is requested (or the data ends), shut down fail-safe;
        returns the run summary (also written to RUN_SUMMARY.json).  Re-raises a fatal
        error after the shutdown has made everything safe."""
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        if self.options.signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, f"signal:{sig.name}")
                installed.append(sig)
        try:
            await self.start()
            if on_started is not None:
                on_started(self)
            await self._stop.wait()
            summary = await self.shutdown()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        if self.error is not None:
            raise self.error
        return summary

    async def start(self) -> None:
        """Load snapshots, start the HTTP surface, the engine loop and the background loops."""
        self.state = "starting"
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self._load_state()
        self._rss_start = self._rss_max = int(self.metrics.sample_process()["rss_bytes"])
        self.audit.append("run.start", {"cfg_hash": self.loaded.cfg_hash, "venue": "replay", "data": list(self.data),
                                        "speed": self._speed_label(), "loop": self.options.loop,
                                        "start_loop": self.venue.start_loop, "pid": os.getpid()})
        if self.options.http:
            await self._start_http()
        self._t_start = time.monotonic()
        self.state = "running"
        self._driver = asyncio.create_task(self._drive(), name="engine")
        env = _env_float
        self._tasks = [
            asyncio.create_task(self._every("risk", 0.25, self._risk_tick)),
            asyncio.create_task(self._every("allocator", 1.0, self._allocator_tick)),
            asyncio.create_task(self._every("snapshot", env("SNAPSHOT_INTERVAL_SEC", 5.0), self._save_snapshots_async)),
            asyncio.create_task(self._every("metrics_json", env("METRICS_JSON_INTERVAL_SEC", 5.0),
                                            self._write_metrics_json_async)),
            asyncio.create_task(self._every("alerts_prune", env("PRUNE_INTERVAL_SEC", 3600.0), self.alerts.prune, now=True)),
            asyncio.create_task(self._every("soak", env("SOAK_INTERVAL_SEC", 1.0), self._soak_tick)),
            asyncio.create_task(self._drift_monitor()),
        ]
        if self.status_line is not None:
            self._tasks.append(asyncio.create_task(self._every("status", 1.0, self._status_tick)))
        if self.options.duration_s is not None:
            self._tasks.append(asyncio.create_task(self._stop_after(self.options.duration_s)))
        log.info("run_started", venue="replay", data=",".join(self.data), speed=self._speed_label(),
                 loop=self.options.loop, symbols=",".join(self._symbols), cfg_hash=self.loaded.cfg_hash[:12],
                 metrics_url=self.metrics_url or "-")

    @property
    def metrics_url(self) -> str | None:
        if self.http is None:
            return None
        return f"{self.http.url}/metrics"

    async def _start_http(self) -> None:
        from mmkit.live.http import start_http  # aiohttp loads only when the service serves HTTP

        self.http = await start_http(self, self.options.host, self.options.port)
        self.http_port = int(self.http.port)

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the service to stop (idempotent; the first reason wins)."""
        if not self.stop_reason:
            self.stop_reason = reason
            log.info("run_stopping", reason=reason)
        self._stop.set()

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.request_stop("duration")

    async def shutdown(self) -> dict[str, Any]:
        """Fail safe: stop the feed, stop quoting and cancel everything, settle, then flush
        state and write the summary.  Safe to call once; returns the summary body."""
        self.state = "stopping"
        if self._driver is not None:
            self._driver.cancel()
            await asyncio.gather(self._driver, return_exceptions=True)
        # 1. before anything else: no quoting, no open orders
        self._shutdown_cancels = self._cancel_everything("shutdown")
        self._drain_guard_events()
        # 2. the loops
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # 3. state and artifacts
        self._risk_tick()
        self._safe(self.recorder.flush)
        self.save_snapshots()
        self._safe(self.write_metrics_json)
        summary = self._summary()
        self._safe(lambda: artifacts.write_json(self.artifacts_dir / "RUN_SUMMARY.json", summary))
        self._safe(lambda: self.audit.append("run.stop", {
            "reason": self.stop_reason, "open_orders": summary["open_orders"], "fills": summary["fills"],
            "cancels_at_exit": summary["cancels_at_exit"], "status": summary["status"]}))
        if self.http is not None:
            await self.http.close()
        if self.status_line is not None:
            self.status_line.emit(self._status_state(), force=True)
            self.status_line.close()
        self.state = "stopped"
        log.info("run_stopped", reason=self.stop_reason, open_orders=summary["open_orders"], fills=summary["fills"],
                 events=summary["events"], uptime_s=summary["uptime_s"])
        return summary

    def _cancel_everything(self, reason: str) -> int:
        """Stop deciding, cancel every open order, deliver the acks; retry a bounded
        number of rounds (a cancel that lost a race to a fill is re-sent)."""
        eng = self.engine
        sent = eng.pause(reason)
        eng.settle()
        rounds = 0
        while eng.open_orders() and rounds < SHUTDOWN_ROUNDS:
            sent += eng.cancel_all(reason)
            eng.settle()
            rounds += 1
        if eng.open_orders():
            log.error("orders_left_open", reason=reason, open_orders=eng.open_orders(), rounds=rounds)
        return sent

    def _safe(self, fn: Callable[[], Any]) -> None:
        """Run one shutdown step; a failure is logged and does not skip the next steps."""
        try:
            fn()
        except MmkitError as exc:
            log.error("shutdown_step_failed", code=exc.code, detail=exc.message)

    # ================================================================== the engine loop
    async def _drive(self) -> None:
        try:
            async for batch in self.venue.batches():
                if not batch.events:  # a quiet market: alive, nothing to feed
                    self.loops.beat("engine")
                    continue
                t0 = time.perf_counter()
                if batch.loop != self._loop_no:
                    if self._loop_no >= 0:
                        self._on_loop_boundary(batch.loop)
                    self._loop_no = batch.loop
                self._feed(batch.events, batch.due_ns)
                self._after_batch()
                self.loops.tick("engine", (time.perf_counter() - t0) * 1000.0)
            self.request_stop("data_end")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the feed stops the run fail-safe
            self.error = exc
            code = exc.code if isinstance(exc, MmkitError) else "E_INTERNAL"
            detail = str(exc)[:200]
            log.error("engine_failed", code=code, detail=detail)
            self._safe(lambda: self.alert("engine_failed", {"code": code, "detail": detail}))
            self.request_stop(f"error:{code}")

    def _feed(self, events: list[Any], due: list[int] | None) -> None:
        """Feed events one at a time, timing event arrival -> actions emitted."""
        eng = self.engine
        counters = eng.counters
        feed = eng.feed
        lat = self._latency_us
        observe = self.metrics.observe_decision_us
        logs = self._gate_logs
        perf = time.perf_counter_ns
        one = [None]
        for i, ev in enumerate(events):
            t0 = due[i] if due is not None else perf()
            a0 = counters.actions
            one[0] = ev
            feed(one)
            if counters.actions != a0:
                us = (perf() - t0) / 1000.0
                lat.append(us)
                observe(us)
            for g in logs:
                if g.pending_events():
                    self._drain_guard_events()
                    break
        if events:
            self._last_event_at = time.monotonic()

    def _after_batch(self) -> None:
        if self.recorder.pending():
            self.recorder.flush()

    def _on_loop_boundary(self, loop_no: int) -> None:
        """A new pass over the recording: its first snapshot jumps the book, so pull the
        quotes first (they would otherwise cross and fill on the jump)."""
        n = self.engine.cancel_all("replay_loop")
        log.info("replay_loop", loop=loop_no, cancels=n)

    # ================================================================== venue and engine hooks
    def _inst(self, symbol: str) -> Any:
        return self.engine.rt[symbol].instrument

    def _on_submit(self, action: Action, send_ns: int) -> None:
        op = action.op
        self.metrics.on_order_sent(op, action.symbol)
        if op != "cancel":
            self._sent_at[action.client_id] = (send_ns, op)
            if self.recorder.enabled:
                inst = self._inst(action.symbol)
                self.recorder.record("order", send_ns, action.symbol, "buy" if action.side > 0 else "sell",  # type: ignore[union-attr]
                                     inst.ticks_to_px(action.price), inst.lots_to_qty(action.qty),  # type: ignore[union-attr]
                                     action.client_id)

    def _on_venue_report(self, when: int, report: VenueReport) -> None:
        cls = type(report)
        if cls is Ack or cls is Reject:
            sent = self._sent_at.pop(report.client_id, None)
            op = report.op if sent is None else sent[1]  # type: ignore[union-attr]
            latency = (when - sent[0]) / NS_PER_MS if sent is not None else None
            ok = cls is Ack
            self.metrics.on_order_result(op, ok, "" if ok else str(report.reason)[:40], latency)  # type: ignore[union-attr]
            if not ok and self.recorder.enabled:
                self._record_reject(when, report.client_id)

    def _record_reject(self, when: int, cid: str) -> None:
        """A reject names only the client id: the order manager that sent it knows the rest."""
        for sym, rt in self.engine.rt.items():
            o = rt.orders.get(cid)
            if o is not None:
                inst = rt.instrument
                self.recorder.record("reject", when, sym, "buy" if o.side > 0 else "sell", inst.ticks_to_px(o.price),
                                     inst.lots_to_qty(o.qty), cid)
                return
        self.recorder.record("reject", when, "", "", "", "", cid)

    def _on_fill(self, fill: Fill) -> None:
        inst = self._inst(fill.symbol)
        notional = float(inst.notional_usd(fill.price, fill.qty))
        now = self.engine.now_ns
        self.metrics.on_fill(fill.symbol, fill.liquidity, notional)
        self.intraday.add_turnover(notional, now)
        if self.recorder.enabled:
            self.recorder.record("fill", fill.ts, fill.symbol, "buy" if fill.side > 0 else "sell",
                                 inst.ticks_to_px(fill.price), inst.lots_to_qty(fill.qty), fill.client_id)

    # ================================================================== guards
    def _drain_guard_events(self) -> list[GuardEvent]:
        """Act on guard events first (cancel, or pause on a kill switch), then audit,
        alert and count them."""
        gates = self.engine.gates
        events = gates.drain_events() if gates is not None else []
        if not events:
            return events
        actions: list[dict[str, Any]] = []
        for ev in events:
            act = {"action": "none", "cancels": 0}
            if ev.guard == "killswitch":
                if ev.kind == "fire" and "dry_run=false" in ev.detail and not self.engine.paused:
                    act = {"action": "pause", "cancels": self.engine.pause("killswitch")}
                # a dry-run firing is only reported
            elif ev.kind in CANCEL_KINDS and ev.guard.startswith(CANCEL_GUARDS):
                act = {"action": "cancel_all", "cancels": self.engine.cancel_all("guard")}
            actions.append(act)
        records = []
        for ev, act in zip(events, actions):
            payload = {"guard": ev.guard, "symbol": ev.symbol, "kind": ev.kind, "detail": ev.detail,
                       "engine_ts_ns": ev.ts_ns, **act}
            records.append(("GUARD", payload))
            self._guard_counts[f"{ev.guard}:{ev.kind}"] += 1
            if ev.kind in CANCEL_KINDS:
                self.metrics.on_guard_event(ev.guard)
        self._safe(lambda: self.audit.append_many(records))
        for _, payload in records:
            if payload["kind"] in CANCEL_KINDS:
                self._safe(lambda p=payload: self.alert("guard_breach", p))
        return events

    # ================================================================== background loops
    async def _every(self, name: str, interval_s: float, fn: Callable[[], Any], now: bool = False) -> None:
        """Run ``fn`` (sync or async) every ``interval_s`` (timed: ``loop_tick_ms{loop}``); between ticks the
        loop beats at least once a second, so a long interval never looks like a dead loop."""
        self.loops.beat(name)
        if not now:
            await self._wait(name, interval_s)
        while True:
            t0 = time.perf_counter()
            try:
                out = fn()
                if inspect.isawaitable(out):
                    await out
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one failing tick must not end the loop
                code = exc.code if isinstance(exc, MmkitError) else type(exc).__name__
                log.error("loop_tick_failed", loop=name, code=code, detail=str(exc)[:200])
            self.loops.tick(name, (time.perf_counter() - t0) * 1000.0)
            await self._wait(name, interval_s)

    async def _wait(self, name: str, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, BEAT_S))
            self.loops.beat(name)

    async def _drift_monitor(self) -> None:
        """Sleep 50 ms, measure how late the event loop woke up (ms)."""
        perf = time.perf_counter
        while True:
            t0 = perf()
            await asyncio.sleep(DRIFT_SLEEP_S)
            drift_ms = (perf() - t0 - DRIFT_SLEEP_S) * 1000.0
            self.metrics.on_drift(drift_ms)
            self.loops.beat("drift")

    def _equity(self) -> tuple[float, Any]:
        totals = self.engine.ledger.totals()
        return self.loaded.config.portfolio.budget_usd + float(totals.net_pnl_usd), totals

    def _risk_tick(self) -> None:
        """Equity and PnL into the guards (breaches act at once), then the gauges."""
        eng = self.engine
        m = self.metrics
        if eng.counters.events:
            now = eng.now_ns
            equity, totals = self._equity()
            self.risk.update_equity(equity, now)
            self.intraday.update_pnl(float(totals.net_pnl_usd), now)
            self.circuit.state(now)
            self._drain_guard_events()
            m.net_pnl_total_usd.set(float(totals.net_pnl_usd))
            for sym in self._symbols:
                pos = eng.ledger.position(sym)
                m.set_pnl(sym, realized_usd=float(pos.realized_pnl_usd), unrealized_usd=float(pos.unrealized_pnl_usd),
                          fees_usd=float(pos.fees_paid_usd), rebates_usd=float(pos.rebates_earned_usd))
                m.position_usd.labels(symbol=sym).set(self.engine.positions.position_usd(sym) if self.engine.positions else 0.0)
                m.position_qty.labels(symbol=sym).set(float(self._inst(sym).lots_to_qty(pos.qty_lots)))
                rt = eng.rt[sym]
                m.orders_active.labels(symbol=sym).set(len(rt.orders.open_orders()))
                committed = rt.orders.committed_usd()
                m.portfolio_active_usd.labels(symbol=sym).set(float(max(committed["buy"], committed["sell"])))
                m.position_skew_breach.labels(symbol=sym).set(1 if self.skew.frozen(sym) else 0)
            st = self.intraday.state(now)
            m.set_intraday(pnl_usd=st.pnl_usd, turnover_usd=st.turnover_usd, vol_pct=st.vol_pct, breached=bool(st.breached))
            m.portfolio_drawdown_pct.set(self.risk.drawdown_ratio() * 100.0)
            m.risk_paused.set(1 if (self.risk.paused or self.risk.stopped) else 0)
            self._throttle_gauges(now)
            m.set_circuit(self.circuit.state(now))
            self._fee_gauges(totals)
        cfg = self.loaded.config
        m.intraday_caps_pnl_stop_usd.set(cfg.guards.intraday_caps.daily_pnl_stop)
        m.risk_max_drawdown_pct.set(cfg.risk.max_drawdown_pct * 100.0)
        m.killswitch_engaged.set(1 if self.killswitch_gate.tripped else 0)
        m.guard_paused_effective.set(1 if (eng.paused or self.risk.paused or self.risk.stopped) else 0)
        m.refresh_reject_rate()
        m.set_heartbeats(self.loops.ages())

    def _throttle_gauges(self, now: int) -> None:
        m, t = self.metrics, self.throttle
        backoff: dict[str, int] = {}
        events: dict[str, int] = {}
        for sym in self._symbols:
            b = backoff[sym] = t.backoff_ms(sym, now)
            m.throttle_backoff_ms.labels(symbol=sym).set(b)
            events[sym] = 0
            for op in OPS:
                n = t.events_in_window(op, sym, now)
                events[sym] += n
                m.throttle_events_in_window.labels(op=op, symbol=sym).set(n)
        for op in OPS:
            m.throttle_window_limit.labels(op=op).set(t.limit(op))
        m.throttle_events_in_window_total.set(sum(events.values()))
        m.throttle_backoff_ms_max.set(max(backoff.values(), default=0))
        self._check_throttle_thresholds(backoff, events)

    def _check_throttle_thresholds(self, backoff: dict[str, int], events: dict[str, int]) -> list[str]:
        """Compare the throttle with the thresholds in effect (``self.thresholds``, seed
        "Per-symbol throttle thresholds"): globally the largest backoff and the sends in the
        window over all symbols against ``throttle.global``; each symbol with a per-symbol
        entry against its merged values.  A new breach is counted (``thresholds.breaches`` in
        the throttle snapshot) and alerted (``throttle_threshold_breach``, at most once per
        key per ``THRESHOLD_REALERT_S``); it ends when the value is back at or under the
        threshold.  Returns the keys in breach."""
        th = self.thresholds.current
        g = th.throttle_for(None)
        checks = [("global", "backoff_ms", max(backoff.values(), default=0), g["max_throttle_backoff_ms"]),
                  ("global", "events_in_window_total", sum(events.values()), g["max_throttle_events_in_window_total"])]
        for sym in self._symbols:
            if sym.upper() in th.throttle_per_symbol:
                lim = th.throttle_for(sym)
                checks += [(sym, "backoff_ms", backoff[sym], lim["max_throttle_backoff_ms"]),
                           (sym, "events_in_window_total", events[sym], lim["max_throttle_events_in_window_total"])]
        now = time.monotonic()
        for scope, what, value, limit in checks:
            key = f"{scope}:{what}"
            if value <= limit:
                self._thr_active.discard(key)
                continue
            if key in self._thr_active:
                continue
            self._thr_active.add(key)
            self._thr_breaches[key] += 1
            reason = (f"Throttle backoff too high: {value} > {limit}" if what == "backoff_ms"
                      else f"Throttle events in window too high: {value} > {limit}")
            log.warning("throttle_threshold_breach", scope=scope, metric=what, value=value, threshold=limit)
            if now - self._thr_alerted.get(key, -math.inf) >= THRESHOLD_REALERT_S:
                self._thr_alerted[key] = now
                self.alert("throttle_threshold_breach", {"scope": scope, "metric": what, "value": value,
                                                         "threshold": limit, "reason": reason,
                                                         "thresholds_version": th.version})
        return sorted(self._thr_active)

    def _fee_status(self, totals: Any) -> Any:
        turnover = float(totals.turnover_usd)
        maker_share = float(totals.maker_notional_usd) / turnover if turnover > 0 else 1.0
        return self.fee_tiers.status(turnover, maker_share)

    def _fee_gauges(self, totals: Any) -> None:
        st = self._fee_status(totals)
        m = self.metrics
        m.fee_tier_level.set(st.level)
        m.fee_tier_expected_bps.set(st.expected_next_bps)
        m.fee_tier_distance_usd.set(st.distance_usd)
        m.effective_fee_bps_now.set(st.effective_bps_now)
        cfg = self.loaded.config
        m.maker_fee_bps.set(cfg.trading.maker_fee_bps)
        m.taker_fee_bps.set(cfg.trading.taker_fee_bps)

    def _allocator_tick(self) -> None:
        """Publish the engine's latest rebalance (the engine rebalances on its decision
        ticks every ``portfolio.rebalance_minutes``); keep only the latest in memory."""
        eng = self.engine
        allocs = eng.allocations
        if not allocs:
            return
        alloc = allocs[-1]
        del allocs[:-1]  # a service runs for days: the engine's history would only grow
        if alloc is self._alloc:
            return
        self._alloc = alloc
        m = self.metrics
        for sa in alloc.symbols:
            m.portfolio_weight.labels(symbol=sa.symbol).set(sa.weight)
            m.portfolio_target_usd.labels(symbol=sa.symbol).set(sa.target_usd)
            m.allocator_estimated_cost_bps.labels(symbol=sa.symbol).set(sa.cost_bps)
            m.allocator_turnover_factor.labels(symbol=sa.symbol).set(sa.turnover_factor)
            if sa.delta_capped:
                m.allocator_delta_capped.inc()
        m.portfolio_budget_available_usd.set(alloc.deploy_usd)
        m.allocator_hwm_equity_usd.set(alloc.hwm_equity_usd)
        m.allocator_soft_factor.set(alloc.soft_factor)
        m.allocator_backoff_level.set(alloc.backoff_level)
        m.allocator_last_update_ts.set(time.time())

    def _trim_history(self) -> None:
        """Bound what the engine keeps for a backtest's final report and a service never
        reads (``Engine.trim_history``: finished order records, old fills, old equity
        samples; positions, PnL and fees are untouched).  A service runs for days and the
        soak bench requires a flat RSS."""
        if len(self._sent_at) > SENT_AT_MAX:  # sends whose ack never came (a venue that dropped them)
            self._sent_at.clear()
        self.engine.trim_history(HISTORY_FILLS, HISTORY_EQUITY_POINTS)

    def _soak_tick(self) -> None:
        """Process figures and the soak guard: RSS, threads and drift against
        ``SOAK_RSS_MAX_MB``, ``SOAK_THREADS_MAX``, ``SOAK_DRIFT_MAX_MS`` (unset = off);
        one ``soak_guard_breach`` alert per breach episode.  Trims the engine's history."""
        self._trim_history()
        s = self.metrics.sample_process()
        rss = int(s["rss_bytes"])
        self._rss_last = rss
        self._rss_max = max(self._rss_max, rss)
        checks = {
            "rss_mb": (rss / 1048576.0, os.environ.get("SOAK_RSS_MAX_MB")),
            "threads": (float(s["threads"]), os.environ.get("SOAK_THREADS_MAX")),
            "drift_ms": (self.metrics.max_drift_ms(), os.environ.get("SOAK_DRIFT_MAX_MS")),
        }
        for name, (value, raw) in checks.items():
            try:
                limit = float(raw) if raw else None
            except ValueError:
                limit = None
            over = limit is not None and value > limit
            if over and name not in self._soak_breached:
                self._soak_breached.add(name)
                self.alert("soak_guard_breach", {"metric": name, "value": round(value, 3), "limit": limit})
            elif not over:
                self._soak_breached.discard(name)

    def _status_state(self) -> dict[str, Any]:
        eng = self.engine
        sym = self._symbols[0] if self._symbols else ""
        rt = eng.rt.get(sym)
        mid = None
        if rt is not None and rt.book.best_bid is not None and rt.book.best_ask is not None:
            mid = rt.instrument.px_float((rt.book.best_bid + rt.book.best_ask)) / 2.0
        pnl = float(eng.ledger.totals().net_pnl_usd) if eng.counters.events else 0.0
        guard = "paused" if eng.paused else ("risk" if (self.risk.paused or self.risk.stopped) else
                                             ("capped" if self.intraday.state(eng.now_ns).breached else "ok"))
        return {"mid": mid, "pos": rt.instrument.lots_to_qty(eng.ledger.qty_lots(sym)) if rt else "0",
                "pnl_usd": round(pnl, 4), "open": eng.open_orders(), "fills": eng.counters.fills, "guard": guard,
                "events": eng.counters.events, "uptime_s": round(self.uptime_s(), 1)}

    def _status_tick(self) -> None:
        if self.status_line is not None and self.state == "running":
            self.status_line.emit(self._status_state())

    # ================================================================== state files
    def _load_state(self) -> None:
        """Load the three snapshots (refusals are counted and alerted; the service then
        starts clean for that kind) and continue the data clock after them."""
        clocks: list[int] = []
        eng = self.engine
        cfg = self.loaded.config

        def load(kind: str, apply: Callable[[dict[str, Any]], Any]) -> None:
            seen: dict[str, Any] = {}

            def wrapped(payload: dict[str, Any]) -> None:
                apply(payload)
                seen["payload"] = payload

            outcome = self.snapshots.load(kind, wrapped)
            if outcome == "loaded":
                t = snap.payload_clock_ns(kind, seen["payload"])
                if t is not None:
                    clocks.append(t)
            elif outcome == "refused":
                st = self.snapshots.status()[kind]
                self.alert("snapshot_refused", {"kind": kind, "reason": st.get("reason", ""), "path": st["path"]})
                self._safe(lambda: self.audit.append("snapshot.refused", {"kind": kind, "reason": st.get("reason", "")}))

        load("throttle", lambda p: snap.restore_throttle(self.throttle, p, cfg.throttle))
        load("allocator", self.allocator.restore)
        load("orders", lambda p: snap.restore_orders({s: rt.orders for s, rt in eng.rt.items()}, p))
        self.venue.start_loop = self.scan.loop_after(max(clocks) if clocks else None)
        if self.venue.start_loop:
            log.info("replay_clock_continued", start_loop=self.venue.start_loop, after_ns=max(clocks))

    def _snapshot_payloads(self) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """The three payloads, taken together on the event loop (so they agree), numbered."""
        eng = self.engine
        self._io_gen += 1
        return self._io_gen, [("throttle", self.throttle.to_snapshot()),
                              ("allocator", self.allocator.state()),
                              ("orders", snap.orders_payload({s: rt.orders for s, rt in eng.rt.items()}, eng.now_ns))]

    def _write_snapshots(self, gen: int, payloads: list[tuple[str, dict[str, Any]]]) -> None:
        """Write one generation (atomic files); an older generation never overwrites a newer
        one, whichever thread gets to the disk first."""
        with self._io_lock:
            if gen <= self._io_written:
                return
            for kind, payload in payloads:
                self.snapshots.save(kind, payload)
            self._io_written = gen

    def save_snapshots(self) -> None:
        """Write the throttle, allocator and order-id snapshots now (atomic, integrity header)."""
        self._write_snapshots(*self._snapshot_payloads())

    async def _save_snapshots_async(self) -> None:
        """The periodic save: payloads taken on the loop, files written (fsync) off it."""
        gen, payloads = self._snapshot_payloads()
        await asyncio.to_thread(self._write_snapshots, gen, payloads)

    def metrics_body(self) -> dict[str, Any]:
        """The seed's ``metrics.json`` sections: fees, intraday_caps, position_skew, runtime."""
        eng = self.engine
        now = eng.now_ns
        st = self._fee_status(eng.ledger.totals())
        caps = self.intraday.state(now)
        skew = self.skew.state()
        return {
            "fees": {"tier_level": st.level, "maker_bps": _r(st.maker_bps), "distance_usd": _r(st.distance_usd),
                     "effective_fee_bps_now": _r(st.effective_bps_now)},
            "intraday_caps": {"pnl": _r(caps.pnl_usd), "turnover": _r(caps.turnover_usd), "vol": _r(caps.vol_pct),
                              "breached": bool(caps.breached)},
            "position_skew": {"positions": {s: _r(v) for s, v in sorted(skew.positions_usd.items())},
                              "symbol_breach": list(skew.symbol_breach), "color_breach": bool(skew.color_breach)},
            "runtime": {"utc": utc_now_iso(), "version": artifacts.mmkit_version(), "git_sha": artifacts.git_sha(),
                        "mode": "sim", "env": os.environ.get("MM_ENV") or "dev"},
        }

    def _metrics_doc(self) -> dict[str, Any]:
        meta = artifacts.build_meta(cfg_hash=self.loaded.cfg_hash, seed=self.options.seed)
        return artifacts.artifact("run_metrics", self.metrics_body(), meta)

    def write_metrics_json(self) -> None:
        """Rewrite ``metrics.json`` now (atomic)."""
        artifacts.write_json(self.artifacts_dir / "metrics.json", self._metrics_doc())

    async def _write_metrics_json_async(self) -> None:
        doc = self._metrics_doc()
        await asyncio.to_thread(artifacts.write_json, self.artifacts_dir / "metrics.json", doc)

    def _summary(self) -> dict[str, Any]:
        eng = self.engine
        totals = eng.ledger.totals()
        positions = {}
        for sym in self._symbols:
            lots = eng.ledger.qty_lots(sym)
            positions[sym] = {"lots": lots, "qty": self._inst(sym).lots_to_qty(lots),
                              "usd": _r(eng.positions.position_usd(sym) if eng.positions else 0.0)}
        lat = list(self._latency_us)
        body = {
            "status": "error" if self.error is not None else "ok",
            "exit_reason": self.stop_reason or "requested",
            "error": None if self.error is None else (self.error.line() if isinstance(self.error, MmkitError)
                                                      else f"E_INTERNAL: {type(self.error).__name__}: {self.error}"[:300]),
            "open_orders": eng.open_orders(),
            "venue_open_orders": self.venue.open_orders(),
            "cancels_at_exit": self._shutdown_cancels,
            "uptime_s": round(self.uptime_s(), 3),
            "events": eng.counters.events,
            "decisions": eng.counters.decisions,
            "fills": eng.counters.fills,
            "engine": eng.counters.as_dict(),
            "position": positions,
            "pnl": {"net_usd": _r(totals.net_pnl_usd), "realized_usd": _r(totals.realized_pnl_usd),
                    "unrealized_usd": _r(totals.unrealized_pnl_usd), "fees_usd": _r(totals.fees_usd),
                    "rebates_usd": _r(totals.rebates_usd), "turnover_usd": _r(totals.turnover_usd)},
            "guard_events": sum(self._guard_counts.values()),
            "guard_events_by_kind": dict(sorted(self._guard_counts.items())),
            "killswitch": {"engaged": self.killswitch_gate.tripped, "actions": dict(sorted(self._ks_actions.items()))},
            "replay": {"data": list(self.data), "speed": self._speed_label(), "loop": self.options.loop,
                       "start_loop": self.venue.start_loop, "loops": self.venue.loops_started,
                       "events_per_loop": self.scan.n_events},
            "decision_latency_us": {**percentiles(lat, (0.5, 0.99)), "n": len(lat)},
            "soak": {"rss_start_bytes": self._rss_start, "rss_end_bytes": self._rss_last or self._rss_start,
                     "rss_max_bytes": self._rss_max},
            "snapshots": self.snapshots.status(),
        }
        meta = artifacts.build_meta(cfg_hash=self.loaded.cfg_hash, seed=self.options.seed, inputs=list(self.data))
        return artifacts.artifact("run_summary", body, meta)

    def _speed_label(self) -> str:
        s = self.options.speed
        return "max" if s is None else f"{s:g}"

    # ================================================================== ServiceApi: health
    def uptime_s(self) -> float:
        return time.monotonic() - self._t_start

    def heartbeats(self) -> dict[str, float]:
        return self.loops.ages()

    def loop_drift_ms(self) -> float:
        return self.metrics.max_drift_ms()

    def health(self) -> dict[str, Any]:
        comps = {name: self.health_component(name)[0] for name in ("orders", "risk", "connectors")}
        ok = self.state == "running" and all(comps.values())
        return {"status": "ok" if ok else "degraded", "state": self.state, "uptime_s": round(self.uptime_s(), 3),
                "components": {k: "ok" if v else "degraded" for k, v in comps.items()}}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        driver_ok = self._driver is not None and not self._driver.done()
        ok = self.state == "running" and driver_ok and not self.engine.paused
        return ok, {"ready": ok, "state": self.state, "engine_loop": "running" if driver_ok else "stopped",
                    "paused": self.engine.paused, "pause_reason": self.engine.pause_reason}

    def health_component(self, name: str) -> tuple[bool, dict[str, Any]]:
        eng = self.engine
        now = eng.now_ns
        if name == "orders":
            rate = self.metrics.refresh_reject_rate()
            circuit = self.circuit.state(now)
            ok = circuit != "open" and rate < 0.5
            return ok, {"open_orders": eng.open_orders(), "venue_open_orders": self.venue.open_orders(),
                        "reject_rate": round(rate, 6), "circuit": circuit, "paused": eng.paused}
        if name == "risk":
            caps = self.intraday.state(now)
            blocked = self.risk.stopped or self.risk.paused or bool(caps.breached) or self.killswitch_gate.tripped
            return not blocked, {"risk_paused": self.risk.paused, "drawdown_stop": self.risk.stopped,
                                 "drawdown_ratio": round(self.risk.drawdown_ratio(), 6),
                                 "intraday_breached": list(caps.breached), "killswitch": self.killswitch_gate.status(),
                                 "frozen_symbols": list(self.skew.state().symbol_breach)}
        if name == "connectors":
            max_age = _env_float("SELFCHK_LOOP_MAX_AGE_SEC", 10.0)
            age = None if self._last_event_at is None else time.monotonic() - self._last_event_at
            alive = self._driver is not None and not self._driver.done()
            ok = alive and (age is None or age <= max_age or self.options.speed is not None and age <= max_age * 10)
            return ok, {"venue": "replay", "feed": "running" if alive else "stopped",
                        "last_event_age_s": None if age is None else round(age, 3), "events": eng.counters.events,
                        "loop": self.venue.loops_started, "speed": self._speed_label()}
        raise MmkitError("E_LIVE_UNKNOWN_COMPONENT", f"no health component {name!r}; known: orders, risk, connectors")

    def perf_snapshot(self) -> dict[str, Any]:
        lat = list(self._latency_us)
        return {"loops": self.metrics.loop_ticks(), "event_loop_drift_ms": round(self.loop_drift_ms(), 3),
                "admin_latency_buckets": self.metrics.admin_latency_buckets(),
                "decision_latency_us": {**percentiles(lat, (0.5, 0.95, 0.99)), "n": len(lat)},
                "heartbeats": self.heartbeats()}

    # ================================================================== ServiceApi: trading state
    def positions(self) -> dict[str, Any]:
        eng = self.engine
        out: dict[str, Any] = {}
        for sym in self._symbols:
            pos = eng.ledger.position(sym)
            rt = eng.rt[sym]
            bid, ask = rt.book.best_bid, rt.book.best_ask
            out[sym] = {"position_lots": pos.qty_lots, "position": rt.instrument.lots_to_qty(pos.qty_lots),
                        "position_usd": _r(eng.positions.position_usd(sym) if eng.positions else 0.0),
                        "avg_entry": _r(pos.avg_entry_float), "realized_pnl_usd": _r(pos.realized_pnl_usd),
                        "unrealized_pnl_usd": _r(pos.unrealized_pnl_usd), "fees_usd": _r(pos.fees_paid_usd),
                        "fills": pos.fills,
                        "mid": None if bid is None or ask is None else _r(rt.instrument.px_float(bid + ask) / 2.0)}
        totals = eng.ledger.totals()
        return {"symbols": out, "net_pnl_usd": _r(totals.net_pnl_usd),
                "equity_usd": _r(self.loaded.config.portfolio.budget_usd + float(totals.net_pnl_usd))}

    def orders(self) -> list[dict[str, Any]]:
        out = []
        for sym in self._symbols:
            inst = self._inst(sym)
            for o in self.engine.rt[sym].orders.open_orders():
                out.append({"client_id": o.client_id, "symbol": sym, "side": "buy" if o.side > 0 else "sell",
                            "price": inst.ticks_to_px(o.price), "qty": inst.lots_to_qty(o.qty),
                            "filled": inst.lots_to_qty(o.filled), "state": str(o.state), "level": o.level,
                            "created_ns": o.created_ns})
        return out

    def allocator_snapshot(self) -> dict[str, Any]:
        a = self._alloc
        last = None
        if a is not None:
            last = {"ts_ns": a.ts_ns, "mode": a.mode, "budget_usd": _r(a.budget_usd), "deploy_usd": _r(a.deploy_usd),
                    "soft_factor": _r(a.soft_factor), "backoff_level": a.backoff_level, "skew_breach": a.skew_breach,
                    "symbols": {s.symbol: {"weight": _r(s.weight), "target_usd": _r(s.target_usd),
                                           "max_levels": s.max_levels, "cost_bps": _r(s.cost_bps),
                                           "turnover_factor": _r(s.turnover_factor), "delta_capped": s.delta_capped}
                                for s in a.symbols}}
        return {"last": last, "state": _finite_tree(self.allocator.state()),
                "budgets": {s: {"target_usd_per_side": _r(rt.target_usd_per_side), "max_levels": rt.max_levels}
                            for s, rt in sorted(self.engine.rt.items())}}

    def throttle_snapshot(self) -> dict[str, Any]:
        now = self.engine.now_ns
        out = self.throttle.to_snapshot()
        out["now_ns"] = now
        out["events_in_window_total"] = self.throttle.events_in_window_total(now)
        out["backoff_ms"] = {s: self.throttle.backoff_ms(s, now) for s in self._symbols}
        out["limits"] = {op: self.throttle.limit(op) for op in OPS}
        th = self.thresholds.current
        out["thresholds"] = {"version": th.version, "path": th.path, "global": th.throttle_for(None),
                             "per_symbol": {s: th.throttle_for(s) for s in self._symbols if s.upper() in th.throttle_per_symbol},
                             "active": sorted(self._thr_active), "breaches": dict(sorted(self._thr_breaches.items()))}
        return out

    # ================================================================== ServiceApi: operator controls
    def killswitch_state(self) -> dict[str, Any]:
        eng = self.engine
        return {"paused": eng.paused, "reason": eng.pause_reason, "engaged": self.killswitch_gate.tripped,
                "killswitch": self.killswitch_gate.status(), "open_orders": eng.open_orders(),
                "positions": {s: self._inst(s).lots_to_qty(eng.ledger.qty_lots(s)) for s in self._symbols}}

    async def killswitch(self, action: str, actor: str) -> dict[str, Any]:
        """``pause``: stop quoting and cancel everything (acks settled); ``resume``: quote
        again; ``flatten``: pause, then close each position with a crossing order."""
        if action not in KILLSWITCH_ACTIONS:
            raise MmkitError("E_LIVE_BAD_REQUEST", f"killswitch action must be one of {', '.join(KILLSWITCH_ACTIONS)}, "
                             f"got {action!r}")
        eng = self.engine
        result: dict[str, Any] = {"action": action}
        if action in ("pause", "flatten"):
            cancels = self._cancel_everything(f"operator_{action}")
            self.killswitch_gate.trip("operator", eng.now_ns)
            result["cancels"] = cancels
            if action == "flatten":
                result["flatten"] = self._flatten()
        else:
            self.killswitch_gate.reset(eng.now_ns)
            eng.resume()
        self._drain_guard_events()
        self._ks_actions[action] += 1
        self.metrics.killswitch_triggers.labels(action=action).inc()
        self.metrics.killswitch_engaged.set(1 if self.killswitch_gate.tripped else 0)
        state = self.killswitch_state()
        self.audit.append("killswitch", {"actor": actor, "action": action, "open_orders": state["open_orders"],
                                         **{k: v for k, v in result.items() if k != "action"}})
        if action != "resume":
            self.alert("killswitch_fired", {"action": action, "actor": actor, "cancels": result.get("cancels", 0)})
        return {**state, "result": result}

    def _flatten(self) -> dict[str, Any]:
        """Close every position with one crossing (taker) limit order per symbol
        (``Engine.flatten``: priced at the book level that covers its size, created by the
        symbol's order manager so its fill is booked like any other), wait for the venue
        (``settle``), then cancel what did not fill."""
        eng = self.engine
        out: dict[str, Any] = {}
        for sym in self._symbols:
            res = eng.flatten(sym)
            if res.why == "flat":
                continue
            if res.sent:
                eng.settle()
                if eng.open_orders():
                    eng.cancel_all("flatten_rest")
                    eng.settle()
            inst = self._inst(sym)
            row: dict[str, Any] = {"before_lots": res.before_lots, "after_lots": eng.ledger.qty_lots(sym),
                                   "sent": res.sent}
            if res.price is not None:
                row["price"] = inst.ticks_to_px(res.price)
            if res.client_id is not None:
                row["client_id"] = res.client_id
            if res.why:
                row["why"] = res.why
            out[sym] = row
        return out

    def config_snapshot(self) -> dict[str, Any]:
        return {"path": self.loaded.path, "cfg_hash": self.loaded.cfg_hash, "profile": self.loaded.profile,
                "config": to_dict(self.loaded.config, sanitize=True), "pending_restart": list(self.pending_restart)}

    def reload_config(self, path: str | None, actor: str) -> dict[str, Any]:
        """Validate the file fully (``load_config``); an invalid one raises its ``E_CFG_*``
        error and nothing changes.  A valid one is applied where it can be (allocator,
        skew limits, anti-stale guard) and then swapped in; other changed keys are listed
        in ``pending_restart`` (they take effect at the next start)."""
        target = path or self.loaded.path
        try:
            new = load_config(target, profile=self.loaded.profile, overlays=list(self.loaded.overlays) or None,
                              use_env_profile=False)  # the profile and overlays the service started with
            alloc_probe = Allocator(new.config.portfolio, new.config.allocator.smoothing, new.config.guards.pos_skew,
                                    new.config.portfolio.budget)
            del alloc_probe
        except MmkitError:
            self.metrics.config_reload.labels(result="failed").inc()
            raise
        except ValueError as exc:
            self.metrics.config_reload.labels(result="failed").inc()
            raise MmkitError("E_CFG_RANGE", f"{target}: {exc}") from exc
        old_hash = self.loaded.cfg_hash
        changed = _changed_keys(to_dict(self.loaded.config), to_dict(new.config))
        hot = [k for k in changed if k.startswith(HOT_PREFIXES)]
        cold = [k for k in changed if k not in hot]
        c = new.config
        self.allocator.reconfigure(c.portfolio, c.allocator.smoothing, c.guards.pos_skew, c.portfolio.budget)
        self._apply_anti_stale(c.strategy.enable_anti_stale_guard, c.strategy.order_ttl_ms, c.strategy.price_drift_bps)
        self.loaded = new
        self.pending_restart = sorted(set(self.pending_restart) | set(cold))
        self.metrics.config_reload.labels(result="ok").inc()
        result = {"ok": True, "path": target, "cfg_hash_old": old_hash, "cfg_hash": new.cfg_hash, "applied": hot,
                  "pending_restart": cold, "warnings": list(new.warnings)}
        self.audit.append("config.reload", {"actor": actor, **result})
        return result

    def throttle_load(self, payload: dict[str, Any], actor: str) -> dict[str, Any]:
        """Load a throttle snapshot (bare, or in its integrity envelope) into the running
        throttle, replacing its windows; a bad one is refused with its ``E_SNAPSHOT_*`` code
        and counted, and the throttle stays as it was.  The payload must have ``symbols``
        and only throttle snapshot fields (or the read-only ones the snapshot endpoint
        adds): anything else, e.g. ``{"x": 1}``, would otherwise load as an empty legacy
        snapshot and wipe the state."""
        try:
            if isinstance(payload, dict) and set(payload) == {"version", "sha256", "payload"}:
                payload = snap.open_envelope(payload, "throttle", "<request>")
            _check_throttle_fields(payload)
            snap.restore_throttle(self.throttle, payload, self.loaded.config.throttle)
        except snap.SnapshotError:
            self.metrics.on_snapshot_load("throttle", False)
            raise
        self.metrics.on_snapshot_load("throttle", True)
        self.audit.append("throttle.load", {"actor": actor, "symbols": sorted((payload.get("symbols") or {}))})
        return {"ok": True, "snapshot": self.throttle_snapshot()}

    def throttle_reset(self, actor: str) -> dict[str, Any]:
        snap.transfer_state(self.throttle, Throttle(self.loaded.config.throttle))
        self.audit.append("throttle.reset", {"actor": actor})
        return {"ok": True, "snapshot": self.throttle_snapshot()}

    def anti_stale_guard(self) -> dict[str, Any]:
        """The settings every order manager runs with (they are changed together)."""
        return self.engine.rt[self._symbols[0]].orders.anti_stale_settings()

    def set_anti_stale_guard(self, body: dict[str, Any], actor: str) -> dict[str, Any]:
        """The seed's ``POST /admin/anti-stale-guard``: run the anti-stale check now, for
        every symbol or ``{"symbol": S}``, optionally changing the settings first (any of
        ``enabled``, ``order_ttl_ms`` (int >= 0), ``price_drift_bps`` (>= 0), applied to
        every order manager at once; anything invalid is refused and nothing changes).

        The check is the order manager's own: the symbol's decision timer is reset, so its
        next book update runs the strategy and the manager refreshes (amends) or cancels
        every order older than ``order_ttl_ms`` or priced before a ``price_drift_bps`` move.
        The answer counts the open orders already older than the TTL."""
        if not isinstance(body, dict):
            raise MmkitError("E_LIVE_BAD_REQUEST", "body must be an object")
        allowed = set(ANTI_STALE_KEYS) | {"symbol"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise MmkitError("E_LIVE_BAD_REQUEST", f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
        sym = body.get("symbol")
        if sym is not None and sym not in self.engine.rt:
            raise MmkitError("E_LIVE_BAD_REQUEST", f"symbol {str(sym)[:32]!r} is not traded; traded: {', '.join(self._symbols)}")
        cur = self.anti_stale_guard()
        changed = {k: body[k] for k in ANTI_STALE_KEYS if k in body}
        if changed:
            enabled = changed.get("enabled", cur["enabled"])
            ttl = changed.get("order_ttl_ms", cur["order_ttl_ms"])
            drift = changed.get("price_drift_bps", cur["price_drift_bps"])
            if not isinstance(enabled, bool):
                raise MmkitError("E_LIVE_BAD_REQUEST", "enabled must be true or false")
            if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
                raise MmkitError("E_LIVE_BAD_REQUEST", f"order_ttl_ms must be an integer >= 0, got {ttl!r}")
            if isinstance(drift, bool) or not isinstance(drift, (int, float)) or not math.isfinite(drift) or drift < 0:
                raise MmkitError("E_LIVE_BAD_REQUEST", f"price_drift_bps must be a finite number >= 0, got {drift!r}")
            self._apply_anti_stale(enabled, ttl, float(drift))
        settings = self.anti_stale_guard()
        now = self.engine.now_ns
        ttl_ns = settings["order_ttl_ms"] * NS_PER_MS
        checked: dict[str, Any] = {}
        for s in ([sym] if sym else self._symbols):
            rt = self.engine.rt[s]
            rt.next_decision_ns = 0  # the next book update decides, whatever the decision timer says
            open_orders = rt.orders.open_orders()
            old = sum(1 for o in open_orders if now - (o.placed_ns or o.created_ns) > ttl_ns)
            checked[s] = {"open_orders": len(open_orders), "older_than_ttl": old}
        self.audit.append("anti_stale_guard", {"actor": actor, "symbol": sym, "old": cur, "new": settings,
                                               "checked": sorted(checked)})
        return {**settings, "check": "on_next_book_update", "paused": self.engine.paused, "symbols": checked}

    def _apply_anti_stale(self, enabled: bool, ttl_ms: int, drift_bps: float) -> None:
        """The same settings on every order manager (values were checked by the caller)."""
        for rt in self.engine.rt.values():
            rt.orders.set_anti_stale(bool(enabled), int(ttl_ms), float(drift_bps))

    # ================================================================== ServiceApi: alerts and recorder
    def alert(self, kind: str, payload: dict[str, Any]) -> None:
        self.alerts.append(kind, payload)
        self.metrics.admin_alert_events.labels(kind=kind).inc()

    def alerts_tail(self, n: int) -> list[dict[str, Any]]:
        return self.alerts.tail(n)

    def alerts_clear(self, actor: str) -> int:
        n = self.alerts.clear()
        self.audit.append("alerts.clear", {"actor": actor, "lines": n})
        return n

    def recorder_status(self) -> dict[str, Any]:
        return self.recorder.status()

    def recorder_rotate(self, actor: str) -> dict[str, Any]:
        out = self.recorder.rotate()
        self.audit.append("recorder.rotate", {"actor": actor, **out})
        return out

    async def execution_replay(self, path: str, speed: str, actor: str) -> dict[str, Any]:
        """The seed's E2.7 replay: read a recorder file (``recorder.read_recording``: bounded,
        ASCII, every line validated before anything counts) and walk it at ``speed``
        (``1x``, ``10x``: the gaps between ``ts``, capped; ``max``: no waiting), counting
        fills and rejects per symbol and color.  The engine, the venue and the trading
        metrics are not touched: it replays the execution flow, not the market.  Moves
        ``replay_events_total`` and ``replay_duration_ms``, alerts ``replay_started`` and
        ``replay_finished``, audits ``execution.replay``.  One replay at a time."""
        if not isinstance(speed, str) or speed not in rec.REPLAY_SPEEDS:
            raise MmkitError("E_LIVE_BAD_REQUEST", f"speed must be one of {', '.join(rec.REPLAY_SPEEDS)}, got {speed!r}")
        if self._replaying:
            raise MmkitError("E_LIVE_REPLAY_BUSY", "an execution replay is already running; wait for its answer")
        self._replaying = True
        try:
            events = await asyncio.to_thread(rec.read_recording, path)
            self.alert("replay_started", {"path": path[:300], "speed": speed, "events": len(events), "actor": actor})
            tally = rec.ReplayTally()
            t0 = time.perf_counter()
            waited = 0.0
            for i, (ev, wait) in enumerate(zip(events, rec.pacing(events, speed))):
                if wait > 0:
                    waited += wait
                    await asyncio.sleep(wait)
                elif i % REPLAY_YIELD_EVERY == REPLAY_YIELD_EVERY - 1:
                    await asyncio.sleep(0)  # keep HTTP and the loops responsive on a big file
                tally.add(ev)
            ms = (time.perf_counter() - t0) * 1000.0
        finally:
            self._replaying = False
        out = tally.result()
        self.metrics.replay_events.inc(out["events_total"])
        self.metrics.replay_duration_ms.set(ms)
        out.update(path=path[:300], speed=speed, duration_ms=round(ms, 3), paced_s=round(waited, 3))
        self.alert("replay_finished", {k: out[k] for k in ("path", "speed", "events_total", "fills", "rejects",
                                                           "duration_ms")})
        self.audit.append("execution.replay", {"actor": actor, **{k: v for k, v in out.items() if k != "by_symbol"}})
        return out


# ----------------------------------------------------------------------------- helpers
def _r(x: Any) -> float:
    return round(float(x), 6)


def _finite_tree(obj: Any) -> Any:
    if isinstance(obj, float):
        return round(obj, 6)
    if isinstance(obj, dict):
        return {k: _finite_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_tree(v) for v in obj]
    return obj


def config_thresholds(throttle: Any) -> Thresholds:
    """The config's ``throttle.global`` / ``throttle.per_symbol`` as version 0 of the
    thresholds store (what the service checks until a thresholds file is reloaded)."""
    def values(th: Any) -> dict[str, int | float]:
        return {"max_throttle_backoff_ms": int(th.max_throttle_backoff_ms),
                "max_throttle_events_in_window_total": int(th.max_throttle_events_in_window_total)}

    return Thresholds(version=0, path=None, throttle_global=values(throttle.global_thresholds),
                      throttle_per_symbol={str(s).upper(): values(v) for s, v in sorted(throttle.per_symbol.items())})


def _check_throttle_fields(payload: Any) -> None:
    """Refuse what is not a throttle snapshot before the throttle's own loader sees it."""
    if not isinstance(payload, dict):
        raise snap.SnapshotError("invalid_payload", "throttle", "<request>", "must be an object")
    unknown = sorted(str(k) for k in payload if k not in THROTTLE_STATE_KEYS | THROTTLE_VIEW_KEYS)
    if unknown:
        raise snap.SnapshotError("invalid_payload", "throttle", "<request>",
                                 f"unknown field(s) {', '.join(unknown)[:160]}; a throttle snapshot has "
                                 f"{', '.join(sorted(THROTTLE_STATE_KEYS))}")
    if "symbols" not in payload:
        raise snap.SnapshotError("invalid_payload", "throttle", "<request>",
                                 "needs 'symbols' (and 'version', 'window_sec' for a v2 snapshot); "
                                 "send what GET /admin/throttle/snapshot returns")


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (leaves and whole lists)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]

