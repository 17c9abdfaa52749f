"""Test helpers for the HTTP/admin tests: a small in-test ``ServiceApi`` and a real-HTTP harness.

``FakeService`` is a faithful, in-memory implementation of ``mmkit.live.api.ServiceApi``:
config reloads go through the real ``mmkit.config.load_config`` (so a bad file fails with
the real ``E_CFG_*`` errors), alerts go to a real ``AlertsLog``, metrics are a real
``LiveMetrics``.  It exists for failure injection the real service cannot be made to
produce on demand (stale heartbeats, event-loop drift, a handler that raises, a secret in
an exception message).  ``serve`` starts the real aiohttp server on 127.0.0.1:0 and yields
an aiohttp client session: every test talks real HTTP.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from mmkit.config import cfg_hash, load_config, to_dict
from mmkit.errors import MmkitError
from mmkit.live.alerts import AlertsLog
from mmkit.live.http import HttpServer, start_http
from mmkit.live.metrics import LiveMetrics

FAST_CFG = """\
strategy:
  model: fixed
  levels_per_side: 2
  fixed: {half_spread_ticks: 1, skew_ticks: 0.1, order_qty: 0.01, max_position: 0.2}
guards:
  pos_skew: {per_symbol_abs_limit: 0, per_color_abs_limit: 0}
