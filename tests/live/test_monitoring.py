"""Monitoring assets: promtool accepts (and unit-tests) the rules and the Prometheus config,
the Grafana dashboard is well-formed, Alertmanager inhibition names real alerts, and every
metric the rules and the dashboard query is one the live engine exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmkit.live.metrics import LiveMetrics

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "monitoring"
RULES = MON / "alerts" / "mm_bot.rules.yml"
RULE_TESTS = MON / "alerts" / "mm_bot.rules.test.yml"
PROM = MON / "prometheus.yml"
ALERTMANAGER = MON / "alertmanager.yml"
DASHBOARD = MON / "grafana" / "mm_bot.json"

SEED_ALERTS = {"RiskPaused", "CircuitBreakerOpen", "HighLatencyREST", "DrawdownDay", "RejectRateHigh",
               "IntradayCapBreached", "EffectiveFeeJump", "ThrottleBackoffHigh", "ThrottleBurstEvents",
               "RateLimitAndGuard", "CancelRateNearLimit"}
# Series Prometheus writes itself for every scrape target, not the service.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan", "atan2",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?!\w)(\s*\()?")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (functions, keywords, labels removed)."""
    e = _STRING.sub('""', expr)
    e = _MATCHERS.sub("", e)
    e = _RANGE.sub("", e)
    e = _LABEL_LIST.sub(" ", e)  # "sum by (le) (x)" -> "sum  (x)": sum stays a call
    names = set()
    for m in _IDENT.finditer(e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def rules_doc() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text(encoding="ascii"))


def rule_exprs() -> dict[str, str]:
    return {r["alert"]: r["expr"] for g in rules_doc()["groups"] for r in g["rules"]}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="ascii"))


def dashboard_exprs() -> list[str]:
    out = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    for var in dashboard()["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            q = q.get("query", "")
        m = re.match(r"label_values\((\w+)\s*,", q or "")
        if m:
            out.append(m.group(1))
    return out


def referenced_names() -> set[str]:
    names: set[str] = set()
    for expr in list(rule_exprs().values()) + dashboard_exprs():
        names |= promql_metric_names(expr)
    return names - PROMETHEUS_SYNTHETIC


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not on PATH (Debian package `prometheus`; .ci/run installs it)")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


# ----------------------------------------------------------------------------- promtool
def test_promtool_check_rules():
    res = promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in res.stdout + res.stderr


def test_promtool_unit_tests_of_the_rules_pass():
    res = promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_promtool_check_config():
    res = promtool("check", "config", str(PROM.relative_to(ROOT)))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_rejects_a_broken_rule(tmp_path):
    bad = tmp_path / "bad.rules.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum by (symbol (risk_paused)\n")
    res = promtool("check", "rules", str(bad))
    assert res.returncode != 0


# ----------------------------------------------------------------------------- assets
def test_seed_alerts_are_defined_with_severity_and_runbook():
    rules = [r for g in rules_doc()["groups"] for r in g["rules"]]
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert SEED_ALERTS <= set(names), sorted(SEED_ALERTS - set(names))
    for r in rules:
        assert r["labels"]["severity"] in {"critical", "warning"}, r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["runbook"], r["alert"]
        assert "${" not in r["expr"], "environment belongs in external_labels, not in rules"


def test_prometheus_config_scrapes_the_service_and_loads_the_rules():
    cfg = yaml.safe_load(PROM.read_text(encoding="ascii"))
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "mm-bot")
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert [(PROM.parent / f).resolve() for f in cfg["rule_files"]] == [RULES.resolve()]
    # the MMBotDown alert keys on this job name
    assert 'job="mm-bot"' in rule_exprs()["MMBotDown"]


