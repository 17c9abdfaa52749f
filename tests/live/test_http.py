"""The public HTTP surface over real loopback HTTP: /metrics (parsed with prometheus-client's
text parser), health and readiness, JSON errors, port handling."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from live.admin_support import FakeService, arun, call, live, serve, setup_env
from mmkit.artifacts import canonical_bytes
from mmkit.errors import MmkitError
from mmkit.live.http import COMPONENTS, PUBLIC_ROUTES, start_http
from mmkit.live.metrics import ALLOWED_LABELS


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeService:
    return FakeService(tmp_path / "artifacts", setup_env(tmp_path, monkeypatch))


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


SEED_SERIES = ("creates_total", "cancels_total", "orders_active", "fills_total", "net_pnl_total_usd", "position_usd",
               "guard_paused_effective", "throttle_backoff_ms_max", "circuit_state", "portfolio_weight",
               "effective_fee_bps_now", "loop_tick_p95_ms", "event_loop_drift_ms", "soak_mem_rss_bytes",
               "admin_unauthorized_total", "admin_rate_limited_total", "admin_endpoint_latency_bucket_total")


def test_metrics_of_the_running_service_parse_with_the_prometheus_parser(tmp_path, monkeypatch):
    setup_env(tmp_path, monkeypatch)

    async def body():
        async with live(tmp_path) as (svc, s):
            await asyncio.sleep(0.6)  # a few engine batches and risk ticks
            await call(s, "GET", "/admin/orders")
            await call(s, "GET", "/admin/orders", token=None)
            async with s.get("/metrics") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await resp.text()
            async with s.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as resp:
                assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
                assert (await resp.text()).rstrip().endswith("# EOF")
            return svc, text

    svc, text = arun(body())
    fams = _families(text)
    names = {s.name for f in fams.values() for s in f.samples} | {f"{n}_total" for n, f in fams.items() if f.type == "counter"}
    missing = [n for n in SEED_SERIES if n not in names and n not in fams]
    assert not missing, missing
    creates = sum(s.value for s in fams["creates"].samples if s.name == "creates_total")
    assert creates > 0  # the engine really quoted on the bundled data
    unauthorized = [s.value for s in fams["admin_unauthorized"].samples if s.name == "admin_unauthorized_total"]
    assert unauthorized == [1.0]
    reqs = {s.labels["endpoint"]: s.value for s in fams["admin_requests"].samples if s.name == "admin_requests_total"}
    assert reqs == {"/admin/orders": 1.0}
    buckets = [s for s in fams["admin_endpoint_latency_bucket"].samples if s.name.endswith("_total")]
    assert sum(s.value for s in buckets) == 1.0 and buckets[0].labels["endpoint"] == "/admin/orders"
    hist = [s for s in fams["admin_endpoint_latency_ms"].samples if s.name == "admin_endpoint_latency_ms_count"]
    assert hist[0].value == 1.0
    http = {s.labels["endpoint"]: s.value for s in fams["http_requests"].samples if s.name == "http_requests_total"}
    assert http == {"/metrics": 1.0}  # the scrape counts itself before it renders
    labels = {k for f in fams.values() for s in f.samples for k in s.labels}
    assert labels <= ALLOWED_LABELS | {"le", "quantile"}  # low cardinality: no raw paths, no ids


def test_health_ready_and_components_of_the_running_service(tmp_path, monkeypatch):
    setup_env(tmp_path, monkeypatch)

    async def body():
        async with live(tmp_path) as (svc, s):
            st, js, raw = await call(s, "GET", "/healthz", token=None)
            assert st == 200 and js["status"] in ("ok", "degraded") and js["uptime_s"] >= 0 and raw == canonical_bytes(js)
            st, js, _ = await call(s, "GET", "/readyz", token=None)
            assert st == 200 and js["ready"] is True
            for name in COMPONENTS:
                st, js, _ = await call(s, "GET", f"/healthz/{name}", token=None)
                assert st == 200 and js["component"] == name and js["ok"] is True, js
            await call(s, "POST", "/admin/killswitch", json={"action": "pause"})
            st, js, _ = await call(s, "GET", "/healthz/risk", token=None)
            assert st == 503 and js["ok"] is False

    arun(body())


def test_health_failure_paths(svc):
    async def body():
        async with serve(svc) as (_, s):
            svc.paused = True
            assert (await call(s, "GET", "/readyz", token=None))[:2] == (503, {"paused": True, "ready": False})
            svc.health = lambda: {"status": "fail", "why": "venue gone"}
            assert (await call(s, "GET", "/healthz", token=None))[0] == 503
            svc.health = lambda: {"status": "degraded"}
            assert (await call(s, "GET", "/healthz", token=None))[0] == 200

    arun(body())


def test_unknown_paths_and_methods_get_json_errors(svc):
    async def body():
        async with serve(svc) as (_, s):
            st, js, _ = await call(s, "GET", "/healthz/nope", token=None)
            assert st == 404 and js["error"] == "E_HTTP_NOT_FOUND"
            st, js, _ = await call(s, "GET", "/admin/nope")
            assert st == 404 and js["error"] == "E_HTTP_NOT_FOUND"
            async with s.post("/metrics") as resp:
                assert resp.status == 405 and (await resp.json())["error"] == "E_HTTP_METHOD"
                assert "GET" in resp.headers["Allow"]
            st, js, _ = await call(s, "DELETE", "/admin/killswitch")
            assert st == 405

    arun(body())


def test_a_failing_health_call_is_a_500_without_details(svc):
    def boom():
        raise RuntimeError("secret state")

    svc.ready = boom

    async def body():
        async with serve(svc) as (_, s):
            st, js, raw = await call(s, "GET", "/readyz", token=None)
            assert st == 500 and js == {"error": "E_HTTP_INTERNAL", "detail": "internal error (RuntimeError)"}

    arun(body())


def test_port_zero_binds_a_free_loopback_port_and_close_releases_it(svc):
    async def body():
        a = await start_http(svc, "127.0.0.1", 0)
        b = await start_http(svc, "127.0.0.1", 0)
        try:
            assert a.port != b.port and a.port > 0 and a.url == f"http://127.0.0.1:{a.port}"
            async with aiohttp.ClientSession() as s:
                for srv in (a, b):
                    async with s.get(f"{srv.url}/healthz") as resp:
                        assert resp.status == 200
            with pytest.raises(MmkitError) as err:
                await start_http(svc, "127.0.0.1", a.port)
            assert err.value.code == "E_HTTP_BIND"
        finally:
            await b.close()
        await a.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", a.port), timeout=1).close()

    arun(body())


def test_start_needs_live_metrics(svc):
    svc.metrics = None

    async def body():
        with pytest.raises(MmkitError) as err:
            await start_http(svc, "127.0.0.1", 0)
        assert err.value.code == "E_HTTP_NO_METRICS"

    arun(body())


def test_public_routes_need_no_token():
    assert PUBLIC_ROUTES and all(not r.auth and r.method == "GET" for r in PUBLIC_ROUTES)
