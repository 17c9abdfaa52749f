"""The live engine's Prometheus metrics: one ``LiveMetrics`` per service, on its own registry.

Why a class with its own ``CollectorRegistry`` (never prometheus-client's global default):
tests start many services in one process, and each must expose only its own numbers at
``GET /metrics`` (``service.registry``).  Names follow the seed (mm-bot README) wherever
the seed names a metric the live engine can honestly produce; where the seed is silent
the name follows the seed's conventions (``_usd``, ``_ms``, ``_bps``, ``_total``).  Seed
metrics that belong to features mmkit's live engine does not run (blue/green rollout,
shadow mode, autopolicy, markout, leader election) are deliberately absent: an exported
metric that never moves would lie on a dashboard.

Labels are low-cardinality only: ``symbol``, ``op`` (create|amend|cancel), ``reason``,
``color``, ``kind``, ``loop``, ``endpoint`` (a route template, never a raw path), plus the
seed's small enumerations ``liquidity`` (maker|taker), ``state``, ``action``, ``gen``,
``bucket_ms`` and ``result`` (ok|failed).  ``ALLOWED_LABELS`` lists them; a test holds it.

Exposed series (counters gain ``_total`` from prometheus-client; the names below are the
names Prometheus sees; C = counter, G = gauge, H = histogram with ``_bucket/_sum/_count``):

==========================================  ==  ==================  =============================================
name                                        t   labels              meaning
==========================================  ==  ==================  =============================================
creates_total                               C   symbol              order creates sent to the venue
amend_attempts_total                        C   symbol              order amends sent
cancels_total                               C   symbol              order cancels sent
order_rejects_total                         C   op, reason          venue rejects (and send errors) by reason
order_reject_rate                           G                       rejects / results over the last 60 s (0..1)
orders_active                               G   symbol              open orders resting on the venue
order_ack_latency_ms                        H   op                  send -> venue ack (or reject) latency, ms
stale_cancels_total                         C   symbol, reason      anti-stale guard cancels (ttl|drift)
refresh_amends_total                        C   symbol, reason      anti-stale guard refresh amends
fills_total                                 C   symbol, liquidity   fills (maker|taker)
fills_notional_usd_total                    C   symbol              traded notional, USD
realized_pnl_usd                            G   symbol              realized PnL, USD (before fees)
unrealized_pnl_usd                          G   symbol              mark-to-market PnL of the open position, USD
fees_paid_usd                               G   symbol              fees paid since start, USD (>= 0)
rebates_usd                                 G   symbol              maker rebates received since start, USD (>= 0)
net_pnl_total_usd                           G                       realized + unrealized - fees + rebates, USD
position_usd                                G   symbol              signed position at mid, USD
position_qty                                G   symbol              signed position, base units
risk_paused                                 G                       1 while a risk guard pauses quoting
guard_paused_effective                      G                       1 while quoting is paused for any reason
killswitch_engaged                          G                       1 while the operator kill switch holds quoting
killswitch_triggers_total                   C   action              kill switch actions (pause|resume|flatten)
guard_events_total                          C   reason              guard breaches (risk:*, intraday:*, pos_skew:*)
intraday_caps_pnl                           G                       the day's PnL, USD
intraday_caps_turnover                      G                       the day's traded notional, USD
intraday_caps_vol                           G                       the day's volatility, percent
intraday_caps_breached                      G                       1 while an intraday cap blocks new risk
intraday_caps_pnl_stop_usd                  G                       configured daily PnL stop, USD (0 = off)
drawdown_day                                G                       the day's loss, USD: max(0, -intraday_caps_pnl)
portfolio_drawdown_pct                      G                       drawdown from peak equity, percent
risk_max_drawdown_pct                       G                       configured drawdown stop, percent (0 = off)
position_skew_breach                        G   symbol              1 while the symbol is frozen by the skew guard
position_skew_color_breach                  G   color               1 while the color breaches its skew limit
throttle_backoff_ms                         G   symbol              current throttle backoff per symbol, ms
throttle_backoff_ms_max                     G                       max backoff over symbols, ms
throttle_events_in_window                   G   op, symbol          sends inside the throttle window
throttle_events_in_window_total             G                       sum of the above over ops and symbols
throttle_window_limit                       G   op                  sends allowed per window and symbol
throttle_backoffs_total                     C                       backoff escalations
throttle_snapshot_writes_total              C                       throttle snapshots written
throttle_snapshot_writes_failed_total       C                       throttle snapshot writes that failed
throttle_snapshot_loads_total               C                       throttle snapshots loaded
throttle_snapshot_loads_failed_total        C                       throttle snapshot loads refused
throttle_snapshot_mtime_seconds             G   op                  unix time of the last write|load
circuit_state                               G   state               one-hot: closed | open | half_open
circuit_breaker_state                       G                       0 closed, 1 open, 2 half_open
circuit_transitions_total                   C   state               transitions into each state
portfolio_weight                            G   symbol              allocator weight (sums to 1)
portfolio_target_usd                        G   symbol              allocator target notional, USD
portfolio_active_usd                        G   symbol              notional resting in open orders, USD
portfolio_budget_available_usd              G                       budget after the drawdown soft factor, USD
allocator_hwm_equity_usd                    G                       equity high-water mark, USD
allocator_soft_factor                       G                       drawdown soft factor (0..1)
allocator_backoff_level                     G                       smoothing backoff level
allocator_delta_capped_total                C                       target changes clamped by smoothing
allocator_estimated_cost_bps                G   symbol              estimated execution cost, bps
allocator_turnover_factor                   G   symbol              turnover attenuation (floor..1)
allocator_last_update_ts                    G                       unix time of the last rebalance
fee_tier_level                              G                       current VIP fee tier
fee_tier_expected_bps                       G                       maker bps at the next tier
fee_tier_distance_usd                       G                       30-day volume still needed for the next tier
effective_fee_bps_now                       G                       effective fee now (maker share weighted), bps
maker_fee_bps                               G                       current maker fee, bps (negative = rebate)
taker_fee_bps                               G                       current taker fee, bps
decision_latency_ms                         H                       venue event arrival -> actions emitted, ms
loop_tick_ms                                G   loop                last tick duration of a background loop, ms
loop_tick_p95_ms / loop_tick_p99_ms         G   loop                nearest-rank p95/p99 of the last 256 ticks
loop_heartbeat_age_seconds                  G   loop                seconds since the loop last ticked
event_loop_drift_ms                         G                       last event-loop drift sample, ms
event_loop_max_drift_ms                     G                       max drift over the last 60 s, ms
soak_mem_rss_bytes                          G                       resident set size, bytes
soak_open_fds                               G                       open file descriptors (0 where unknown)
soak_threads_total                          G                       live Python threads
soak_gc_gen                                 G   gen                 gc.get_count() per generation
soak_gc_collections                         G   gen                 collections run per generation since start
snapshot_integrity_fail_total               C   kind                snapshots refused on load (bad checksum, ...)
snapshot_writes_total                       C   kind, result        snapshot writes (ok|failed)
admin_requests_total                        C   endpoint            authenticated admin requests
admin_unauthorized_total                    C                       admin requests refused with 401
admin_rate_limited_total                    C   endpoint            admin requests refused with 429
admin_audit_events_total                    C                       admin audit records written
admin_alert_events_total                    C   kind                alerts.log records written, by kind
admin_endpoint_latency_bucket_total         C   endpoint, bucket_ms seed latency buckets (one bucket per request)
admin_endpoint_latency_ms                   H   endpoint            admin request latency, ms
http_requests_total                         C   endpoint            non-admin HTTP requests (/metrics, /healthz..)
thresholds_reload_total                     C   result              POST /admin/thresholds/reload outcomes
thresholds_version                          G                       thresholds generation (bumps on reload)
config_reload_total                         C   result              POST /admin/config/reload outcomes
replay_events_total                         C                       events replayed by the execution replay
replay_duration_ms                          G                       duration of the last execution replay, ms
mmkit_build_info                            G   version             1, with the running mmkit version
mmkit_start_time_seconds                    G                       unix time the service started
==========================================  ==  ==================  =============================================

``ADMIN_LATENCY_BUCKETS_MS`` are the seed's bucket bounds ([0,5,10,20,50,100,200,400,800,
1600,+Inf]); ``admin_endpoint_latency_bucket_total`` counts each request once, in the
smallest bucket whose bound is >= its latency (non-cumulative, as the seed's
``/admin/perf/snapshot`` reports it), while ``admin_endpoint_latency_ms`` is the regular
cumulative histogram for ``histogram_quantile``.
"""

