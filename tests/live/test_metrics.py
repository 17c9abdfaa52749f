"""LiveMetrics: the exposition parses, labels stay low-cardinality, seed names are exported,
and the windowed helpers (reject rate, loop tick percentiles, drift max, admin buckets)
compute what their docstrings promise."""

from __future__ import annotations

import math
import os

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mmkit.live.metrics import (
    ADMIN_LATENCY_BUCKETS_MS,
    ALLOWED_LABELS,
    LiveMetrics,
    bucket_label,
    nearest_rank,
    series_names,
)

# Names the seed (mm-bot README: "Key Metrics", "Throttle & Backoff", "Circuit Breaker
# PromQL", "Allocator/Budget PromQL", "Intraday Risk Caps", "VIP Fee Awareness", "E3 -
# Perf/Soak", "E3.3 - Soak & leak guard", "Snapshots: integrity header", "Admin audit &
# rate-limit", "Admin/SRE PromQL", "M0.2 - Order aging/refresh", "E2.3 - Alerts log",
# "Thresholds/Reloads PromQL", "E2.7") gives to metrics the live engine produces.
SEED_NAMES = {
    "orders_active", "creates_total", "cancels_total", "amend_attempts_total", "fills_total",
    "net_pnl_total_usd", "risk_paused", "drawdown_day", "position_usd", "circuit_breaker_state",
    "guard_paused_effective", "killswitch_triggers_total",
    "throttle_backoff_ms", "throttle_backoff_ms_max", "throttle_events_in_window",
    "throttle_events_in_window_total", "throttle_backoffs_total",
    "throttle_snapshot_writes_total", "throttle_snapshot_writes_failed_total",
    "throttle_snapshot_loads_total", "throttle_snapshot_loads_failed_total", "throttle_snapshot_mtime_seconds",
    "circuit_state", "circuit_transitions_total", "order_reject_rate",
    "portfolio_weight", "portfolio_target_usd", "portfolio_active_usd", "portfolio_budget_available_usd",
    "portfolio_drawdown_pct", "allocator_hwm_equity_usd", "allocator_soft_factor", "allocator_backoff_level",
    "allocator_delta_capped_total", "allocator_estimated_cost_bps", "allocator_turnover_factor",
    "allocator_last_update_ts",
    "intraday_caps_pnl", "intraday_caps_turnover", "intraday_caps_vol", "intraday_caps_breached",
    "fee_tier_level", "fee_tier_expected_bps", "fee_tier_distance_usd", "effective_fee_bps_now",
    "maker_fee_bps", "taker_fee_bps",
    "loop_tick_ms", "loop_tick_p95_ms", "loop_tick_p99_ms", "event_loop_drift_ms", "event_loop_max_drift_ms",
    "soak_mem_rss_bytes", "soak_open_fds", "soak_threads_total", "soak_gc_gen",
    "snapshot_integrity_fail_total",
    "admin_requests_total", "admin_unauthorized_total", "admin_rate_limited_total", "admin_audit_events_total",
    "admin_alert_events_total", "admin_endpoint_latency_bucket_total", "http_requests_total",
    "stale_cancels_total", "refresh_amends_total", "thresholds_reload_total", "thresholds_version",
    "replay_events_total", "replay_duration_ms",
}


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def exercised(m: LiveMetrics) -> LiveMetrics:
    """Drive every helper with realistic values, two symbols, a long run's worth of events."""
    for i in range(500):
        sym = ("BTCUSDT", "ETHUSDT")[i % 2]
        op = ("create", "amend", "cancel")[i % 3]
        m.on_order_sent(op, sym)
        m.on_order_result(op, ok=i % 7 != 0, reason="post_only_would_take", latency_ms=float(i % 50))
        m.on_fill(sym, ("maker", "taker")[i % 2], 100.0 + i)
        m.set_pnl(sym, realized_usd=i * 0.1, unrealized_usd=-1.0, fees_usd=0.5, rebates_usd=0.2)
        m.position_usd.labels(symbol=sym).set(i)
        m.throttle_events_in_window.labels(op=op, symbol=sym).set(i % 10)
        m.observe_admin(("/admin/selfcheck", "/admin/orders", "/admin/killswitch")[i % 3], float(i % 900))
        m.on_loop_tick(("snapshot", "alerts_prune", "metrics_json", "soak")[i % 4], float(i % 13))
        m.observe_decision_us(float(10 + i % 200))
        m.on_drift(float(i % 20))
        m.on_http(("/metrics", "/healthz", "/readyz")[i % 3])
    m.on_guard_event("intraday:pnl_stop")
    m.on_guard_event("risk:max_drawdown")
    m.set_circuit("open")
    m.set_circuit("half_open")
    m.set_circuit("closed")
    m.on_snapshot_write("throttle", ok=True)
    m.on_snapshot_load("allocator", ok=False)
    m.set_intraday(pnl_usd=-12.5, turnover_usd=1e5, vol_pct=1.2, breached=True)
    m.set_heartbeats({"snapshot": 0.5, "soak": 1.0})
    m.sample_process()
    return m