def test_alertmanager_inhibitions_name_real_alerts():
    cfg = yaml.safe_load(ALERTMANAGER.read_text(encoding="ascii"))
    alerts = set(rule_exprs())
    seen_sources = set()
    for rule in cfg["inhibit_rules"]:
        for key in ("source_matchers", "target_matchers"):
            for matcher in rule[key]:
                m = re.fullmatch(r'alertname(=~|=|!=)"([^"]+)"', matcher)
                assert m, matcher
                if m.group(1) != "!=":
                    names = set(m.group(2).split("|"))
                    assert names <= alerts, f"{matcher}: unknown alerts {sorted(names - alerts)}"
                    if key == "source_matchers":
                        seen_sources |= names
        assert rule["equal"] == ["instance"]
    assert {"RiskPaused", "HighLatencyREST", "CircuitBreakerOpen"} <= seen_sources  # the seed's three
    amtool = shutil.which("amtool")
    if amtool:
        res = subprocess.run([amtool, "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr


def test_grafana_dashboard_is_well_formed():
    d = dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    var_names = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "symbol"} <= var_names
    graphs = [p for p in d["panels"] if p["type"] != "row"]
    assert len(graphs) >= 30
    for p in graphs:
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
    # no two panels overlap on the grid
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps at {(x, y)}"
                cells.add((x, y))


def test_promql_metric_name_extraction():
    assert promql_metric_names('histogram_quantile(0.95, sum by (le, op) (rate(order_ack_latency_ms_bucket{op="x"}[5m]))) > 300') == {"order_ack_latency_ms_bucket"}
    assert promql_metric_names("(a_b > 5000) and on() (guard_paused_effective == 1)") == {"a_b", "guard_paused_effective"}
    assert promql_metric_names("max by (symbol) (x{op=\"cancel\"}) / on() group_left() y{op=\"cancel\"} > 0.8") == {"x", "y"}
    assert promql_metric_names("(f - (f offset 1h)) > 0.25") == {"f"}
    assert promql_metric_names("time() - mmkit_start_time_seconds") == {"mmkit_start_time_seconds"}
    assert promql_metric_names("rate(x_total[$__rate_interval])") == {"x_total"}


def test_every_metric_in_rules_and_dashboard_is_exported_by_live_metrics():
    exported = LiveMetrics().series()
    used = referenced_names()
    assert len(used) >= 60, sorted(used)  # the extraction found the dashboard's breadth
    missing = sorted(used - exported)
    assert not missing, f"rules/dashboard query metrics LiveMetrics does not export: {missing}"


# ----------------------------------------------------------------------------- real service
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("ascii")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("ascii", "replace")


@pytest.mark.service
def test_every_metric_in_rules_and_dashboard_is_exported_by_a_running_service(tmp_path):
    """``mmkit run --speed max`` for real: its /metrics declares every name the assets query,
    and the core series carry samples (they move), not just declarations."""
    import os
    import signal
    import sys
    import time

    from prometheus_client.parser import text_string_to_metric_families

    from mmkit.live.metrics import series_names

    port = _free_port()
    env = dict(os.environ, ARTIFACTS_DIR=str(tmp_path), ADMIN_TOKEN_PRIMARY="t" * 32)
    env.pop("ADMIN_AUTH_DISABLED", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmkit", "run", "--config", str(ROOT / "config" / "example.yaml"), "--speed", "max",
         "--loop", "--port", str(port), "--duration", "120"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/metrics"
    # core series that must carry samples (move), not just be declared, once the engine runs
    moving = {"orders_active", "position_usd", "net_pnl_total_usd", "circuit_state", "soak_mem_rss_bytes",
              "loop_tick_ms", "loop_heartbeat_age_seconds", "event_loop_max_drift_ms", "creates_total",
              "throttle_events_in_window", "effective_fee_bps_now", "portfolio_weight", "decision_latency_ms_count"}
    try:
        text, sampled, deadline = "", set(), time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0].decode("ascii", "replace")[-2000:]
            try:
                code, text = _get(url)
            except OSError:
                code = 0
            if code == 200:
                sampled = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
                if moving <= sampled and re.search(r"^decision_latency_ms_count [1-9]", text, re.M):
                    break
            time.sleep(0.3)
        assert not sorted(moving - sampled), f"no samples within 60 s for {sorted(moving - sampled)}"
        missing = sorted(referenced_names() - series_names(text))
        assert not missing, f"rules/dashboard query metrics the running service does not export: {missing}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode("ascii", "replace")
    assert proc.returncode == 0, out[-2000:]