from __future__ import annotations

import gc
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mmkit import __version__

__all__ = [
    "ADMIN_LATENCY_BUCKETS_MS",
    "ALLOWED_LABELS",
    "CIRCUIT_STATES",
    "SNAPSHOT_KINDS",
    "LiveMetrics",
    "bucket_label",
    "nearest_rank",
    "series_names",
]

ALLOWED_LABELS = frozenset({
    "symbol", "op", "reason", "color", "kind", "loop", "endpoint",
    "liquidity", "state", "action", "gen", "bucket_ms", "result", "version",
})
ADMIN_LATENCY_BUCKETS_MS: tuple[float, ...] = (0, 5, 10, 20, 50, 100, 200, 400, 800, 1600, math.inf)
CIRCUIT_STATES: tuple[str, ...] = ("closed", "open", "half_open")
SNAPSHOT_KINDS: tuple[str, ...] = ("allocator", "throttle", "orders")
OPS: tuple[str, ...] = ("create", "amend", "cancel")
DECISION_BUCKETS_MS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
ACK_BUCKETS_MS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2500.0, 5000.0)
TICK_RING = 256
REJECT_WINDOW_SEC = 60
DRIFT_WINDOW_SEC = 60.0


def bucket_label(ms: float) -> str:
    """The seed's admin latency bucket for ``ms``: the smallest bound >= ms ("+Inf" last)."""
    for bound in ADMIN_LATENCY_BUCKETS_MS:
        if ms <= bound:
            return "+Inf" if math.isinf(bound) else str(int(bound))
    return "+Inf"  # NaN


