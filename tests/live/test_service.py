"""The live service for real: the engine on the replay venue (a slice of the bundled Binance
recording) at --speed max, its fail-safe stop, restart-safe snapshots, guards, the kill
switch, config reload, the recorder, and /metrics over real HTTP."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from live.admin_support import FAST_CFG
from mmkit.audit import verify
from mmkit.config import load_config
from mmkit.errors import MmkitError
from mmkit.live import snapshots as snap
from mmkit.live.alerts import AlertsLog
from mmkit.live.service import LiveService, RunOptions, default_data_path
from mmkit.live.status import StatusLine, render
from support import validate_artifact, validate_file

pytestmark = pytest.mark.service

ENV = ("ADMIN_TOKEN_PRIMARY", "ADMIN_TOKEN_SECONDARY", "ADMIN_AUTH_DISABLED", "ADMIN_AUDIT_HMAC_KEY", "MM_PROFILE",
       "MM_FREEZE_UTC", "EXEC_RECORDER_ENABLED", "ALERTS_MAX_LINES", "SNAPSHOT_INTERVAL_SEC", "SOAK_THREADS_MAX")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    return tmp_path


def recording(folder: Path, lines: int = 3000) -> str:
    """The first ``lines`` lines of the bundled recording (about 44 s of market)."""
    out = folder / f"head{lines}.gz"
    if not out.exists():
        with gzip.open(default_data_path(), "rb") as src:
            out.write_bytes(gzip.compress(b"".join(src.readline() for _ in range(lines))))
    return str(out)


def config(folder: Path, text: str = FAST_CFG, name: str = "cfg.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def service(folder: Path, cfg_text: str = FAST_CFG, **opts) -> LiveService:
    opts.setdefault("speed", None)
    opts.setdefault("http", False)
    opts.setdefault("status", False)
    opts.setdefault("data", (recording(folder),))
    return LiveService(load_config(config(folder, cfg_text), use_env_profile=False), RunOptions(**opts),
                       folder / "artifacts")


def run(svc: LiveService) -> dict:
    return asyncio.run(svc.run())


def audit_kinds(folder: Path) -> list[str]:
    return [json.loads(ln)["kind"] for ln in (folder / "artifacts" / "audit.jsonl").read_text().splitlines()]


def metric(svc: LiveService, name: str, **labels) -> float:
    value = svc.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def until(cond, timeout: float = 20.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        await asyncio.sleep(0.005)


# ----------------------------------------------------------------------------- lifecycle
def test_end_of_data_stops_fail_safe_and_writes_everything(env):
    svc = service(env)
    summary = run(svc)
    art = env / "artifacts"
    assert summary["status"] == "ok" and summary["exit_reason"] == "data_end" and summary["error"] is None
    assert summary["open_orders"] == 0 and summary["venue_open_orders"] == 0
    assert summary["events"] == svc.scan.n_events and summary["fills"] > 0 and summary["decisions"] > 0
    assert summary["cancels_at_exit"] >= 0 and summary["engine"]["creates"] > 0
    assert summary["decision_latency_us"]["n"] > 0 and summary["decision_latency_us"]["p99"] > 0
    on_disk = validate_file(art / "RUN_SUMMARY.json")
    assert on_disk == json.loads(json.dumps(summary))
    metrics_json = validate_file(art / "metrics.json")
    assert set(metrics_json) == {"schema", "meta", "fees", "intraday_caps", "position_skew", "runtime"}
    assert metrics_json["runtime"]["mode"] == "sim"
    for kind in snap.KINDS:
        assert snap.read_snapshot(art / "snapshots" / f"{kind}.json", kind) is not None
    kinds = audit_kinds(env)
    assert kinds[0] == "run.start" and kinds[-1] == "run.stop"
    assert verify(art / "audit.jsonl").ok
    # every loop ticked and was timed
    perf = svc.perf_snapshot()
    assert "engine" in perf["loops"] and perf["loops"]["engine"]["n"] > 0
    assert metric(svc, "fills_total", symbol="BTCUSDT", liquidity="maker") + \
        metric(svc, "fills_total", symbol="BTCUSDT", liquidity="taker") == summary["fills"]
    assert metric(svc, "creates_total", symbol="BTCUSDT") == summary["engine"]["creates"]


def test_run_matches_the_backtest_engine_on_the_same_data(env):
    """Same engine, same wiring: at --speed max the service trades exactly like a backtest."""
    from mmkit.research.backtest import BacktestRequest, run_backtest

    data = recording(env)
    summary = run(service(env, data=(data,)))
    bt = run_backtest(BacktestRequest((data,), load_config(config(env), use_env_profile=False)))
    eng = summary["engine"]
    for key in ("events", "decisions", "creates", "amends", "fills"):
        assert eng[key] == bt.report["engine"][key], key


def test_restart_loads_state_and_continues_the_clock(env):
    first = run(service(env))
    art = env / "artifacts"
    orders1 = snap.read_snapshot(art / "snapshots" / "orders.json", "orders")
    seq1 = orders1["symbols"]["BTCUSDT"]["next_seq"]
    svc = service(env)
    second = run(svc)
    assert {k: v["loaded"] for k, v in second["snapshots"].items()} == {"throttle": "loaded", "allocator": "loaded",
                                                                       "orders": "loaded"}
    assert second["replay"]["start_loop"] >= 1 and second["open_orders"] == 0
    assert svc.engine.rt["BTCUSDT"].orders.next_seq > seq1  # ids continue, never reused
    # the allocator's public state is the snapshot payload (files written before stay loadable)
    assert svc.allocator.state() == snap.allocator_payload(svc.allocator)
    assert second["engine"]["creates"] > 0  # a restored throttle did not block the new run
    assert first["fills"] > 0 and verify(art / "audit.jsonl").ok


def test_corrupt_snapshot_is_refused_counted_and_the_service_starts_clean(env):
    run(service(env))
    path = env / "artifacts" / "snapshots" / "throttle.json"
    path.write_bytes(path.read_bytes().replace(b'"window_sec":3', b'"window_sec":4'))
    (env / "artifacts" / "snapshots" / "allocator.json").write_bytes("{\"caf\u00e9\": 1}".encode())
    svc = service(env)
    summary = run(svc)
    st = summary["snapshots"]
    assert (st["throttle"]["loaded"], st["throttle"]["reason"]) == ("refused", "bad_checksum")
    assert (st["allocator"]["loaded"], st["allocator"]["reason"]) == ("refused", "non_ascii")
    assert st["orders"]["loaded"] == "loaded"
    assert metric(svc, "snapshot_integrity_fail_total", kind="throttle") == 1
    assert metric(svc, "snapshot_integrity_fail_total", kind="allocator") == 1
    alerts = [a for a in svc.alerts.tail(100) if a["kind"] == "snapshot_refused"]
    assert sorted(a["payload"]["reason"] for a in alerts) == ["bad_checksum", "non_ascii"]
    assert summary["status"] == "ok" and summary["events"] > 0 and summary["open_orders"] == 0
    assert "snapshot.refused" in audit_kinds(env)


def test_engine_failure_still_stops_fail_safe(env, monkeypatch):
    svc = service(env)
    real = svc.venue._events

    def failing(loop_no):
        for i, ev in enumerate(real(loop_no)):
            if i == 2000:
                raise MmkitError("E_DATA_BAD_LINE", "injected: line 2001 is garbage")
            yield ev

    monkeypatch.setattr(svc.venue, "_events", failing)
    with pytest.raises(MmkitError) as exc:
        run(svc)
    assert exc.value.code == "E_DATA_BAD_LINE"
    summary = json.loads((env / "artifacts" / "RUN_SUMMARY.json").read_text())
    assert summary["status"] == "error" and summary["exit_reason"] == "error:E_DATA_BAD_LINE"
    assert summary["open_orders"] == 0 and summary["error"].startswith("E_DATA_BAD_LINE")
    assert any(a["kind"] == "engine_failed" for a in svc.alerts.tail(10))


def test_unknown_venue_is_refused(env):
    with pytest.raises(MmkitError) as exc:
        service(env, venue="bybit")
    assert exc.value.code == "E_LIVE_VENUE_UNAVAILABLE" and exc.value.exit_code == 64


# ----------------------------------------------------------------------------- guards and operator controls
def test_guard_breach_cancels_first_then_audits(env):
    tight = FAST_CFG.replace("per_symbol_abs_limit: 0", "per_symbol_abs_limit: 50")
    svc = service(env, tight)
    summary = run(svc)
    assert summary["guard_events_by_kind"].get("pos_skew:freeze:breach", 0) >= 1
    entries = [json.loads(ln) for ln in (env / "artifacts" / "audit.jsonl").read_text().splitlines()]
    guard = [e["payload"] for e in entries if e["kind"] == "GUARD" and e["payload"]["guard"] == "pos_skew:freeze"]
    first = next(p for p in guard if p["kind"] == "breach")
    assert first["action"] == "cancel_all" and first["cancels"] >= 0 and first["symbol"] == "BTCUSDT"
    assert metric(svc, "guard_events_total", reason="pos_skew:freeze") >= 1
    assert any(a["kind"] == "guard_breach" for a in svc.alerts.tail(50))
    # frozen: only position-reducing orders could be created after the breach
    assert svc.engine.rt["BTCUSDT"].orders.counters.gated.get("pos_skew:freeze", 0) > 0
    assert summary["open_orders"] == 0


def test_killswitch_pause_flatten_resume(env):
    async def body():
        svc = service(env, loop=True)
        await svc.start()
        try:
            eng = svc.engine
            await until(lambda: eng.ledger.qty_lots("BTCUSDT") != 0 and eng.open_orders() > 0)
            out = await svc.killswitch("pause", "tester01")
            assert out["paused"] and out["engaged"] and out["open_orders"] == 0 and eng.open_orders() == 0
            creates, seen = eng.counters.creates, eng.counters.events
            await until(lambda: eng.counters.events > seen + 1000)
            assert eng.counters.creates == creates and eng.open_orders() == 0  # no quoting while paused
            flat = await svc.killswitch("flatten", "tester01")
            res = flat["result"]["flatten"]["BTCUSDT"]
            assert res["before_lots"] != 0 and res["after_lots"] == 0 and res["sent"]
            order = eng.rt["BTCUSDT"].orders.get(res["client_id"])  # made by the order manager, so booked
            assert order is not None and order.state == "filled" and order.filled == abs(res["before_lots"])
            assert eng.ledger.qty_lots("BTCUSDT") == 0 and eng.open_orders() == 0
            assert eng.counters.fills > 0 and flat["paused"]
            back = await svc.killswitch("resume", "tester01")
            assert not back["paused"] and not back["engaged"]
            await until(lambda: eng.counters.creates > creates)
            with pytest.raises(MmkitError) as exc:
                await svc.killswitch("explode", "tester01")
            assert exc.value.code == "E_LIVE_BAD_REQUEST"
        finally:
            summary = await svc.shutdown()
        assert summary["open_orders"] == 0 and summary["killswitch"]["actions"] == {"flatten": 1, "pause": 1, "resume": 1}
        entries = [json.loads(ln) for ln in (env / "artifacts" / "audit.jsonl").read_text().splitlines()]
        ks = [e["payload"] for e in entries if e["kind"] == "killswitch"]
        assert [p["action"] for p in ks] == ["pause", "flatten", "resume"] and all(p["actor"] == "tester01" for p in ks)
        assert sum(1 for a in svc.alerts.tail(100) if a["kind"] == "killswitch_fired") == 2
        assert metric(svc, "killswitch_triggers_total", action="flatten") == 1

    asyncio.run(body())


def test_kill_switch_firing_pauses_and_cancels_before_the_audit(env):
    async def body():
        svc = service(env, loop=True)
        await svc.start()
        try:
            eng = svc.engine
            await until(lambda: eng.open_orders() > 0)
            svc.killswitch_gate.trip("reject_delta", eng.now_ns)  # as the canary check would
            await until(lambda: eng.paused)
            assert eng.pause_reason == "killswitch"
            await until(lambda: eng.open_orders() == 0)
            creates = eng.counters.creates
            await asyncio.sleep(0.05)
            assert eng.counters.creates == creates
        finally:
            summary = await svc.shutdown()
        entries = [json.loads(ln)["payload"] for ln in (env / "artifacts" / "audit.jsonl").read_text().splitlines()
                   if json.loads(ln)["kind"] == "GUARD"]
        fire = next(p for p in entries if p["guard"] == "killswitch")
        assert fire["kind"] == "fire" and fire["action"] == "pause" and fire["cancels"] > 0
        assert summary["open_orders"] == 0 and summary["killswitch"]["engaged"]

    asyncio.run(body())


def test_config_reload_validates_then_swaps(env):
    async def body():
        svc = service(env, loop=True)
        await svc.start()
        try:
            before = svc.config_snapshot()
            bad = config(env, "strategy:\n  k_vola_sprad: 1.0\n", "bad.yaml")
            with pytest.raises(MmkitError) as exc:
                svc.reload_config(str(bad), "tester01")
            assert exc.value.code == "E_CFG_UNKNOWN_KEY"
            assert svc.config_snapshot() == before
            assert metric(svc, "config_reload_total", result="failed") == 1
            changed = FAST_CFG.replace("levels_per_side: 2", "levels_per_side: 2\n  order_ttl_ms: 1500")
            good = config(env, changed + "portfolio:\n  budget_usd: 5000\nsignals:\n  vol_half_life_sec: 20\n",
                          "good.yaml")
            out = svc.reload_config(str(good), "tester01")
            assert out["ok"] and out["cfg_hash"] != before["cfg_hash"]
            assert "portfolio.budget_usd" in out["applied"] and "strategy.order_ttl_ms" in out["applied"]
            assert out["pending_restart"] == ["signals.vol_half_life_sec"]
            snap_now = svc.config_snapshot()
            assert snap_now["cfg_hash"] == out["cfg_hash"] and snap_now["pending_restart"] == ["signals.vol_half_life_sec"]
            assert svc.allocator.portfolio.budget_usd == 5000
            assert svc.anti_stale_guard()["order_ttl_ms"] == 1500
        finally:
            await svc.shutdown()
        assert "config.reload" in audit_kinds(env)

    asyncio.run(body())


def test_anti_stale_and_throttle_controls(env):
    async def body():
        svc = service(env, loop=True)
        await svc.start()
        try:
            await until(lambda: svc.engine.counters.creates > 5)
            out = svc.set_anti_stale_guard({"order_ttl_ms": 400, "price_drift_bps": 1.5, "symbol": "BTCUSDT"}, "t")
            assert out["order_ttl_ms"] == 400 and out["price_drift_bps"] == 1.5 and out["enabled"]
            assert out["symbols"]["BTCUSDT"]["open_orders"] >= 0 and out["check"] == "on_next_book_update"
            om = svc.engine.rt["BTCUSDT"].orders
            assert om.params.order_ttl_ms == 400 and om.anti_stale_settings()["order_ttl_ms"] == 400
            for bad in ({"order_ttl_ms": -1}, {"enabled": "yes"}, {"price_drift_bps": float("nan")}, {"nope": 1},
                        {"symbol": "ETHUSDT"}):
                with pytest.raises(MmkitError) as exc:
                    svc.set_anti_stale_guard(bad, "t")
                assert exc.value.code == "E_LIVE_BAD_REQUEST"
            assert svc.anti_stale_guard() == {"enabled": True, "order_ttl_ms": 400, "price_drift_bps": 1.5}
            ts = svc.throttle_snapshot()
            assert ts["version"] == 2 and ts["limits"]["create"] == 30 and "BTCUSDT" in ts["symbols"]
            raw = {k: ts[k] for k in ("version", "window_sec", "symbols", "backoff", "ws_backoff")}
            assert svc.throttle_load(snap.envelope(raw), "t")["ok"]
            assert svc.throttle_load(svc.throttle_snapshot(), "t")["ok"]  # the endpoint's view loads back as is
            # not a throttle snapshot: refused, and the running windows stay (it used to load as an empty v1)
            assert "BTCUSDT" in svc.throttle_snapshot()["symbols"]
            for junk in ({"x": 1}, {"version": 2, "window_sec": 3}, {"symbols": {}, "x": 1}):
                with pytest.raises(snap.SnapshotError) as exc:
                    svc.throttle_load(junk, "t")
                assert exc.value.code == "E_SNAPSHOT_INVALID_PAYLOAD", junk
                assert "BTCUSDT" in svc.throttle_snapshot()["symbols"]
            assert "unknown field(s) x" in str(exc.value)
            with pytest.raises(snap.SnapshotError) as exc:
                svc.throttle_load({"version": 2, "window_sec": 0}, "t")
            assert exc.value.code == "E_SNAPSHOT_INVALID_PAYLOAD"
            tampered = dict(snap.envelope(raw), sha256="0" * 64)
            with pytest.raises(snap.SnapshotError) as exc:
                svc.throttle_load(tampered, "t")
            assert exc.value.code == "E_SNAPSHOT_BAD_CHECKSUM"
            assert metric(svc, "snapshot_integrity_fail_total", kind="throttle") == 5
            reset = svc.throttle_reset("t")
            assert reset["snapshot"]["symbols"] == {}
            assert svc.engine.gates.gates[-1] is svc.throttle  # the chain still holds the same object
        finally:
            await svc.shutdown()
        kinds = audit_kinds(env)
        assert {"anti_stale_guard", "throttle.load", "throttle.reset"} <= set(kinds)

    asyncio.run(body())


def test_read_views_are_json_safe(env):
    async def body():
        svc = service(env, loop=True)
        await svc.start()
        try:
            await until(lambda: svc.engine.counters.fills > 0 and svc.engine.open_orders() > 0)
            views = {"positions": svc.positions(), "orders": svc.orders(), "allocator": svc.allocator_snapshot(),
                     "health": svc.health(), "perf": svc.perf_snapshot(), "ks": svc.killswitch_state(),
                     "config": svc.config_snapshot(), "heartbeats": svc.heartbeats(),
                     "components": {n: svc.health_component(n) for n in ("orders", "risk", "connectors")}}
            from mmkit import artifacts
            artifacts.canonical_json(views)  # ASCII, finite, serializable
            assert views["positions"]["symbols"]["BTCUSDT"]["fills"] > 0
            assert views["orders"] and views["orders"][0]["symbol"] == "BTCUSDT"
            assert views["health"]["status"] in ("ok", "degraded") and svc.ready()[0]
            assert views["components"]["connectors"][0] is True
            with pytest.raises(MmkitError):
                svc.health_component("database")
        finally:
            await svc.shutdown()
        assert not svc.ready()[0]

    asyncio.run(body())


# ----------------------------------------------------------------------------- files: recorder, alerts, status
def test_recorder_writes_orders_fills_and_rotates(env, monkeypatch):
    monkeypatch.setenv("EXEC_RECORDER_ENABLED", "1")
    svc = service(env)
    summary = run(svc)
    files = sorted((env / "artifacts").glob("exe_*.jsonl"))
    assert len(files) == 1
    rows = [json.loads(ln) for ln in files[0].read_text().splitlines()]
    kinds = {r["kind"] for r in rows}
    assert {"order", "fill"} <= kinds
    assert sum(1 for r in rows if r["kind"] == "fill") == summary["fills"]
    assert sum(1 for r in rows if r["kind"] == "order") == summary["engine"]["creates"] + summary["engine"]["amends"]
    assert set(rows[0]) == {"ts", "kind", "symbol", "side", "price", "qty", "cid", "color"}
    # a reject names only the client id: the recorder finds the order it refused
    from mmkit.core.types import Reject
    cid = rows[0]["cid"]
    svc._on_venue_report(123, Reject(100, cid, "create", "post_only_cross"))
    svc._on_venue_report(124, Reject(100, "nobody-1", "cancel", "unknown_order"))
    svc.recorder.flush()
    rejects = [json.loads(ln) for ln in files[0].read_text().splitlines()[-2:]]
    assert rejects[0] == {**rows[0], "kind": "reject", "ts": 123}
    assert (rejects[1]["kind"], rejects[1]["symbol"], rejects[1]["cid"]) == ("reject", "", "nobody-1")
    assert metric(svc, "order_rejects_total", op="create", reason="post_only_cross") == 1
    st = svc.recorder_status()
    assert st["enabled"] and st["file"] == str(files[0]) and st["last_write_ts"]
    rot = svc.recorder_rotate("t")
    assert rot["ok"] and rot["rotated_to"].endswith(".1.jsonl") and not files[0].exists()


def test_alerts_log_tail_prune_clear(tmp_path):
    log = AlertsLog(tmp_path / "alerts.log", max_lines=5)
    for i in range(12):
        log.append("k" if i % 2 else "j", {"i": i})
    assert [a["payload"]["i"] for a in log.tail(3)] == [9, 10, 11]
    assert set(log.tail(1)[0]) == {"kind", "payload", "ts"}
    assert log.prune() == 7 and log.line_count() == 5 and log.prune() == 0
    assert [a["payload"]["i"] for a in log.tail(100)] == [7, 8, 9, 10, 11]
    assert log.counts == {"j": 6, "k": 6} and log.writable()
    assert log.clear() == 5 and log.tail(10) == [] and (tmp_path / "alerts.log").read_bytes() == b""


def test_soak_guard_alerts_once_per_episode(env, monkeypatch):
    monkeypatch.setenv("SOAK_THREADS_MAX", "0")
    svc = service(env)
    svc._soak_tick()
    svc._soak_tick()
    monkeypatch.setenv("SOAK_THREADS_MAX", "10000")
    svc._soak_tick()
    monkeypatch.setenv("SOAK_THREADS_MAX", "0")
    svc._soak_tick()
    alerts = [a for a in svc.alerts.tail(10) if a["kind"] == "soak_guard_breach"]
    assert len(alerts) == 2 and alerts[0]["payload"]["metric"] == "threads"
    assert metric(svc, "soak_threads_total") >= 1 and metric(svc, "soak_mem_rss_bytes") > 0


def test_status_line_tty_and_logfmt():
    state = {"mid": 64000.05, "pos": "0.010", "pnl_usd": -0.1234, "open": 3, "fills": 2, "guard": "ok", "events": 10,
             "uptime_s": 1.5}
    assert render(state) == "mid=64000.05 pos=0.010 pnl_usd=-0.1234 open=3 fills=2 guard=ok events=10 uptime_s=1.5000"
    buf = io.StringIO()
    now = [0.0]
    line = StatusLine(buf, tty=True, clock=lambda: now[0])
    assert line.emit(state) and not line.emit(state)
    now[0] = 1.0
    assert line.emit(dict(state, open=12))
    line.close()
    text = buf.getvalue()
    assert text.startswith("\rmid=") and text.endswith("\n") and text.count("\r") == 2


# ----------------------------------------------------------------------------- HTTP
def test_metrics_over_real_http(env):
    async def body():
        svc = service(env, loop=True, http=True, port=0)
        await svc.start()
        try:
            assert svc.metrics_url == f"http://127.0.0.1:{svc.http_port}/metrics"
            await until(lambda: svc.engine.counters.fills > 0)
            await asyncio.sleep(0.3)  # one risk tick publishes PnL and positions
            async with aiohttp.ClientSession() as s:
                async with s.get(svc.metrics_url) as r:
                    assert r.status == 200
                    text = await r.text()
                async with s.get(svc.metrics_url.replace("/metrics", "/healthz")) as r:
                    assert r.status == 200 and (await r.json())["status"] in ("ok", "degraded")
                async with s.get(svc.metrics_url.replace("/metrics", "/readyz")) as r:
                    assert r.status == 200
        finally:
            await svc.shutdown()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for fam in text_string_to_metric_families(text) for s in fam.samples}
        fills = sum(v for (n, _), v in samples.items() if n == "fills_total")
        assert fills > 0
        assert samples[("creates_total", (("symbol", "BTCUSDT"),))] > 0
        assert ("net_pnl_total_usd", ()) in samples and ("loop_tick_p95_ms", (("loop", "engine"),)) in samples
        assert samples[("decision_latency_ms_count", ())] > 0

    asyncio.run(body())


def test_summary_schema_rejects_open_orders_below_zero(env):
    summary = run(service(env))
    validate_artifact(summary)
    broken = dict(summary, open_orders=-1)
    with pytest.raises(Exception):
        validate_artifact(broken)


# ----------------------------------------------------------------------------- throttle thresholds, bind errors
def test_throttle_thresholds_from_the_config_raise_one_alert_per_episode(env):
    cfg = FAST_CFG + "throttle:\n  global: {max_throttle_backoff_ms: 1000, max_throttle_events_in_window_total: 3}\n"
    svc = service(env, cfg)
    summary = run(svc)
    assert summary["status"] == "ok"
    th = svc.throttle_snapshot()["thresholds"]
    assert th["version"] == 0 and th["global"] == {"max_throttle_backoff_ms": 1000, "max_throttle_events_in_window_total": 3}
    assert th["breaches"].get("global:events_in_window_total", 0) >= 1
    alerts = [a["payload"] for a in svc.alerts.tail(1000) if a["kind"] == "throttle_threshold_breach"]
    assert alerts and alerts[0]["scope"] == "global" and alerts[0]["metric"] == "events_in_window_total"
    assert alerts[0]["reason"].startswith("Throttle events in window too high: ") and alerts[0]["threshold"] == 3
    assert metric(svc, "admin_alert_events_total", kind="throttle_threshold_breach") == len(alerts)


def test_throttle_threshold_check_global_and_per_symbol(env, tmp_path):
    svc = service(env)
    path = tmp_path / "thr.yaml"
    path.write_text("throttle:\n  global: {max_throttle_backoff_ms: 2000}\n"
                    "  per_symbol:\n    btcusdt: {max_throttle_backoff_ms: 100, max_throttle_events_in_window_total: 10}\n")
    check = svc._check_throttle_thresholds
    assert check({"BTCUSDT": 150}, {"BTCUSDT": 11}) == []  # config defaults (5000 ms, 50) until a reload
    svc.thresholds.reload(str(path), strict=True)
    assert check({"BTCUSDT": 150}, {"BTCUSDT": 11}) == ["BTCUSDT:backoff_ms", "BTCUSDT:events_in_window_total"]
    assert check({"BTCUSDT": 2500}, {"BTCUSDT": 11}) == ["BTCUSDT:backoff_ms", "BTCUSDT:events_in_window_total",
                                                          "global:backoff_ms"]
    assert check({"BTCUSDT": 0}, {"BTCUSDT": 0}) == []  # every episode ended
    assert check({"BTCUSDT": 150}, {"BTCUSDT": 0}) == ["BTCUSDT:backoff_ms"]  # a new episode: counted ...
    alerts = [a["payload"] for a in svc.alerts.tail(100) if a["kind"] == "throttle_threshold_breach"]
    assert [(a["scope"], a["metric"]) for a in alerts] == [("BTCUSDT", "backoff_ms"), ("BTCUSDT", "events_in_window_total"),
                                                            ("global", "backoff_ms")]  # ... not re-alerted within 60 s
    assert alerts[0] == {"scope": "BTCUSDT", "metric": "backoff_ms", "value": 150, "threshold": 100,
                         "reason": "Throttle backoff too high: 150 > 100", "thresholds_version": 1}
    snap_th = svc.throttle_snapshot()["thresholds"]
    assert snap_th["breaches"] == {"BTCUSDT:backoff_ms": 2, "BTCUSDT:events_in_window_total": 1, "global:backoff_ms": 1}
    assert snap_th["per_symbol"]["BTCUSDT"]["max_throttle_backoff_ms"] == 100 and snap_th["active"] == ["BTCUSDT:backoff_ms"]


def test_a_taken_port_fails_the_start_with_e_http_bind(env):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        svc = service(env, http=True, port=sock.getsockname()[1])
        with pytest.raises(MmkitError) as exc:
            run(svc)
    assert exc.value.code == "E_HTTP_BIND" and "--port" in exc.value.message