def test_exposition_parses_with_prometheus_text_parser():
    m = exercised(LiveMetrics())
    fams = list(text_string_to_metric_families(m.exposition().decode("ascii")))
    by_name = {f.name: f for f in fams}
    assert by_name["fills"].type == "counter"
    assert by_name["decision_latency_ms"].type == "histogram"
    assert by_name["position_usd"].type == "gauge"
    fills = {(s.labels["symbol"], s.labels["liquidity"]): s.value for s in by_name["fills"].samples if s.name == "fills_total"}
    assert fills == {("BTCUSDT", "maker"): 250.0, ("ETHUSDT", "taker"): 250.0}
    count = [s.value for s in by_name["decision_latency_ms"].samples if s.name == "decision_latency_ms_count"]
    assert count == [500.0]
    assert all(f.documentation for f in fams), "every family carries HELP text"


def test_each_instance_owns_its_registry_and_never_touches_the_default():
    before = generate_latest(REGISTRY)
    a, b = LiveMetrics(), LiveMetrics()  # a second instance must not raise "Duplicated timeseries"
    a.creates.labels(symbol="BTCUSDT").inc(3)
    assert a.registry is not b.registry
    assert b"creates_total{symbol=\"BTCUSDT\"} 3.0" in a.exposition()
    assert b"BTCUSDT" not in b.exposition()
    assert b"creates_total" not in generate_latest(REGISTRY)
    assert generate_latest(REGISTRY).count(b"\n# TYPE") == before.count(b"\n# TYPE")


def test_labels_are_allowed_names_with_low_cardinality():
    m = exercised(LiveMetrics())
    for fam in text_string_to_metric_families(m.exposition().decode("ascii")):
        label_sets = {tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) for s in fam.samples}
        names = {k for ls in label_sets for k, _ in ls}
        assert names <= ALLOWED_LABELS, f"{fam.name}: labels {names - ALLOWED_LABELS} are not allowed"
        # two symbols and a long run must not explode the series: bounded by the enumerations
        assert len(label_sets) <= 40, f"{fam.name}: {len(label_sets)} label sets"


def test_every_seed_name_is_exported():
    names = LiveMetrics().series()
    missing = sorted(SEED_NAMES - names)
    assert not missing, f"seed metric names not exported: {missing}"


def test_series_names_expands_counters_histograms_and_declared_empty_families():
    text = (
        "# HELP x_total a\n# TYPE x_total counter\n"
        "# HELP h b\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n"
        "# HELP g c\n# TYPE g gauge\n"
    )
    assert series_names(text) == {"x_total", "h_bucket", "h_sum", "h_count", "g"}


def test_reject_rate_is_windowed_over_sixty_seconds():
    clock = FakeClock()
    m = LiveMetrics(now=clock)
    for i in range(10):
        m.on_order_result("create", ok=i >= 2, reason="insufficient_balance")
    assert m.refresh_reject_rate() == pytest.approx(0.2)
    clock.t += 30
    m.on_order_result("create", ok=True)
    assert m.refresh_reject_rate() == pytest.approx(2 / 11)
    clock.t += 31  # the first ten fall out of the window
    assert m.refresh_reject_rate() == 0.0
    clock.t += 60
    assert m.refresh_reject_rate() == 0.0


