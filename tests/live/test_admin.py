"""The admin API over real HTTP against the real ``LiveService`` (bundled recording):
auth, rotation, rate limit, body limits, every endpoint, auditing (ring + hash-chained log,
HMAC, ``mmkit audit verify``), selfcheck and secret hygiene.  The in-test ``FakeService``
is used only where a failure must be injected (stale loops, drift, a raising service,
auth switched off or unconfigured)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from live.admin_support import (
    HMAC_KEY,
    TOKEN_P,
    TOKEN_S,
    FakeService,
    arun,
    call,
    live,
    serve,
    setup_env,
)
from mmkit import audit
from mmkit.artifacts import canonical_bytes, canonical_json
from mmkit.errors import MmkitError
from mmkit.live.admin import ADMIN_ROUTES, AdminSettings, RateLimiter, actor_id, payload_hash, redact
from support import run_cli

BUCKETS = ("0", "5", "10", "20", "50", "100", "200", "400", "800", "1600", "+Inf")


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return setup_env(tmp_path, monkeypatch)


def _fake(tmp_path: Path, cfg: Path) -> FakeService:
    return FakeService(tmp_path / "artifacts", cfg)


def _sample(svc, name: str, labels: dict[str, str] | None = None) -> float:
    value = svc.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def _chain(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "artifacts" / "audit.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- auth
def test_missing_and_wrong_tokens_get_401_and_are_counted(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            for route in ADMIN_ROUTES:  # every admin route is protected
                st, js, _ = await call(s, route.method, route.path, token=None)
                assert st == 401 and js == {"error": "E_ADMIN_UNAUTHORIZED", "detail": "missing or wrong X-Admin-Token header"}
            for bad in ("wrong-token-xxxxxxxxxxxx", "", TOKEN_P[:-1], TOKEN_P + "x", "t\u00f6ken".encode().decode("latin-1")):
                assert (await call(s, "GET", "/admin/orders", token=bad))[0] == 401, bad
            assert (await call(s, "GET", "/admin/orders", token=TOKEN_P))[0] == 200
            assert (await call(s, "GET", "/admin/orders", token=TOKEN_S))[0] == 200
            return svc

    svc = arun(body())
    assert _sample(svc, "admin_unauthorized_total") == len(ADMIN_ROUTES) + 5
    assert _sample(svc, "admin_requests_total", {"endpoint": "/admin/orders"}) == 2


def test_rotate_promotes_new_token_keeps_old_primary_for_grace_then_drops_it(tmp_path, cfg):
    new = "brand-new-token-0123456789"

    async def body():
        async with live(tmp_path) as (_, s):
            st, js, raw = await call(s, "POST", "/admin/auth/rotate", data=json.dumps({"token": new}))
            assert st == 200 and js == {"ok": True, "primary_actor": actor_id(new), "secondary_actor": actor_id(TOKEN_P)}
            assert new.encode() not in raw
            assert (await call(s, "GET", "/admin/orders", token=new))[0] == 200
            assert (await call(s, "GET", "/admin/orders", token=TOKEN_P))[0] == 200  # grace
            assert (await call(s, "GET", "/admin/orders", token=TOKEN_S))[0] == 401  # the old secondary is gone
            st, js, _ = await call(s, "POST", "/admin/auth/rotate", token=new, json={"drop_secondary": True})
            assert st == 200 and js["secondary_actor"] is None
            assert (await call(s, "GET", "/admin/orders", token=TOKEN_P))[0] == 401
            for bad in ({"token": "short"}, {"token": "has spaces in the token!!"}, {}, {"token": 5}, {"extra": 1}):
                st, js, _ = await call(s, "POST", "/admin/auth/rotate", token=new, json=bad)
                assert st == 400 and js["error"] in ("E_ADMIN_TOKEN_WEAK", "E_ADMIN_BAD_REQUEST"), bad
            assert (await call(s, "GET", "/admin/orders", token=new))[0] == 200

    arun(body())


def test_no_tokens_configured_locks_the_admin_api(tmp_path, cfg, monkeypatch, capsys):
    monkeypatch.delenv("ADMIN_TOKEN_PRIMARY")
    monkeypatch.delenv("ADMIN_TOKEN_SECONDARY")
    svc = _fake(tmp_path, cfg)

    async def body():
        async with serve(svc) as (_, s):
            assert (await call(s, "GET", "/admin/orders", token=None))[0] == 401
            assert (await call(s, "GET", "/admin/orders", token="anything-at-all-123"))[0] == 401
            assert (await call(s, "GET", "/healthz", token=None))[0] == 200

    arun(body())
    assert "event=admin_api_locked" in capsys.readouterr().err


def test_auth_disabled_warns_loudly_on_every_start_and_refuses_public_bind(tmp_path, cfg, monkeypatch, capsys):
    monkeypatch.setenv("ADMIN_AUTH_DISABLED", "1")
    svc = _fake(tmp_path, cfg)

    async def body():
        for _ in range(2):
            async with serve(svc) as (_, s):
                st, js, _ = await call(s, "GET", "/admin/orders", token=None)
                assert st == 200 and js["count"] == 1
                async with s.get("/admin/orders") as resp:
                    assert resp.headers["X-Admin-Auth"] == "DISABLED"
        from mmkit.live.http import start_http

        with pytest.raises(MmkitError) as err:
            await start_http(svc, "0.0.0.0", 0)
        assert err.value.code == "E_ADMIN_AUTH_DISABLED_PUBLIC"

    arun(body())
    assert capsys.readouterr().err.count("event=ADMIN_AUTH_DISABLED") >= 6  # three lines per start, two starts
    assert [a["kind"] for a in svc.alerts.tail(10)].count("admin_auth_disabled") == 2


def test_short_tokens_are_refused_at_start(tmp_path, cfg, monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN_SECONDARY", "short-token")
    svc = _fake(tmp_path, cfg)

    async def body():
        from mmkit.live.http import start_http

        with pytest.raises(MmkitError) as err:
            await start_http(svc, "127.0.0.1", 0)
        assert err.value.code == "E_ADMIN_TOKEN_WEAK" and "ADMIN_TOKEN_SECONDARY" in err.value.message
        assert "short-token" not in err.value.message

    arun(body())


# ----------------------------------------------------------------------------- limits
def test_61st_request_in_a_minute_gets_429_per_actor_and_endpoint(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            for i in range(60):
                assert (await call(s, "GET", "/admin/positions"))[0] == 200, i
            async with s.get("/admin/positions", headers={"X-Admin-Token": TOKEN_P}) as resp:
                assert resp.status == 429
                assert 1 <= int(resp.headers["Retry-After"]) <= 60
                assert (await resp.json())["error"] == "E_ADMIN_RATE_LIMITED"
            assert (await call(s, "GET", "/admin/orders"))[0] == 200          # other endpoint: own budget
            assert (await call(s, "GET", "/admin/positions", token=TOKEN_S))[0] == 200  # other actor: own budget
            return svc

    svc = arun(body())
    assert _sample(svc, "admin_rate_limited_total", {"endpoint": "/admin/positions"}) == 1


def test_rate_limiter_window_slides():
    now = [0.0]
    rl = RateLimiter(3, 60.0, clock=lambda: now[0])
    assert [rl.hit("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    now[0] = 10.0
    assert rl.hit("k") == pytest.approx(50.0)
    now[0] = 60.0  # the first hit (t=0) leaves the window
    assert rl.hit("k") == 0.0
    assert rl.hit("other") == 0.0


def test_body_over_1mib_gets_413_with_and_without_content_length(tmp_path, cfg):
    big = b'{"path":"' + b"x" * (1 << 20) + b'"}'
    fits = b'{"path":"cfg.yaml","pad":"' + b"y" * ((1 << 20) - 40) + b'"}'
    assert len(fits) <= 1 << 20

    async def chunks():
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    async def body():
        async with live(tmp_path) as (svc, s):
            cfg_before = (await call(s, "GET", "/admin/config"))[1]
            st, js, _ = await call(s, "POST", "/admin/config/reload", data=big)
            assert st == 413 and js["error"] == "E_ADMIN_BODY_TOO_LARGE"
            st, js, _ = await call(s, "POST", "/admin/config/reload", data=chunks())  # chunked: no Content-Length
            assert st == 413 and js["error"] == "E_ADMIN_BODY_TOO_LARGE"
            st, js, _ = await call(s, "POST", "/admin/config/reload", data=fits)  # read in full, then judged
            assert st == 400 and js["error"] == "E_ADMIN_BAD_REQUEST" and "pad" in js["detail"]
            assert (await call(s, "GET", "/admin/config"))[1] == cfg_before

    arun(body())


BAD_BODIES = [
    ('{"action":"pause","reason":"caf\u00e9"}'.encode("utf-8"), "E_ADMIN_NON_ASCII"),
    (b'{"action": "pause"', "E_ADMIN_BAD_JSON"),
    (b'{"action": NaN}', "E_ADMIN_BAD_JSON"),
    (b"not json", "E_ADMIN_BAD_JSON"),
    (b'["pause"]', "E_ADMIN_BAD_REQUEST"),
    (b'{"action":"explode"}', "E_ADMIN_BAD_REQUEST"),
    (b'{"action":"pause","force":true}', "E_ADMIN_BAD_REQUEST"),
    (b'{"action":"pause","reason":7}', "E_ADMIN_BAD_REQUEST"),
    (b"", "E_ADMIN_BAD_REQUEST"),
]


def test_bad_bodies_and_queries_get_400_with_an_error_code(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            for data, code in BAD_BODIES:
                st, js, raw = await call(s, "POST", "/admin/killswitch", data=data)
                assert (st, js["error"]) == (400, code), data[:40]
                assert set(js) == {"error", "detail"} and raw.isascii()
            assert (await call(s, "GET", "/admin/killswitch"))[1]["paused"] is False  # nothing happened
            st, js, _ = await call(s, "GET", "/admin/alerts/log?tail=%C3%A9")
            assert st == 400 and js["error"] == "E_ADMIN_NON_ASCII"

    arun(body())


# ----------------------------------------------------------------------------- operator controls
def test_killswitch_pause_resume_flatten(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            st, js, _ = await call(s, "GET", "/admin/killswitch")
            assert st == 200 and js["paused"] is False
            st, js, _ = await call(s, "POST", "/admin/killswitch", json={"action": "pause", "reason": "drill"})
            assert st == 200 and js["paused"] is True and js["open_orders"] == 0 and js["result"]["action"] == "pause"
            assert (await call(s, "GET", "/admin/orders"))[1] == {"count": 0, "orders": []}
            assert (await call(s, "GET", "/healthz/risk", token=None))[0] == 503
            st, js, _ = await call(s, "POST", "/admin/killswitch", json={"action": "resume"})
            assert st == 200 and js["paused"] is False
            assert (await call(s, "GET", "/healthz/risk", token=None))[0] == 200
            st, js, _ = await call(s, "POST", "/admin/killswitch", json={"action": "flatten"})
            assert st == 200 and js["paused"] is True and js["open_orders"] == 0 and "flatten" in js["result"]
            return svc

    svc = arun(body())
    fired = [a for a in svc.alerts.tail(20) if a["kind"] == "killswitch_fired"]
    assert [a["payload"]["action"] for a in fired] == ["pause", "flatten"]
    assert {a["payload"]["actor"] for a in fired} == {actor_id(TOKEN_P)}


def test_config_reload_swaps_a_valid_config_and_refuses_an_invalid_one(tmp_path, cfg):
    good = tmp_path / "good.yaml"
    good.write_text("trading:\n  symbols: [BTCUSDT]\nstrategy:\n  order_ttl_ms: 650\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trading:\n  symbolz: [BTCUSDT]\nrisk:\n  max_drawdown_pct: banana\n")

    async def body():
        async with live(tmp_path) as (svc, s):
            st, snap, _ = await call(s, "GET", "/admin/config")
            assert st == 200 and snap["config"]["trading"]["symbols"] == ["BTCUSDT"]
            st, js, _ = await call(s, "POST", "/admin/config/reload", json={"path": str(bad)})
            assert st == 400 and js["error"] == "E_CFG_UNKNOWN_KEY"
            assert {p["code"] for p in js["problems"]} == {"E_CFG_UNKNOWN_KEY", "E_CFG_TYPE"}
            assert "trading.symbolz" in js["detail"]
            assert (await call(s, "GET", "/admin/config"))[1] == snap  # the running config stayed
            st, js, _ = await call(s, "POST", "/admin/config/reload", json={"path": str(tmp_path / "missing.yaml")})
            assert st == 400 and js["error"] == "E_CFG_MISSING"
            st, js, _ = await call(s, "POST", "/admin/config/reload", json={"path": 7})
            assert st == 400 and js["error"] == "E_ADMIN_BAD_REQUEST"
            assert (await call(s, "GET", "/admin/config"))[1] == snap
            st, js, _ = await call(s, "POST", "/admin/config/reload", json={"path": str(good)})
            assert st == 200 and js["cfg_hash"] != snap["cfg_hash"]
            after = (await call(s, "GET", "/admin/config"))[1]
            assert after["cfg_hash"] == js["cfg_hash"] and after["config"]["strategy"]["order_ttl_ms"] == 650
            assert (await call(s, "GET", "/admin/anti-stale-guard"))[1]["order_ttl_ms"] == 650  # applied hot
            return svc

    svc = arun(body())
    assert _sample(svc, "config_reload_total", {"result": "failed"}) == 2
    assert _sample(svc, "config_reload_total", {"result": "ok"}) == 1


THR = "throttle:\n  global:\n    max_throttle_backoff_ms: 2000\n  per_symbol:\n    btcusdt:\n      max_throttle_backoff_ms: 100\n"


def test_thresholds_reload_and_snapshot(tmp_path, cfg):
    (tmp_path / "t.yaml").write_text(THR)

    async def body():
        async with live(tmp_path) as (svc, s):
            st, js, _ = await call(s, "GET", "/admin/thresholds/snapshot")
            assert st == 200 and js["version"] == 0 and js["symbols"] == []
            st, js, _ = await call(s, "POST", "/admin/thresholds/reload", json={"path": str(tmp_path / "t.yaml")})
            assert st == 200
            assert {k: js[k] for k in ("global_keys", "per_symbol_count", "symbols", "version")} == \
                {"global_keys": 1, "per_symbol_count": 1, "symbols": ["BTCUSDT"], "version": 1}
            snap = (await call(s, "GET", "/admin/thresholds/snapshot"))[1]
            assert snap["throttle"]["per_symbol"]["BTCUSDT"]["max_throttle_backoff_ms"] == 100
            assert snap["throttle"]["global"]["max_throttle_backoff_ms"] == 2000
            for bad in ({}, {"path": ""}, {"path": ["x"]}, {"path": "t.yaml", "strict": True}):
                st, js, _ = await call(s, "POST", "/admin/thresholds/reload", json=bad)
                assert st == 400 and js["error"] == "E_ADMIN_BAD_REQUEST"
            st, js, _ = await call(s, "POST", "/admin/thresholds/reload", json={"path": str(tmp_path / "nope.yaml")})
            assert st == 400 and js["error"] == "E_CTRL_MISSING"
            return svc

    svc = arun(body())
    assert _sample(svc, "thresholds_version") == 1
    assert _sample(svc, "thresholds_reload_total", {"result": "ok"}) == 1
    assert _sample(svc, "thresholds_reload_total", {"result": "failed"}) == 1


def test_thresholds_strict_mode_refuses_lenient_mode_warns_and_falls_back(tmp_path, cfg, monkeypatch, capsys):
    (tmp_path / "t.yaml").write_text(THR + "      max_backof_ms: 5\n")

    async def body():
        async with live(tmp_path) as (svc, s):
            monkeypatch.setenv("STRICT_THRESHOLDS", "1")
            st, js, _ = await call(s, "POST", "/admin/thresholds/reload", json={"path": str(tmp_path / "t.yaml")})
            assert st == 400 and js["error"] == "E_THR_UNKNOWN_KEY" and "max_backof_ms" in js["detail"]
            assert (await call(s, "GET", "/admin/thresholds/snapshot"))[1]["version"] == 0  # unchanged
            monkeypatch.setenv("STRICT_THRESHOLDS", "0")
            st, js, _ = await call(s, "POST", "/admin/thresholds/reload", json={"path": str(tmp_path / "t.yaml")})
            assert st == 200 and js["version"] == 1 and len(js["warnings"]) == 1 and js["symbols"] == ["BTCUSDT"]
            return svc

    svc = arun(body())
    assert "event=thresholds_fallback" in capsys.readouterr().err
    assert [a["kind"] for a in svc.alerts.tail(50)].count("thresholds_fallback") == 1


def test_throttle_snapshot_load_reset(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            st, snap, _ = await call(s, "GET", "/admin/throttle/snapshot")
            assert st == 200 and {"backoff_ms", "limits", "symbols", "version"} <= set(snap)
            state = {k: snap[k] for k in ("backoff", "symbols", "version", "window_sec", "ws_backoff") if k in snap}
            st, js, _ = await call(s, "POST", "/admin/throttle/load", json=state)
            assert st == 200 and js["ok"] is True
            st, js, _ = await call(s, "POST", "/admin/throttle/load", json={"version": 1, "sha256": "0" * 64, "payload": state})
            assert st == 400 and js["error"] == "E_SNAPSHOT_BAD_CHECKSUM"
            st, js, _ = await call(s, "POST", "/admin/throttle/load", json={})
            assert st == 400 and js["error"] == "E_ADMIN_BAD_REQUEST"
            st, js, _ = await call(s, "POST", "/admin/throttle/load", json=snap)  # the snapshot answer loads back
            assert st == 200 and js["ok"] is True
            while not svc.throttle_snapshot()["symbols"].get("BTCUSDT", {}).get("create"):
                await asyncio.sleep(0.01)  # a create went through the loaded throttle
            await call(s, "POST", "/admin/killswitch", json={"action": "pause"})  # no sends: the windows hold still

            async def sends() -> dict:  # the exact send times per op (the rings also move with the clock)
                got = (await call(s, "GET", "/admin/throttle/snapshot"))[1]["symbols"]
                return {sym: {op: w["stamps_ns"] for op, w in ops.items()} for sym, ops in got.items()}

            held = await sends()
            assert held["BTCUSDT"]["create"]
            st, js, _ = await call(s, "POST", "/admin/throttle/load", json={"x": 1})  # used to wipe the state
            assert st == 400 and js["error"] == "E_SNAPSHOT_INVALID_PAYLOAD" and "unknown field(s) x" in js["detail"]
            assert await sends() == held
            st, js, _ = await call(s, "POST", "/admin/throttle/reset")
            assert st == 200 and js["ok"] is True
            assert (await call(s, "POST", "/admin/throttle/reset", json={"all": True}))[0] == 400
            return svc

    svc = arun(body())
    assert _sample(svc, "snapshot_integrity_fail_total", {"kind": "throttle"}) == 2


def test_anti_stale_guard_positions_orders_allocator_recorder(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            st, js, _ = await call(s, "GET", "/admin/anti-stale-guard")
            assert st == 200 and js["order_ttl_ms"] == 800 and js["enabled"] is True
            st, js, _ = await call(s, "POST", "/admin/anti-stale-guard", json={"order_ttl_ms": 500, "price_drift_bps": 1.5})
            assert st == 200 and js["order_ttl_ms"] == 500 and js["price_drift_bps"] == 1.5
            for bad in ({}, {"symbol": "BTCUSDT"}, {"order_ttl_ms": -1}, {"enabled": "yes"}):
                st, js, _ = await call(s, "POST", "/admin/anti-stale-guard", json=bad)
                assert st == 400 and js["error"] in ("E_ADMIN_BAD_REQUEST", "E_LIVE_BAD_REQUEST"), bad
            assert (await call(s, "GET", "/admin/anti-stale-guard"))[1]["order_ttl_ms"] == 500
            st, js, _ = await call(s, "GET", "/admin/positions")
            assert st == 200 and "BTCUSDT" in js["symbols"]
            st, js, _ = await call(s, "GET", "/admin/orders")
            assert st == 200 and js["count"] == len(js["orders"]) == len(svc.orders())
            assert all(o["symbol"] == "BTCUSDT" for o in js["orders"])
            st, js, _ = await call(s, "GET", "/admin/allocator")
            assert st == 200 and "BTCUSDT" in js["budgets"]
            st, js, _ = await call(s, "GET", "/admin/execution/recorder/status")
            assert st == 200 and {"enabled", "file", "last_write_ts"} <= set(js) and js["enabled"] is False
            st, js, _ = await call(s, "POST", "/admin/execution/recorder/rotate")
            assert st == 200 and {"ok", "file"} <= set(js)

    arun(body())


def test_alerts_log_tail_and_clear(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            for i in range(5):
                svc.alert("test", {"i": i})
            st, js, _ = await call(s, "GET", "/admin/alerts/log?tail=2")
            assert st == 200 and js["count"] == 2 and [a["payload"]["i"] for a in js["alerts"]] == [3, 4]
            assert set(js["alerts"][0]) == {"kind", "payload", "ts"}
            total = (await call(s, "GET", "/admin/alerts/log"))[1]["count"]
            assert total >= 5
            for bad in ("0", "1001", "abc", "-1", "2.5"):
                st, js, _ = await call(s, "GET", f"/admin/alerts/log?tail={bad}")
                assert st == 400 and js["error"] == "E_ADMIN_BAD_REQUEST", bad
            assert (await call(s, "POST", "/admin/alerts/clear"))[1] == {"cleared": total}
            assert (await call(s, "GET", "/admin/alerts/log"))[1]["count"] == 0

    arun(body())


def test_service_failure_is_a_500_that_leaks_nothing(tmp_path, cfg, capsys):
    svc = _fake(tmp_path, cfg)
    svc.raise_in_positions = RuntimeError(f"db exploded with {TOKEN_P}")

    async def body():
        async with serve(svc) as (_, s):
            st, js, raw = await call(s, "GET", "/admin/positions")
            assert st == 500 and js == {"error": "E_ADMIN_INTERNAL", "detail": "internal error (RuntimeError); see the service log"}

    arun(body())
    err = capsys.readouterr().err
    assert "event=admin_internal_error" in err and TOKEN_P not in err and "****" in err


# ----------------------------------------------------------------------------- selfcheck, perf
def test_selfcheck_on_the_running_service(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            await asyncio.sleep(0.3)  # let the 250 ms risk loop and the 50 ms drift monitor tick once
            st, js, _ = await call(s, "GET", "/admin/selfcheck")
            assert st == 200 and js["status"] == "ok" and js["reasons"] == [], js
            assert set(js["checks"]) == {"artifacts_dir_write", "alerts_log_writable", "loops_heartbeats_fresh",
                                         "event_loop_drift", "admin_latency_budget"}
            assert {"engine", "risk", "drift"} <= {loop["name"] for loop in js["loops"]}
            assert not list((tmp_path / "artifacts").glob(".selfcheck*"))  # the probe cleaned up

    arun(body())


def test_selfcheck_stays_ok_between_the_ticks_of_a_slow_loop(tmp_path, cfg, monkeypatch):
    """alerts_prune ticks once an hour (PRUNE_INTERVAL_SEC) but beats every second in
    between, so the heartbeat check does not fail a few seconds after start."""
    for var in ("PRUNE_INTERVAL_SEC", "SNAPSHOT_INTERVAL_SEC", "METRICS_JSON_INTERVAL_SEC"):
        monkeypatch.setenv(var, "3600")
    monkeypatch.setenv("SELFCHK_LOOP_MAX_AGE_SEC", "1.5")

    async def body():
        async with live(tmp_path) as (svc, s):
            await asyncio.sleep(3.0)  # twice the budget: a loop that only beat on its ticks would be stale
            st, js, _ = await call(s, "GET", "/admin/selfcheck")
            fresh = js["checks"]["loops_heartbeats_fresh"]
            assert fresh["ok"] and fresh["stale"] == [] and fresh["max_age_sec"] == 1.5, js
            ages = {loop["name"]: loop["age_sec"] for loop in js["loops"]}
            assert ages["alerts_prune"] <= 1.5 and ages["snapshot"] <= 1.5 and ages["metrics_json"] <= 1.5
            assert svc.metrics.loop_ticks()["alerts_prune"]["n"] == 1  # it really ticked only once

    arun(body())


def test_reloaded_thresholds_are_checked_by_the_service(tmp_path, cfg):
    thr = tmp_path / "thr.yaml"
    thr.write_text("throttle:\n  global: {max_throttle_events_in_window_total: 0}\n"
                   "  per_symbol:\n    BTCUSDT: {max_throttle_backoff_ms: 100}\n")

    async def body():
        async with live(tmp_path) as (svc, s):
            assert svc.http.admin.thresholds is svc.thresholds  # one store: what the admin reloads, the service reads
            st, js, _ = await call(s, "POST", "/admin/thresholds/reload", json={"path": str(thr)})
            assert st == 200 and js["version"] == 1
            for _ in range(400):
                if any(a["kind"] == "throttle_threshold_breach" for a in svc.alerts_tail(100)):
                    break
                await asyncio.sleep(0.05)
            st, ts, _ = await call(s, "GET", "/admin/throttle/snapshot")
            assert st == 200 and ts["thresholds"]["version"] == 1
            assert ts["thresholds"]["global"]["max_throttle_events_in_window_total"] == 0
            assert ts["thresholds"]["per_symbol"]["BTCUSDT"] == {"max_throttle_backoff_ms": 100,
                                                                 "max_throttle_events_in_window_total": 0}
            assert ts["thresholds"]["breaches"].get("global:events_in_window_total", 0) >= 1
            return svc

    svc = arun(body())
    alerts = [a["payload"] for a in svc.alerts_tail(100) if a["kind"] == "throttle_threshold_breach"]
    assert {(a["scope"], a["metric"]) for a in alerts} >= {("global", "events_in_window_total")}
    assert all(a["thresholds_version"] == 1 for a in alerts)
    assert _sample(svc, "admin_alert_events_total", {"kind": "throttle_threshold_breach"}) == len(alerts)


def test_selfcheck_reports_each_failure(tmp_path, cfg):
    svc = _fake(tmp_path, cfg)

    async def body():
        async with serve(svc) as (_, s):
            st, js, _ = await call(s, "GET", "/admin/selfcheck")
            assert st == 200 and js["loops"] == [{"age_sec": 1.0, "name": "alerts_prune"}, {"age_sec": 0.5, "name": "snapshot"}]
            svc.beats["snapshot"] = 11.0
            svc.drift_ms = 151.0
            st, js, _ = await call(s, "GET", "/admin/selfcheck")
            assert st == 503 and js["status"] == "fail"
            assert js["reasons"] == ["loops_heartbeats_fresh", "event_loop_drift"]
            assert js["checks"]["loops_heartbeats_fresh"]["stale"] == ["snapshot"]

    arun(body())


def test_selfcheck_env_budgets_and_unwritable_artifacts(tmp_path, cfg, monkeypatch):
    monkeypatch.setenv("SELFCHK_LOOP_MAX_AGE_SEC", "0.75")
    monkeypatch.setenv("SELFCHK_DRIFT_MAX_MS", "2")
    monkeypatch.setenv("SELFCHK_ADMIN_P50_MS", "0")
    svc = _fake(tmp_path, cfg)

    async def body():
        async with serve(svc) as (_, s):
            await call(s, "GET", "/admin/selfcheck")  # one timed sample (> 0 ms) for the latency budget
            st, js, _ = await call(s, "GET", "/admin/selfcheck")
            assert st == 503
            assert js["reasons"] == ["loops_heartbeats_fresh", "event_loop_drift", "admin_latency_budget"]
            assert js["checks"]["loops_heartbeats_fresh"]["stale"] == ["alerts_prune"]
            assert js["checks"]["admin_latency_budget"]["p50_ms"] >= 5
            blocker = tmp_path / "blocker"
            blocker.write_text("a file, not a folder")
            svc.artifacts_dir = blocker / "artifacts"
            st, js, _ = await call(s, "GET", "/admin/selfcheck")
            assert "artifacts_dir_write" in js["reasons"] and "alerts_log_writable" in js["reasons"]

    arun(body())


def test_bad_selfcheck_env_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("SELFCHK_DRIFT_MAX_MS", "fast")
    with pytest.raises(MmkitError) as err:
        AdminSettings.from_env()
    assert err.value.code == "E_ADMIN_BAD_ENV"


def test_perf_snapshot_has_loops_drift_and_admin_buckets(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            for _ in range(3):
                await call(s, "GET", "/admin/orders")
            st, js, _ = await call(s, "GET", "/admin/perf/snapshot")
            assert st == 200 and isinstance(js["event_loop_drift_ms"], float)
            assert "engine" in js["loops"] and {"p95_ms", "p99_ms"} <= set(js["loops"]["engine"])
            assert sum(js["admin_latency_buckets"]["/admin/orders"].values()) == 3
            assert set(js["admin_latency_buckets"]["/admin/orders"]) <= set(BUCKETS)
            return svc

    svc = arun(body())
    assert sum(_sample(svc, "admin_endpoint_latency_bucket_total", {"endpoint": "/admin/orders", "bucket_ms": b})
               for b in BUCKETS) == 3


# ----------------------------------------------------------------------------- audit
def test_every_call_is_audited_in_the_ring_and_the_chain(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (svc, s):
            await call(s, "POST", "/admin/killswitch", json={"action": "pause", "reason": "venue incident"})
            await call(s, "GET", "/admin/alerts/log?tail=3", token=TOKEN_S)
            await call(s, "GET", "/admin/orders", token="wrong-token-123456789")
            await call(s, "POST", "/admin/killswitch", data=b"{bad")
            return (await call(s, "GET", "/admin/audit/log"))[1]

    js = arun(body())
    entries = js["entries"]
    assert js["capacity"] == 1000 and js["count"] == 4  # the audit/log call itself is recorded after it answers
    assert [(e["method"], e["endpoint"], e["status"]) for e in entries] == [
        ("POST", "/admin/killswitch", 200), ("GET", "/admin/alerts/log", 200),
        ("GET", "/admin/orders", 401), ("POST", "/admin/killswitch", 400)]
    assert [e["actor"] for e in entries] == [actor_id(TOKEN_P), actor_id(TOKEN_S), actor_id("wrong-token-123456789"), actor_id(TOKEN_P)]
    assert actor_id(TOKEN_P) == hashlib.sha1(TOKEN_P.encode()).hexdigest()[:8]
    assert entries[0]["payload_hash"] == hashlib.sha1(canonical_json({"action": "pause", "reason": "venue incident"}).encode()).hexdigest()
    assert entries[0]["reason"] == "venue incident" and "reason" not in entries[1]
    assert entries[1]["payload_hash"] == payload_hash({"tail": "3"})
    chain = _chain(tmp_path)
    admin = [e for e in chain if e["kind"] == "ADMIN"]
    assert [e["seq"] for e in admin] == [e["audit_seq"] for e in entries] + [admin[-1]["seq"]]
    assert admin[-1]["payload"]["endpoint"] == "/admin/audit/log"
    assert {"run.start", "killswitch", "run.stop"} <= {e["kind"] for e in chain}  # one chain with the service's entries
    res = run_cli("audit", "verify", "--audit", str(tmp_path / "artifacts" / "audit.jsonl"),
                  "--out-json", str(tmp_path / "v.json"), "--out-md", str(tmp_path / "v.md"))
    assert res.code == 0 and "AUDIT_VERIFY=OK" in res.stdout + res.stderr


def test_audit_log_is_signed_with_the_hmac_key_and_verifies_with_the_cli(tmp_path, cfg, monkeypatch):
    monkeypatch.setenv("ADMIN_AUDIT_HMAC_KEY", HMAC_KEY)

    async def body():
        async with live(tmp_path) as (_, s):
            await call(s, "POST", "/admin/killswitch", json={"action": "pause"})
            await call(s, "POST", "/admin/auth/rotate", json={"token": "another-token-abcdef0123"})
            await call(s, "GET", "/admin/config", token="another-token-abcdef0123")

    arun(body())
    chain = _chain(tmp_path)
    assert sum(e["kind"] == "ADMIN" for e in chain) == 3 and all(len(e["sig"]) == 64 for e in chain)
    path = str(tmp_path / "artifacts" / "audit.jsonl")
    res = run_cli("audit", "verify", "--audit", path, "--out-json", str(tmp_path / "v.json"), "--out-md", str(tmp_path / "v.md"))
    assert res.code == 0 and "AUDIT_VERIFY=OK" in res.stdout + res.stderr
    assert json.loads((tmp_path / "v.json").read_text())["signed"] is True
    assert not audit.verify(path, key=b"some-other-key").ok  # the sig really depends on the key


def test_ring_keeps_the_last_1000_and_refusal_floods_do_not_flood_the_chain(tmp_path, cfg, capsys):
    async def body():
        async with live(tmp_path) as (svc, s):
            for i in range(1010):
                await call(s, "GET", "/admin/orders", token=f"guess-{i:04d}")
            return svc, (await call(s, "GET", "/admin/audit/log"))[1]

    svc, js = arun(body())
    assert js["count"] == 1000 and js["entries"][0]["actor"] == actor_id("guess-0010")
    admin = [e["payload"] for e in _chain(tmp_path) if e["kind"] == "ADMIN"]
    assert len(admin) == 61 and admin[-1]["endpoint"] == "/admin/audit/log"  # NOISE_AUDIT_PER_WINDOW 401s + the read
    assert capsys.readouterr().err.count("event=admin_unauthorized") == 60
    assert _sample(svc, "admin_unauthorized_total") == 1010
    assert audit.verify(tmp_path / "artifacts" / "audit.jsonl").ok


def test_payload_hash_redacts_secret_fields():
    assert redact({"token": "abc", "nested": [{"api_key": "k"}], "path": "x", "secret": ""}) == \
        {"token": "****", "nested": [{"api_key": "****"}], "path": "x", "secret": ""}
    assert payload_hash({"token": "one"}) == payload_hash({"token": "two"})


# ----------------------------------------------------------------------------- secrets
def test_no_token_or_hmac_key_appears_in_any_response_log_audit_or_artifact(tmp_path, cfg, monkeypatch, capsys):
    monkeypatch.setenv("ADMIN_AUDIT_HMAC_KEY", HMAC_KEY)
    new = "rotated-token-99999999999999"
    secrets = [TOKEN_P, TOKEN_S, HMAC_KEY, new]
    bad_cfg = tmp_path / "leak.yaml"
    bad_cfg.write_text(f"trading:\n  symbols: [BTCUSDT]\n  {TOKEN_P}: 1\n")
    thr = tmp_path / "thr.yaml"
    thr.write_text(f"throttle:\n  global:\n    {TOKEN_S}: 1\n")
    bodies: list[bytes] = []

    async def body():
        async with live(tmp_path) as (_, s):
            async def grab(method, path, token=TOKEN_P, **kw):
                async with s.request(method, path, headers={"X-Admin-Token": token} if token else {}, **kw) as resp:
                    bodies.append(await resp.read())
                    bodies.append(repr(dict(resp.headers)).encode())
            for route in ADMIN_ROUTES:
                if route.method == "GET":
                    await grab("GET", route.path)
            await grab("POST", "/admin/config/reload", json={"path": str(bad_cfg)})
            await grab("POST", "/admin/thresholds/reload", json={"path": str(thr)})
            await grab("POST", "/admin/killswitch", json={"action": "pause", "reason": TOKEN_P})
            await grab("POST", "/admin/killswitch", data=f'{{"action":"{TOKEN_S}"}}')
            await grab("POST", "/admin/anti-stale-guard", json={"order_ttl_ms": TOKEN_P})
            await grab("POST", "/admin/throttle/load", json={"symbols": {TOKEN_S: 1}})
            await grab("POST", "/admin/auth/rotate", json={"token": new})
            await grab("GET", "/admin/orders", token=new)
            await grab("GET", "/admin/orders", token=TOKEN_S)
            await grab("GET", "/admin/audit/log", token=new)
            await grab("GET", "/admin/alerts/log?tail=1000", token=new)
            await grab("GET", "/metrics", token=None)
            await grab("GET", "/healthz", token=None)

    arun(body())
    captured = capsys.readouterr()
    haystacks = {"responses": b"\n".join(bodies), "stderr": captured.err.encode(), "stdout": captured.out.encode()}
    for path in sorted((tmp_path / "artifacts").rglob("*")):
        if path.is_file():
            haystacks[str(path.relative_to(tmp_path))] = path.read_bytes()
    assert any(b"E_CFG_UNKNOWN_KEY" in b for b in bodies) and any(b"****" in b for b in bodies)
    assert {"artifacts/audit.jsonl", "artifacts/alerts.log", "artifacts/RUN_SUMMARY.json"} <= set(haystacks)
    for where, data in haystacks.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{secret[:6]}... leaked in {where}"


def test_every_json_body_is_canonical_ascii(tmp_path, cfg):
    async def body():
        async with live(tmp_path) as (_, s):
            for route in ADMIN_ROUTES:
                if route.method == "GET":
                    st, js, raw = await call(s, "GET", route.path)
                    assert raw == canonical_bytes(js), route.path

    arun(body())