"""
"""Tight quotes so a short slice of real data produces fills; no position-skew freeze."""

TOKEN_P = "primary-token-0123456789abcdef"
TOKEN_S = "secondary-token-fedcba9876543210"
HMAC_KEY = "hmac-key-do-not-leak-5a5a5a5a5a"


class FakeService:
    """In-memory ServiceApi with knobs for failure injection."""

    def __init__(self, artifacts_dir: Path, config_path: Path) -> None:
        self.artifacts_dir = Path(artifacts_dir)
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = LiveMetrics()
        self.registry = self.metrics.registry
        self.started = time.monotonic()
        self.loaded = load_config(config_path, use_env_profile=False)
        self.alerts = AlertsLog(self.artifacts_dir / "alerts.log")
        self.beats: dict[str, float] = {"snapshot": 0.5, "alerts_prune": 1.0}
        self.drift_ms = 3.0
        self.paused = False
        self.flattened = 0
        self.throttle: dict[str, Any] = {"backoff_ms": {"BTCUSDT": 0}, "events": 0}
        self.guard = {"enabled": True, "order_ttl_ms": 800, "price_drift_bps": 2.0}
        self.open_orders = [{"cid": "c1", "symbol": "BTCUSDT", "side": "buy", "price": "100.0", "qty": "0.01"}]
        self.recorder_file = "artifacts/exe_20250101.jsonl"
        self.raise_in_positions: Exception | None = None
        self.actors: list[str] = []
        self.metrics.set_heartbeats(self.beats)

    # ---- health
    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        return (not self.paused, {"paused": self.paused})

    def health_component(self, name: str) -> tuple[bool, dict[str, Any]]:
        if name == "risk":
            return (not self.paused, {"paused": self.paused})
        return True, {"detail": name}

    def heartbeats(self) -> dict[str, float]:
        return dict(self.beats)

    def loop_drift_ms(self) -> float:
        return self.drift_ms

    def perf_snapshot(self) -> dict[str, Any]:
        return {"loops": self.metrics.loop_ticks(), "decision_latency_us": {"p50": 12.0, "p99": 40.0}}

    # ---- trading state
    def positions(self) -> dict[str, Any]:
        if self.raise_in_positions is not None:
            raise self.raise_in_positions
        return {"BTCUSDT": {"qty": "0.0", "pnl_usd": 0.0}}

    def orders(self) -> list[dict[str, Any]]:
        return list(self.open_orders)

    def allocator_snapshot(self) -> dict[str, Any]:
        return {"weights": {"BTCUSDT": 1.0}}

    def throttle_snapshot(self) -> dict[str, Any]:
        return dict(self.throttle)

    # ---- controls
    def killswitch_state(self) -> dict[str, Any]:
        return {"engaged": self.paused, "flattened": self.flattened}

    async def killswitch(self, action: str, actor: str) -> dict[str, Any]:
        self.actors.append(actor)
        if action == "flatten":
            self.open_orders.clear()
            self.flattened += 1
        self.paused = action in ("pause", "flatten")
        self.alert("killswitch_fired", {"action": action, "actor": actor})
        return {"ok": True, "action": action, **self.killswitch_state()}

    def config_snapshot(self) -> dict[str, Any]:
        return {"cfg_hash": cfg_hash(self.loaded.config), "path": self.loaded.path,
                "config": to_dict(self.loaded.config, sanitize=True)}

    def reload_config(self, path: str | None, actor: str) -> dict[str, Any]:
        new = load_config(path or self.loaded.path, use_env_profile=False)  # raises E_CFG_* before any swap
        before = cfg_hash(self.loaded.config)
        self.loaded = new
        return {"ok": True, "cfg_hash_before": before, "cfg_hash": cfg_hash(new.config)}

    def throttle_load(self, payload: dict[str, Any], actor: str) -> dict[str, Any]:
        if "backoff_ms" not in payload:
            raise MmkitError("E_SNAPSHOT_INVALID_PAYLOAD", "throttle payload needs backoff_ms")
        self.throttle = dict(payload)
        return {"ok": True}

    def throttle_reset(self, actor: str) -> dict[str, Any]:
        self.throttle = {"backoff_ms": {}, "events": 0}
        return {"ok": True}

    def anti_stale_guard(self) -> dict[str, Any]:
        return dict(self.guard)

    def set_anti_stale_guard(self, body: dict[str, Any], actor: str) -> dict[str, Any]:
        self.guard.update(body)
        return dict(self.guard)

    # ---- alerts and recorder
    def alert(self, kind: str, payload: dict[str, Any]) -> None:
        self.alerts.append(kind, payload)

    def alerts_tail(self, n: int) -> list[dict[str, Any]]:
        return self.alerts.tail(n)

    def alerts_clear(self, actor: str) -> int:
        return self.alerts.clear()

    def recorder_status(self) -> dict[str, Any]:
        return {"enabled": False, "file": self.recorder_file, "last_write_ts": None}

    def recorder_rotate(self, actor: str) -> dict[str, Any]:
        return {"ok": True, "file": self.recorder_file}


@contextlib.asynccontextmanager
async def serve(service: Any, **kwargs: Any) -> AsyncIterator[tuple[HttpServer, aiohttp.ClientSession]]:
    """Start the real server on 127.0.0.1:0 and yield it with a client session."""
    server = await start_http(service, "127.0.0.1", 0, **kwargs)
    try:
        async with aiohttp.ClientSession(base_url=server.url) as session:
            yield server, session
    finally:
        await server.close()


def hdr(token: str = TOKEN_P) -> dict[str, str]:
    return {"X-Admin-Token": token}


ENV_VARS = ("ADMIN_TOKEN_PRIMARY", "ADMIN_TOKEN_SECONDARY", "ADMIN_AUTH_DISABLED", "ADMIN_AUDIT_HMAC_KEY",
            "SELFCHK_LOOP_MAX_AGE_SEC", "SELFCHK_DRIFT_MAX_MS", "SELFCHK_ADMIN_P50_MS", "STRICT_THRESHOLDS",
            "MM_PROFILE", "MM_FREEZE_UTC", "EXEC_RECORDER_ENABLED", "ALERTS_MAX_LINES")
CONFIG_YAML = "trading:\n  symbols: [BTCUSDT]\n"


def setup_env(tmp_path: Path, monkeypatch: Any) -> Path:
    """A clean folder with both admin tokens set and a small valid config; returns the config path."""
    monkeypatch.chdir(tmp_path)
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ADMIN_TOKEN_PRIMARY", TOKEN_P)
    monkeypatch.setenv("ADMIN_TOKEN_SECONDARY", TOKEN_S)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG_YAML)
    return cfg


def arun(coro: Any) -> Any:
    """Run one test body on a fresh event loop (server and client share it)."""
    import asyncio

    return asyncio.run(coro)


async def call(session: aiohttp.ClientSession, method: str, path: str, token: str | None = TOKEN_P,
               **kwargs: Any) -> tuple[int, Any, bytes]:
    """One request; returns (status, parsed JSON or None, raw body)."""
    import json

    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["X-Admin-Token"] = token
    async with session.request(method, path, headers=headers, **kwargs) as resp:
        raw = await resp.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        return resp.status, body, raw


@contextlib.asynccontextmanager
async def live(tmp_path: Path, speed: float | None = 10.0, **kwargs: Any) -> AsyncIterator[tuple[Any, aiohttp.ClientSession]]:
    """The real ``LiveService`` on the bundled recording (paced at ``speed``; ``None`` = max),
    its HTTP surface on 127.0.0.1:0, and a client session.  Shut down fail-safe on exit."""
    from mmkit.live.service import LiveService, RunOptions

    cfg = tmp_path / "cfg.yaml"
    if not cfg.exists():
        cfg.write_text(CONFIG_YAML)
    svc = LiveService(load_config(cfg, use_env_profile=False),
                      RunOptions(speed=speed, port=0, status=False, **kwargs), tmp_path / "artifacts")
    await svc.start()
    try:
        async with aiohttp.ClientSession(base_url=svc.http.url) as session:
            yield svc, session
    finally:
        await svc.shutdown()