def nearest_rank(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (the seed's definition): the ceil(q*n)-th smallest; 0 if empty."""
    xs = sorted(values)
    if not xs:
        return 0.0
    k = max(1, math.ceil(q * len(xs)))
    return float(xs[min(k, len(xs)) - 1])


def series_names(exposition: str) -> set[str]:
    """Every series name an exposition text declares, as PromQL would name it.

    Parsed with prometheus-client's own text parser.  A declared family counts even when it
    has no samples yet (a labelled metric before its first label set), because Prometheus
    would see it the moment it moves: counters give ``<name>_total``, histograms
    ``_bucket/_sum/_count``, gauges and untyped their name.
    """
    out: set[str] = set()
    for fam in text_string_to_metric_families(exposition):
        out.update(s.name for s in fam.samples)
        if fam.type == "counter":
            out.add(fam.name + "_total")
        elif fam.type == "histogram":
            out.update(fam.name + sfx for sfx in ("_bucket", "_sum", "_count"))
        else:
            out.add(fam.name)
    return out


class _RejectWindow:
    """Results and rejects per wall-clock second over the last ``REJECT_WINDOW_SEC``."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._secs: deque[list[int]] = deque()  # [second, results, rejects]
        self._results = 0
        self._rejects = 0

    def add(self, reject: bool) -> float:
        sec = int(self._now())
        if not self._secs or self._secs[-1][0] != sec:
            self._secs.append([sec, 0, 0])
        self._secs[-1][1] += 1
        self._secs[-1][2] += int(reject)
        self._results += 1
        self._rejects += int(reject)
        return self.rate()

    def rate(self) -> float:
        horizon = int(self._now()) - REJECT_WINDOW_SEC
        while self._secs and self._secs[0][0] <= horizon:
            _, n, r = self._secs.popleft()
            self._results -= n
            self._rejects -= r
        return self._rejects / self._results if self._results else 0.0


class _WindowMax:
    """Max of samples over a sliding wall-clock window (monotonic deque, O(1) amortized)."""

    def __init__(self, window_sec: float, now: Callable[[], float]) -> None:
        self._window = window_sec
        self._now = now
        self._q: deque[tuple[float, float]] = deque()

    def add(self, value: float) -> float:
        t = self._now()
        while self._q and self._q[-1][1] <= value:
            self._q.pop()
        self._q.append((t, value))
        return self.max()

    def max(self) -> float:
        horizon = self._now() - self._window
        while self._q and self._q[0][0] < horizon:
            self._q.popleft()
        return self._q[0][1] if self._q else 0.0


class LiveMetrics:
    """Every metric the live service exports, as typed attributes on a private registry.

    The service updates plain attributes directly (``m.position_usd.labels(symbol=s).set(x)``)
    and uses the helpers where one event moves several series consistently (an order
    result moves the reject counter, the reject rate and the ack latency histogram).
    ``now`` (monotonic seconds) is injectable so the windowed figures are testable.
    """

    def __init__(self, registry: CollectorRegistry | None = None, now: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._now = now
        self._lock = threading.Lock()
        r = self.registry

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        # ---- orders
        self.creates = counter("creates_total", "Order creates sent to the venue.", ("symbol",))
        self.amends = counter("amend_attempts_total", "Order amends sent to the venue.", ("symbol",))
        self.cancels = counter("cancels_total", "Order cancels sent to the venue.", ("symbol",))
        self.order_rejects = counter("order_rejects_total", "Venue rejects and send errors, by op and reason.", ("op", "reason"))
        self.order_reject_rate = gauge("order_reject_rate", "Rejects / results over the last 60 s (0..1).")
        self.orders_active = gauge("orders_active", "Open orders resting on the venue.", ("symbol",))
        self.order_ack_latency_ms = Histogram("order_ack_latency_ms", "Order send -> venue ack or reject, ms.", ("op",),
                                              buckets=ACK_BUCKETS_MS, registry=r)
        self.stale_cancels = counter("stale_cancels_total", "Anti-stale guard cancels (ttl|drift).", ("symbol", "reason"))
        self.refresh_amends = counter("refresh_amends_total", "Anti-stale guard refresh amends.", ("symbol", "reason"))
        # ---- fills and PnL
        self.fills = counter("fills_total", "Fills by symbol and liquidity (maker|taker).", ("symbol", "liquidity"))
        self.fills_notional_usd = counter("fills_notional_usd_total", "Traded notional, USD.", ("symbol",))
        self.realized_pnl_usd = gauge("realized_pnl_usd", "Realized PnL before fees, USD.", ("symbol",))
        self.unrealized_pnl_usd = gauge("unrealized_pnl_usd", "Mark-to-market PnL of the open position, USD.", ("symbol",))
        self.fees_paid_usd = gauge("fees_paid_usd", "Fees paid since start, USD.", ("symbol",))
        self.rebates_usd = gauge("rebates_usd", "Maker rebates received since start, USD.", ("symbol",))
        self.net_pnl_total_usd = gauge("net_pnl_total_usd", "Realized + unrealized - fees + rebates, USD.")
        # ---- positions
        self.position_usd = gauge("position_usd", "Signed position at mid, USD.", ("symbol",))
        self.position_qty = gauge("position_qty", "Signed position, base units.", ("symbol",))
        # ---- guards
        self.risk_paused = gauge("risk_paused", "1 while a risk guard pauses quoting.")
        self.guard_paused_effective = gauge("guard_paused_effective", "1 while quoting is paused for any reason.")
        self.killswitch_engaged = gauge("killswitch_engaged", "1 while the operator kill switch holds quoting.")
        self.killswitch_triggers = counter("killswitch_triggers_total", "Kill switch actions.", ("action",))
        self.guard_events = counter("guard_events_total", "Guard breaches by guard reason.", ("reason",))
        self.intraday_caps_pnl = gauge("intraday_caps_pnl", "The day's PnL, USD.")
        self.intraday_caps_turnover = gauge("intraday_caps_turnover", "The day's traded notional, USD.")
        self.intraday_caps_vol = gauge("intraday_caps_vol", "The day's volatility, percent.")
        self.intraday_caps_breached = gauge("intraday_caps_breached", "1 while an intraday cap blocks new risk.")
        self.intraday_caps_pnl_stop_usd = gauge("intraday_caps_pnl_stop_usd", "Configured daily PnL stop, USD (0 = off).")
        self.drawdown_day = gauge("drawdown_day", "The day's loss, USD: max(0, -intraday_caps_pnl).")
        self.portfolio_drawdown_pct = gauge("portfolio_drawdown_pct", "Drawdown from peak equity, percent.")
        self.risk_max_drawdown_pct = gauge("risk_max_drawdown_pct", "Configured drawdown stop, percent (0 = off).")
        self.position_skew_breach = gauge("position_skew_breach", "1 while the skew guard freezes the symbol.", ("symbol",))
        self.position_skew_color_breach = gauge("position_skew_color_breach", "1 while the color breaches its skew limit.", ("color",))
        # ---- throttle
        self.throttle_backoff_ms = gauge("throttle_backoff_ms", "Current throttle backoff, ms.", ("symbol",))
        self.throttle_backoff_ms_max = gauge("throttle_backoff_ms_max", "Max throttle backoff over symbols, ms.")
        self.throttle_events_in_window = gauge("throttle_events_in_window", "Sends inside the throttle window.", ("op", "symbol"))
        self.throttle_events_in_window_total = gauge("throttle_events_in_window_total", "Sends inside the throttle window, all ops and symbols.")
        self.throttle_window_limit = gauge("throttle_window_limit", "Sends allowed per window and symbol.", ("op",))
        self.throttle_backoffs = counter("throttle_backoffs_total", "Throttle backoff escalations.")
        self.throttle_snapshot_writes = counter("throttle_snapshot_writes_total", "Throttle snapshots written.")
        self.throttle_snapshot_writes_failed = counter("throttle_snapshot_writes_failed_total", "Throttle snapshot writes that failed.")
        self.throttle_snapshot_loads = counter("throttle_snapshot_loads_total", "Throttle snapshots loaded.")
        self.throttle_snapshot_loads_failed = counter("throttle_snapshot_loads_failed_total", "Throttle snapshot loads refused.")
        self.throttle_snapshot_mtime_seconds = gauge("throttle_snapshot_mtime_seconds", "Unix time of the last throttle snapshot write|load.", ("op",))
        # ---- circuit breaker
        self.circuit_state = gauge("circuit_state", "Circuit breaker state, one-hot.", ("state",))
        self.circuit_breaker_state = gauge("circuit_breaker_state", "Circuit breaker: 0 closed, 1 open, 2 half_open.")
        self.circuit_transitions = counter("circuit_transitions_total", "Circuit breaker transitions into each state.", ("state",))
        # ---- allocator
        self.portfolio_weight = gauge("portfolio_weight", "Allocator weight.", ("symbol",))
        self.portfolio_target_usd = gauge("portfolio_target_usd", "Allocator target notional, USD.", ("symbol",))
        self.portfolio_active_usd = gauge("portfolio_active_usd", "Notional resting in open orders, USD.", ("symbol",))
        self.portfolio_budget_available_usd = gauge("portfolio_budget_available_usd", "Budget after the drawdown soft factor, USD.")
        self.allocator_hwm_equity_usd = gauge("allocator_hwm_equity_usd", "Equity high-water mark, USD.")
        self.allocator_soft_factor = gauge("allocator_soft_factor", "Drawdown soft factor (0..1).")
        self.allocator_backoff_level = gauge("allocator_backoff_level", "Allocator smoothing backoff level.")
        self.allocator_delta_capped = counter("allocator_delta_capped_total", "Target changes clamped by smoothing.")
        self.allocator_estimated_cost_bps = gauge("allocator_estimated_cost_bps", "Estimated execution cost, bps.", ("symbol",))
        self.allocator_turnover_factor = gauge("allocator_turnover_factor", "Turnover attenuation factor.", ("symbol",))
        self.allocator_last_update_ts = gauge("allocator_last_update_ts", "Unix time of the last rebalance.")
        # ---- fees
        self.fee_tier_level = gauge("fee_tier_level", "Current VIP fee tier.")
        self.fee_tier_expected_bps = gauge("fee_tier_expected_bps", "Maker bps at the next tier.")
        self.fee_tier_distance_usd = gauge("fee_tier_distance_usd", "30-day volume still needed for the next tier, USD.")
        self.effective_fee_bps_now = gauge("effective_fee_bps_now", "Effective fee now, maker-share weighted, bps.")
        self.maker_fee_bps = gauge("maker_fee_bps", "Current maker fee, bps (negative = rebate).")
        self.taker_fee_bps = gauge("taker_fee_bps", "Current taker fee, bps.")
        # ---- decision path and loops
        self.decision_latency_ms = Histogram("decision_latency_ms", "Venue event arrival -> actions emitted, ms.",
                                             buckets=DECISION_BUCKETS_MS, registry=r)
        self.loop_tick_ms = gauge("loop_tick_ms", "Last tick duration of a background loop, ms.", ("loop",))
        self.loop_tick_p95_ms = gauge("loop_tick_p95_ms", "Nearest-rank p95 of the last 256 ticks, ms.", ("loop",))
        self.loop_tick_p99_ms = gauge("loop_tick_p99_ms", "Nearest-rank p99 of the last 256 ticks, ms.", ("loop",))
        self.loop_heartbeat_age_seconds = gauge("loop_heartbeat_age_seconds", "Seconds since the loop last ticked.", ("loop",))
        self.event_loop_drift_ms = gauge("event_loop_drift_ms", "Last event-loop drift sample, ms.")
        self.event_loop_max_drift_ms = gauge("event_loop_max_drift_ms", "Max event-loop drift over the last 60 s, ms.")
        # ---- soak
        self.soak_mem_rss_bytes = gauge("soak_mem_rss_bytes", "Resident set size, bytes.")
        self.soak_open_fds = gauge("soak_open_fds", "Open file descriptors (0 where unknown).")
        self.soak_threads_total = gauge("soak_threads_total", "Live Python threads.")
        self.soak_gc_gen = gauge("soak_gc_gen", "gc.get_count() per generation.", ("gen",))
        self.soak_gc_collections = gauge("soak_gc_collections", "Collections run per generation since start.", ("gen",))
        # ---- snapshots
        self.snapshot_integrity_fail = counter("snapshot_integrity_fail_total", "Snapshots refused on load.", ("kind",))
        self.snapshot_writes = counter("snapshot_writes_total", "Snapshot writes by kind and result.", ("kind", "result"))
        # ---- admin and HTTP
        self.admin_requests = counter("admin_requests_total", "Authenticated admin requests.", ("endpoint",))
        self.admin_unauthorized = counter("admin_unauthorized_total", "Admin requests refused with 401.")
        self.admin_rate_limited = counter("admin_rate_limited_total", "Admin requests refused with 429.", ("endpoint",))
        self.admin_audit_events = counter("admin_audit_events_total", "Admin audit records written.")
        self.admin_alert_events = counter("admin_alert_events_total", "alerts.log records written, by kind.", ("kind",))
        self.admin_endpoint_latency_bucket = counter("admin_endpoint_latency_bucket_total",
                                                     "Admin requests per latency bucket (seed buckets, non-cumulative).",
                                                     ("endpoint", "bucket_ms"))
        self.admin_endpoint_latency_ms = Histogram("admin_endpoint_latency_ms", "Admin request latency, ms.", ("endpoint",),
                                                   buckets=ADMIN_LATENCY_BUCKETS_MS[1:], registry=r)
        self.http_requests = counter("http_requests_total", "Non-admin HTTP requests.", ("endpoint",))
        self.thresholds_reload = counter("thresholds_reload_total", "Thresholds reload outcomes.", ("result",))
        self.thresholds_version = gauge("thresholds_version", "Thresholds generation.")
        self.config_reload = counter("config_reload_total", "Config reload outcomes.", ("result",))
        self.replay_events = counter("replay_events_total", "Events replayed by the execution replay.")
        self.replay_duration_ms = gauge("replay_duration_ms", "Duration of the last execution replay, ms.")
        self.build_info = gauge("mmkit_build_info", "1, labelled with the running mmkit version.", ("version",))
        self.start_time_seconds = gauge("mmkit_start_time_seconds", "Unix time the service started.")

        self._rejects = _RejectWindow(now)
        self._drift = _WindowMax(DRIFT_WINDOW_SEC, now)
        self._ticks: dict[str, deque[float]] = {}
        self._admin_buckets: dict[str, dict[str, int]] = {}
        self._circuit = ""
        self._prime()

    def _prime(self) -> None:
        """Create the fixed label sets at 0 so rate()/increase() see them before they move."""
        self.build_info.labels(version=__version__).set(1)
        self.start_time_seconds.set(time.time())
        for kind in SNAPSHOT_KINDS:
            self.snapshot_integrity_fail.labels(kind=kind)
        for state in CIRCUIT_STATES:
            self.circuit_transitions.labels(state=state)
        for result in ("ok", "failed"):
            self.thresholds_reload.labels(result=result)
            self.config_reload.labels(result=result)
        self.set_circuit("closed", count=False)

    # ---------------------------------------------------------------- orders and fills
    def on_order_sent(self, op: str, symbol: str) -> None:
        """One create|amend|cancel went to the venue."""
        {"create": self.creates, "amend": self.amends, "cancel": self.cancels}[op].labels(symbol=symbol).inc()

    def on_order_result(self, op: str, ok: bool, reason: str = "", latency_ms: float | None = None) -> None:
        """The venue acked (``ok``) or rejected a send; moves rejects, the reject rate, ack latency.

        ``reason`` must come from a fixed vocabulary (the venue's reject code), never free text.
        """
        if not ok:
            self.order_rejects.labels(op=op, reason=reason or "unknown").inc()
        with self._lock:
            rate = self._rejects.add(not ok)
        self.order_reject_rate.set(rate)
        if latency_ms is not None:
            self.order_ack_latency_ms.labels(op=op).observe(latency_ms)

    def refresh_reject_rate(self) -> float:
        """Re-evaluate the 60 s reject rate (call from a periodic loop so it decays when idle)."""
        with self._lock:
            rate = self._rejects.rate()
        self.order_reject_rate.set(rate)
        return rate

    def on_fill(self, symbol: str, liquidity: str, notional_usd: float) -> None:
        """One fill: counts it by liquidity and adds its notional to the traded total."""
        self.fills.labels(symbol=symbol, liquidity=liquidity).inc()
        self.fills_notional_usd.labels(symbol=symbol).inc(abs(notional_usd))

    def set_pnl(self, symbol: str, *, realized_usd: float, unrealized_usd: float, fees_usd: float, rebates_usd: float) -> None:
        """Per-symbol PnL components as the ledger reports them (fees and rebates both >= 0)."""
        self.realized_pnl_usd.labels(symbol=symbol).set(realized_usd)
        self.unrealized_pnl_usd.labels(symbol=symbol).set(unrealized_usd)
        self.fees_paid_usd.labels(symbol=symbol).set(fees_usd)
        self.rebates_usd.labels(symbol=symbol).set(rebates_usd)

    def set_intraday(self, *, pnl_usd: float, turnover_usd: float, vol_pct: float, breached: bool) -> None:
        """The intraday caps state; ``drawdown_day`` follows the day's PnL."""
        self.intraday_caps_pnl.set(pnl_usd)
        self.intraday_caps_turnover.set(turnover_usd)
        self.intraday_caps_vol.set(vol_pct)
        self.intraday_caps_breached.set(1 if breached else 0)
        self.drawdown_day.set(max(0.0, -pnl_usd))

    # ---------------------------------------------------------------- guards and circuit
    def on_guard_event(self, reason: str) -> None:
        """A guard breach (``risk:max_drawdown``, ``intraday:pnl_stop``, ``pos_skew:freeze``, ...)."""
        self.guard_events.labels(reason=reason).inc()

    def set_circuit(self, state: str, count: bool = True) -> None:
        """Circuit breaker state; counts a transition when it changes."""
        if state not in CIRCUIT_STATES:
            raise ValueError(f"unknown circuit state {state!r}")
        for s in CIRCUIT_STATES:
            self.circuit_state.labels(state=s).set(1 if s == state else 0)
        self.circuit_breaker_state.set(CIRCUIT_STATES.index(state))
        if count and state != self._circuit:
            self.circuit_transitions.labels(state=state).inc()
        self._circuit = state

    def on_snapshot_write(self, kind: str, ok: bool) -> None:
        """A snapshot write; the throttle kind also moves the seed's throttle_snapshot_* series."""
        self.snapshot_writes.labels(kind=kind, result="ok" if ok else "failed").inc()
        if kind == "throttle":
            (self.throttle_snapshot_writes if ok else self.throttle_snapshot_writes_failed).inc()
            if ok:
                self.throttle_snapshot_mtime_seconds.labels(op="write").set(time.time())

    def on_snapshot_load(self, kind: str, ok: bool) -> None:
        """A snapshot load; a refused one counts in ``snapshot_integrity_fail_total{kind}``."""
        if not ok:
            self.snapshot_integrity_fail.labels(kind=kind).inc()
        if kind == "throttle":
            (self.throttle_snapshot_loads if ok else self.throttle_snapshot_loads_failed).inc()
            if ok:
                self.throttle_snapshot_mtime_seconds.labels(op="load").set(time.time())

    # ---------------------------------------------------------------- loops and latency
    def observe_decision_us(self, us: float) -> None:
        """One decision: venue event arrival to actions emitted, in microseconds."""
        self.decision_latency_ms.observe(us / 1000.0)

    def on_loop_tick(self, loop: str, ms: float) -> tuple[float, float]:
        """A background loop tick of ``ms``; returns the updated (p95, p99) over the last 256."""
        with self._lock:
            ring = self._ticks.setdefault(loop, deque(maxlen=TICK_RING))
            ring.append(ms)
            p95, p99 = nearest_rank(ring, 0.95), nearest_rank(ring, 0.99)
        self.loop_tick_ms.labels(loop=loop).set(ms)
        self.loop_tick_p95_ms.labels(loop=loop).set(p95)
        self.loop_tick_p99_ms.labels(loop=loop).set(p99)
        return p95, p99

    def loop_ticks(self) -> dict[str, dict[str, float]]:
        """Per loop: last, p50, p95, p99 tick ms and sample count (for /admin/perf/snapshot)."""
        with self._lock:
            rings = {k: list(v) for k, v in self._ticks.items()}
        return {k: {"last_ms": v[-1], "p50_ms": nearest_rank(v, 0.5), "p95_ms": nearest_rank(v, 0.95),
                    "p99_ms": nearest_rank(v, 0.99), "n": len(v)} for k, v in sorted(rings.items()) if v}

    def set_heartbeats(self, ages_s: Mapping[str, float]) -> None:
        """Seconds since each loop last ticked."""
        for loop, age in ages_s.items():
            self.loop_heartbeat_age_seconds.labels(loop=loop).set(age)

    def on_drift(self, ms: float) -> float:
        """One event-loop drift sample (sleep overshoot, ms); returns the 60 s max."""
        with self._lock:
            mx = self._drift.add(max(0.0, ms))
        self.event_loop_drift_ms.set(max(0.0, ms))
        self.event_loop_max_drift_ms.set(mx)
        return mx

    def max_drift_ms(self) -> float:
        """Max drift over the last 60 s (0 with no samples)."""
        with self._lock:
            return self._drift.max()

    # ---------------------------------------------------------------- admin and HTTP
    def observe_admin(self, endpoint: str, ms: float) -> None:
        """One authenticated admin request on route ``endpoint`` that took ``ms``."""
        b = bucket_label(ms)
        self.admin_requests.labels(endpoint=endpoint).inc()
        self.admin_endpoint_latency_bucket.labels(endpoint=endpoint, bucket_ms=b).inc()
        self.admin_endpoint_latency_ms.labels(endpoint=endpoint).observe(ms)
        with self._lock:
            per = self._admin_buckets.setdefault(endpoint, {})
            per[b] = per.get(b, 0) + 1

    def admin_latency_buckets(self) -> dict[str, dict[str, int]]:
        """``{endpoint: {bucket_ms: count}}`` as the seed's /admin/perf/snapshot reports it."""
        with self._lock:
            return {e: dict(sorted(b.items(), key=lambda kv: _bound(kv[0]))) for e, b in sorted(self._admin_buckets.items())}

    def admin_latency_quantile_ms(self, endpoint: str, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` of ``endpoint`` (None before any request)."""
        with self._lock:
            per = dict(self._admin_buckets.get(endpoint, {}))
        total = sum(per.values())
        if not total:
            return None
        need, seen = max(1, math.ceil(q * total)), 0
        for label, n in sorted(per.items(), key=lambda kv: _bound(kv[0])):
            seen += n
            if seen >= need:
                return _bound(label)
        return math.inf

    def on_http(self, endpoint: str) -> None:
        """One non-admin HTTP request on route ``endpoint`` (/metrics, /healthz, ...)."""
        self.http_requests.labels(endpoint=endpoint).inc()

    # ---------------------------------------------------------------- process (soak)
    def sample_process(self) -> dict[str, Any]:
        """Read RSS, open fds, threads and gc counters; set the soak gauges and return them."""
        rss = _rss_bytes()
        fds = _open_fds()
        threads = threading.active_count()
        counts = gc.get_count()
        collections = [int(s.get("collections", 0)) for s in gc.get_stats()]
        self.soak_mem_rss_bytes.set(rss)
        self.soak_open_fds.set(fds)
        self.soak_threads_total.set(threads)
        for gen, n in enumerate(counts):
            self.soak_gc_gen.labels(gen=str(gen)).set(n)
        for gen, n in enumerate(collections):
            self.soak_gc_collections.labels(gen=str(gen)).set(n)
        return {"rss_bytes": rss, "open_fds": fds, "threads": threads,
                "gc_count": list(counts), "gc_collections": collections}

    # ---------------------------------------------------------------- exposition
    def exposition(self) -> bytes:
        """The text exposition ``GET /metrics`` serves."""
        return generate_latest(self.registry)

    def series(self) -> set[str]:
        """Every series name this registry declares (see ``series_names``)."""
        return series_names(self.exposition().decode("ascii"))


def _bound(label: str) -> float:
    return math.inf if label == "+Inf" else float(label)


def _rss_bytes() -> int:
    """Current RSS from /proc (Linux); elsewhere the peak RSS from getrusage (a ceiling)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import resource
            import sys
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return int(peak if sys.platform == "darwin" else peak * 1024)
        except (ImportError, OSError):
            return 0


def _open_fds() -> int:
    for d in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(d))
        except OSError:
            continue
    return 0