def test_loop_tick_percentiles_are_nearest_rank_over_the_last_256():
    m = LiveMetrics()
    for ms in range(1, 101):
        p95, p99 = m.on_loop_tick("snapshot", float(ms))
    assert (p95, p99) == (95.0, 99.0)
    for _ in range(256):
        m.on_loop_tick("snapshot", 1.0)
    assert m.loop_ticks()["snapshot"] == {"last_ms": 1.0, "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0, "n": 256}
    assert nearest_rank([], 0.5) == 0.0
    assert nearest_rank([3.0, 1.0, 2.0], 0.5) == 2.0


def test_drift_max_expires_after_the_window():
    clock = FakeClock()
    m = LiveMetrics(now=clock)
    assert m.on_drift(120.0) == 120.0
    clock.t += 10
    assert m.on_drift(5.0) == 120.0
    clock.t += 55
    assert m.max_drift_ms() == 5.0
    assert m.on_drift(-3.0) == 5.0  # an early wake-up is no drift


def test_admin_buckets_match_the_seed_bounds():
    assert ADMIN_LATENCY_BUCKETS_MS[0] == 0 and math.isinf(ADMIN_LATENCY_BUCKETS_MS[-1])
    assert [bucket_label(x) for x in (0, 0.4, 5, 5.01, 1600, 1600.5)] == ["0", "5", "5", "10", "1600", "+Inf"]
    m = LiveMetrics()
    assert m.admin_latency_quantile_ms("/admin/selfcheck", 0.5) is None
    for ms in (1, 2, 3, 30, 3000):
        m.observe_admin("/admin/selfcheck", ms)
    assert m.admin_latency_buckets() == {"/admin/selfcheck": {"5": 3, "50": 1, "+Inf": 1}}
    assert m.admin_latency_quantile_ms("/admin/selfcheck", 0.5) == 5.0
    assert m.admin_latency_quantile_ms("/admin/selfcheck", 1.0) == math.inf
    fams = {f.name: f for f in text_string_to_metric_families(m.exposition().decode("ascii"))}
    inf_bucket = [s.value for s in fams["admin_endpoint_latency_ms"].samples if s.labels.get("le") == "+Inf"]
    assert inf_bucket == [5.0]


def test_circuit_is_one_hot_and_counts_transitions():
    m = LiveMetrics()
    m.set_circuit("open")
    m.set_circuit("open")
    m.set_circuit("half_open")
    fams = {f.name: f for f in text_string_to_metric_families(m.exposition().decode("ascii"))}
    state = {s.labels["state"]: s.value for s in fams["circuit_state"].samples}
    assert state == {"closed": 0.0, "open": 0.0, "half_open": 1.0}
    assert [s.value for s in fams["circuit_breaker_state"].samples] == [2.0]
    trans = {s.labels["state"]: s.value for s in fams["circuit_transitions"].samples if s.name.endswith("_total")}
    assert trans == {"closed": 0.0, "open": 1.0, "half_open": 1.0}
    with pytest.raises(ValueError):
        m.set_circuit("ajar")


def test_snapshot_and_intraday_helpers():
    m = LiveMetrics()
    m.on_snapshot_load("throttle", ok=False)
    m.on_snapshot_load("throttle", ok=True)
    m.on_snapshot_write("throttle", ok=False)
    m.set_intraday(pnl_usd=-7.0, turnover_usd=10.0, vol_pct=0.1, breached=False)
    text = m.exposition().decode("ascii")
    assert 'snapshot_integrity_fail_total{kind="throttle"} 1.0' in text
    assert 'snapshot_integrity_fail_total{kind="allocator"} 0.0' in text  # primed at 0
    assert "throttle_snapshot_loads_failed_total 1.0" in text and "throttle_snapshot_loads_total 1.0" in text
    assert 'snapshot_writes_total{kind="throttle",result="failed"} 1.0' in text
    assert "drawdown_day 7.0" in text and "intraday_caps_breached 0.0" in text


def test_sample_process_reads_real_figures():
    m = LiveMetrics()
    got = m.sample_process()
    assert got["rss_bytes"] > 1 << 20
    assert got["threads"] >= 1
    assert len(got["gc_count"]) == 3 and len(got["gc_collections"]) == 3
    if os.path.isdir("/proc/self/fd"):
        assert got["open_fds"] >= 3
    fams = {f.name: f for f in text_string_to_metric_families(m.exposition().decode("ascii"))}
    assert {s.labels["gen"] for s in fams["soak_gc_gen"].samples} == {"0", "1", "2"}
