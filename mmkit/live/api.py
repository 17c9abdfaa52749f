"""What the HTTP layer needs from the running service: the one contract between
``mmkit.live.service`` (which implements it) and ``mmkit.live.http`` / ``mmkit.live.admin``
(which expose it).

Keeping it a ``Protocol`` lets the HTTP layer stay a thin translation from requests to
these calls (auth, rate limits, body limits and auditing live there), and lets the service
stay free of HTTP concerns.  Every method returns JSON-safe ASCII data; methods that change
state take the ``actor`` (first 8 hex of sha1 of the admin token) for the audit trail and
raise ``MmkitError`` (``E_CFG_*`` for a rejected config) to refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry


class ServiceApi(Protocol):
    artifacts_dir: Path
    registry: CollectorRegistry  # what GET /metrics exposes

    # ---- health
    def uptime_s(self) -> float: ...
    def health(self) -> dict[str, Any]: ...                       # GET /healthz: {"status": "ok"|"degraded", ...}
    def ready(self) -> tuple[bool, dict[str, Any]]: ...          # GET /readyz: 200 if True else 503
    def health_component(self, name: str) -> tuple[bool, dict[str, Any]]: ...  # orders | risk | connectors
    def heartbeats(self) -> dict[str, float]: ...                # loop name -> seconds since its last tick
    def loop_drift_ms(self) -> float: ...                        # max event-loop drift over the last window
    def perf_snapshot(self) -> dict[str, Any]: ...               # loop tick p50/p95/p99 ms per loop, decision latency

    # ---- trading state (read)
    def positions(self) -> dict[str, Any]: ...
    def orders(self) -> list[dict[str, Any]]: ...
    def allocator_snapshot(self) -> dict[str, Any]: ...
    def throttle_snapshot(self) -> dict[str, Any]: ...

    # ---- operator controls (write)
    def killswitch_state(self) -> dict[str, Any]: ...
    async def killswitch(self, action: str, actor: str) -> dict[str, Any]: ...  # pause | resume | flatten
    def config_snapshot(self) -> dict[str, Any]: ...              # sanitized (no secrets), with cfg_hash
    def reload_config(self, path: str | None, actor: str) -> dict[str, Any]: ...  # validate fully, then swap
    def throttle_load(self, payload: dict[str, Any], actor: str) -> dict[str, Any]: ...
    def throttle_reset(self, actor: str) -> dict[str, Any]: ...
    def anti_stale_guard(self) -> dict[str, Any]: ...
    def set_anti_stale_guard(self, body: dict[str, Any], actor: str) -> dict[str, Any]: ...

    # ---- alerts and the execution recorder
    def alert(self, kind: str, payload: dict[str, Any]) -> None: ...
    def alerts_tail(self, n: int) -> list[dict[str, Any]]: ...
    def alerts_clear(self, actor: str) -> int: ...
    def recorder_status(self) -> dict[str, Any]: ...
    def recorder_rotate(self, actor: str) -> dict[str, Any]: ...
    async def execution_replay(self, path: str, speed: str, actor: str) -> dict[str, Any]: ...  # 1x | 10x | max
