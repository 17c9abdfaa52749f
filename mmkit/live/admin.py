"""The authenticated admin API (``/admin/*``): a thin translation from HTTP requests to
``ServiceApi`` calls, with every cross-cutting rule applied in one place.

Why one wrapper for every route: auth, rate limiting, body limits, auditing, latency
buckets and secret scrubbing are the parts an operator must be able to trust, so they are
not left to each handler.  A request goes through, in order:

1. ``X-Admin-Token`` compared in constant time with ``ADMIN_TOKEN_PRIMARY`` and
   ``ADMIN_TOKEN_SECONDARY`` (both always compared); else 401 + ``admin_unauthorized_total``.
2. At most 60 requests per 60 s per (actor, endpoint); else 429 + ``admin_rate_limited_total``.
3. Body at most 1 MiB (else 413), ASCII (else 400 ``E_ADMIN_NON_ASCII``), a JSON object
   (else 400 ``E_ADMIN_BAD_JSON`` / ``E_ADMIN_BAD_REQUEST``).
4. The handler; ``MmkitError`` -> 400 with its code (``E_CFG_*`` for a rejected config).
5. The audit record (seed "Admin audit & rate-limit"): ``{ts, endpoint, method, actor,
   payload_hash, status}`` into an in-memory ring of 1000 and the hash-chained audit log
   (HMAC-signed when ``ADMIN_AUDIT_HMAC_KEY`` is set).

``actor`` is the first 8 hex of sha1(token): it tells tokens apart without revealing them.
Tokens and the HMAC key are never logged, audited or returned: payload hashes are taken
over the body with secret-named fields redacted, and every response body is scrubbed of
the live secrets as a last line of defence.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import inspect
import ipaddress
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from mmkit import artifacts, audit, log
from mmkit.clock import utc_now_iso
from mmkit.errors import ConfigError, MmkitError
from mmkit.live.api import ServiceApi
from mmkit.live.metrics import LiveMetrics
from mmkit.live.openapi import Param, Route, build_document
from mmkit.live.recorder import REPLAY_SPEEDS
from mmkit.live.thresholds import ThresholdsStore, strict_from_env

MAX_BODY_BYTES = 1 << 20
RING_SIZE = 1000
TOKEN_HEADER = "X-Admin-Token"
AUDIT_KIND = "ADMIN"
NOISE_AUDIT_PER_WINDOW = 60  # 401/429 entries written to the chain per rate window (the ring keeps all)
MIN_TOKEN_LEN = 16
ANTI_STALE_FIELDS = ("enabled", "order_ttl_ms", "price_drift_bps")
_SECRET_FIELDS = ("token", "secret", "key", "password", "passphrase", "hmac")


# ----------------------------------------------------------------------------- settings
def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise MmkitError("E_ADMIN_BAD_ENV", f"{name}={raw[:40]!r} is not a number (default {default:g})") from exc
    if not value >= 0:
        raise MmkitError("E_ADMIN_BAD_ENV", f"{name} must be >= 0 (default {default:g})")
    return value


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """Knobs read once at start: auth switch, rate limit and the ``SELFCHK_*`` budgets."""

    auth_disabled: bool = False
    rate_limit: int = 60
    rate_window_s: float = 60.0
    loop_max_age_s: float = 10.0
    drift_max_ms: float = 150.0
    admin_p50_ms: float = 50.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdminSettings:
        env = os.environ if env is None else env
        return cls(
            auth_disabled=env.get("ADMIN_AUTH_DISABLED", "") == "1",
            loop_max_age_s=_env_float(env, "SELFCHK_LOOP_MAX_AGE_SEC", 10.0),
            drift_max_ms=_env_float(env, "SELFCHK_DRIFT_MAX_MS", 150.0),
            admin_p50_ms=_env_float(env, "SELFCHK_ADMIN_P50_MS", 50.0),
        )


# ----------------------------------------------------------------------------- auth
def actor_id(token: str) -> str:
    """First 8 hex of sha1(token): names a token in logs without revealing it."""
    return hashlib.sha1(token.encode("utf-8", "surrogateescape")).hexdigest()[:8]


class TokenAuth:
    """The accepted admin tokens (primary and optional secondary), kept as bytes in memory only."""

    __slots__ = ("_primary", "_secondary", "_retired")

    def __init__(self, primary: str | None, secondary: str | None) -> None:
        self._primary = self._enc(primary)
        self._secondary = self._enc(secondary)
        self._retired: list[bytes] = []  # rotated-out tokens: no longer accepted, still scrubbed

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TokenAuth:
        env = os.environ if env is None else env
        return cls(env.get("ADMIN_TOKEN_PRIMARY") or None, env.get("ADMIN_TOKEN_SECONDARY") or None)

    def __repr__(self) -> str:
        return f"TokenAuth(primary={'set' if self._primary else 'unset'}, secondary={'set' if self._secondary else 'unset'})"

    @staticmethod
    def _enc(token: str | None) -> bytes | None:
        return token.encode("utf-8", "surrogateescape") if token else None

    @property
    def configured(self) -> bool:
        return self._primary is not None or self._secondary is not None

    def check(self, token: str | None) -> bool:
        """Constant-time: both slots are always compared, whichever matches."""
        given = self._enc(token) or b""
        ok_p = hmac.compare_digest(given, self._primary) if self._primary else False
        ok_s = hmac.compare_digest(given, self._secondary) if self._secondary else False
        return bool(token) and (ok_p | ok_s)

    def rotate(self, new_token: str) -> None:
        """``new_token`` becomes primary; the old primary stays valid as secondary (grace)."""
        self._retire(self._secondary)
        self._secondary = self._primary
        self._primary = self._enc(new_token)

    def drop_secondary(self) -> None:
        self._retire(self._secondary)
        self._secondary = None

    def weak_slots(self) -> list[str]:
        """The env names of configured tokens shorter than ``MIN_TOKEN_LEN``."""
        return [name for name, tok in (("ADMIN_TOKEN_PRIMARY", self._primary), ("ADMIN_TOKEN_SECONDARY", self._secondary))
                if tok is not None and len(tok) < MIN_TOKEN_LEN]

    def _retire(self, token: bytes | None) -> None:
        if token and token not in self._retired:
            self._retired.append(token)

    def actors(self) -> dict[str, str | None]:
        dec = lambda b: actor_id(b.decode("utf-8", "surrogateescape")) if b else None  # noqa: E731
        return {"primary": dec(self._primary), "secondary": dec(self._secondary)}

    def secrets(self) -> list[str]:
        """Every token this process has known (current and retired), longest first, for scrubbing."""
        known = {b.decode("utf-8", "surrogateescape") for b in (self._primary, self._secondary, *self._retired) if b}
        return sorted(known, key=lambda t: (-len(t), t))


# ----------------------------------------------------------------------------- rate limit
class RateLimiter:
    """Sliding-window log: at most ``limit`` hits per ``window_s`` per key."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[Any, deque[float]] = {}

    def hit(self, key: Any) -> float:
        """Record a hit; 0.0 if allowed, else the seconds until the next one is."""
        now = self._clock()
        q = self._hits.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return max(0.001, q[0] + self.window_s - now)
        q.append(now)
        return 0.0


# ----------------------------------------------------------------------------- errors, context
class AdminError(Exception):
    """A refusal with an HTTP status and a stable code; the body is ``{"error", "detail"}``."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


@dataclass(slots=True)
class Call:
    """What a handler gets: the parsed request and who made it."""

    request: web.Request
    actor: str
    body: dict[str, Any]
    query: dict[str, str]


Handler = Callable[[Call], Awaitable[Any]]


def redact(obj: Any) -> Any:
    """A copy with secret-named fields replaced by ``****`` (what payload hashes cover)."""
    if isinstance(obj, Mapping):
        return {k: ("****" if any(s in str(k).lower() for s in _SECRET_FIELDS) and v not in (None, "") else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def payload_hash(obj: Any) -> str:
    """sha1 of the canonical JSON of the redacted payload (seed: ``sha1(sorted_json(body))``)."""
    return hashlib.sha1(artifacts.canonical_json(redact(obj)).encode("ascii")).hexdigest()


def scrub(obj: Any, secrets: list[str]) -> Any:
    """Replace every occurrence of a live secret in strings (keys too) with ``****``."""
    if not secrets:
        return obj
    if isinstance(obj, str):
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, "****")
        return obj
    if isinstance(obj, Mapping):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, secrets) for v in obj]
    return obj


# ----------------------------------------------------------------------------- schemas
def _obj(props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        out["required"] = list(required)
    return out


_EMPTY = _obj({})
_PATH = {"type": "string", "description": "a file path on the service's machine (ASCII)"}
_TS = {"type": "string", "description": "UTC ISO-8601"}

ADMIN_ROUTES: tuple[Route, ...] = (
    Route("GET", "/admin/selfcheck", "selfcheck", "SRE self-check: artifacts dir and alerts log writable, loop heartbeats "
          "fresh (SELFCHK_LOOP_MAX_AGE_SEC), event-loop drift (SELFCHK_DRIFT_MAX_MS), admin p50 (SELFCHK_ADMIN_P50_MS)",
          extra_status=(503,),
          response=_obj({"status": {"enum": ["ok", "fail"]}, "reasons": {"type": "array"}, "ts": _TS,
                         "artifacts_dir": {"type": "string"}, "loops": {"type": "array"},
                         "checks": {"type": "object"}}, ("status", "reasons", "ts", "artifacts_dir", "loops"), True)),
    Route("GET", "/admin/perf/snapshot", "perf_snapshot", "Loop tick percentiles, decision latency, event-loop drift and "
          "admin latency buckets",
          response=_obj({"loops": {"type": "object"}, "event_loop_drift_ms": {"type": "number"},
                         "admin_latency_buckets": {"type": "object"}}, ("event_loop_drift_ms", "admin_latency_buckets"), True)),
    Route("GET", "/admin/killswitch", "killswitch_get", "Kill switch state"),
    Route("POST", "/admin/killswitch", "killswitch_post", "Pause quoting, resume, or flatten (cancel all, then close positions); "
          "cancels happen before the answer",
          body=_obj({"action": {"enum": ["pause", "resume", "flatten"]}, "reason": {"type": "string", "maxLength": 200}},
                    ("action",)), body_required=True),
    Route("GET", "/admin/config", "config_get", "The running config, sanitized (no secrets), with cfg_hash"),
    Route("POST", "/admin/config/reload", "config_reload", "Validate a config fully, then swap atomically; an invalid config "
          "is refused with its E_CFG_* errors and the running config stays",
          body=_obj({"path": _PATH})),
    Route("POST", "/admin/thresholds/reload", "thresholds_reload", "Hot-reload the thresholds YAML (STRICT_THRESHOLDS=1: "
          "unknown keys and bad values are errors)",
          body=_obj({"path": _PATH}, ("path",)), body_required=True,
          response=_obj({"global_keys": {"type": "integer"}, "per_symbol_count": {"type": "integer"},
                         "symbols": {"type": "array", "items": {"type": "string"}}, "version": {"type": "integer"}},
                        ("global_keys", "per_symbol_count", "symbols"), True)),
    Route("GET", "/admin/thresholds/snapshot", "thresholds_snapshot", "The thresholds in effect (merged per symbol)"),
    Route("GET", "/admin/throttle/snapshot", "throttle_snapshot", "Throttle state: windows, backoff, events"),
    Route("POST", "/admin/throttle/load", "throttle_load", "Load throttle state (a snapshot payload)",
          body={"type": "object"}, body_required=True),
    Route("POST", "/admin/throttle/reset", "throttle_reset", "Reset throttle state", body=_EMPTY),
    Route("GET", "/admin/anti-stale-guard", "anti_stale_get", "Anti-stale guard status and settings"),
    Route("POST", "/admin/anti-stale-guard", "anti_stale_post", "Change the anti-stale guard on every order manager at once "
          "(any of enabled, order_ttl_ms, price_drift_bps); answers the new settings",
          body=_obj({"enabled": {"type": "boolean"}, "order_ttl_ms": {"type": "integer", "minimum": 0},
                     "price_drift_bps": {"type": "number", "minimum": 0}}), body_required=True),
    Route("GET", "/admin/alerts/log", "alerts_log", "The last N alerts from alerts.log",
          query=(Param("tail", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "how many alerts"),)),
    Route("POST", "/admin/alerts/clear", "alerts_clear", "Clear the alerts log", body=_EMPTY),
    Route("GET", "/admin/positions", "positions", "Positions, PnL and exposure per symbol"),
    Route("GET", "/admin/orders", "orders", "Open orders"),
    Route("GET", "/admin/allocator", "allocator", "Allocator snapshot: weights, targets, stages"),
    Route("GET", "/admin/execution/recorder/status", "recorder_status", "Execution recorder: {enabled, last_write_ts, file}"),
    Route("POST", "/admin/execution/recorder/rotate", "recorder_rotate", "Start a new recorder file: {ok, file}", body=_EMPTY),
    Route("POST", "/admin/execution/replay", "execution_replay", "Replay a recorder file (exe_YYYYmmdd.jsonl): count fills "
          "and rejects per symbol and color, paced by speed (1x, 10x: the ts gaps, capped; max: none)",
          body=_obj({"path": _PATH, "speed": {"enum": list(REPLAY_SPEEDS), "default": "max"}}, ("path",)),
          body_required=True,
          response=_obj({"events_total": {"type": "integer"}, "fills": {"type": "integer"},
                         "rejects": {"type": "integer"}, "by_symbol": {"type": "object"}},
                        ("events_total", "fills", "rejects", "by_symbol"), True)),
    Route("GET", "/admin/audit/log", "audit_log", "The in-memory ring of the last 1000 admin calls"),
    Route("POST", "/admin/auth/rotate", "auth_rotate", "Rotate admin tokens: {\"token\": NEW} makes NEW primary and keeps the "
          "old primary as secondary; {\"drop_secondary\": true} ends the grace period",
          body=_obj({"token": {"type": "string", "minLength": MIN_TOKEN_LEN}, "drop_secondary": {"type": "boolean"}}),
          body_required=True),
    Route("GET", "/admin/openapi.json", "openapi", "This OpenAPI document"),
)


# ----------------------------------------------------------------------------- the API
class AdminApi:
    """Handlers for ``ADMIN_ROUTES`` plus the pipeline that wraps each of them."""

    def __init__(
        self,
        service: ServiceApi,
        *,
        audit_path: str | os.PathLike[str],
        metrics: LiveMetrics,
        thresholds: ThresholdsStore | None = None,
        settings: AdminSettings | None = None,
        auth: TokenAuth | None = None,
        clock: Callable[[], float] = time.monotonic,
        routes: Callable[[], tuple[Route, ...]] = lambda: ADMIN_ROUTES,
    ) -> None:
        self.service = service
        self.settings = settings or AdminSettings.from_env()
        self.auth = auth or TokenAuth.from_env()
        self.metrics = metrics
        self.thresholds = thresholds or ThresholdsStore()
        self.chain = audit.AuditLog(audit_path)  # key from ADMIN_AUDIT_HMAC_KEY
        self.ring: deque[dict[str, Any]] = deque(maxlen=RING_SIZE)
        self.limiter = RateLimiter(self.settings.rate_limit, self.settings.rate_window_s, clock)
        self._noise = RateLimiter(NOISE_AUDIT_PER_WINDOW, self.settings.rate_window_s, clock)
        self._routes = routes

    # ---- start-up
    def announce(self, host: str) -> None:
        """Say loudly, on every start, when the admin API is open or locked; refuse weak tokens."""
        weak = self.auth.weak_slots()
        if weak:
            raise MmkitError("E_ADMIN_TOKEN_WEAK", f"{' and '.join(weak)} shorter than {MIN_TOKEN_LEN} chars; "
                             "use e.g. `openssl rand -hex 24`")
        if self.settings.auth_disabled:
            if not _is_loopback(host):
                raise MmkitError("E_ADMIN_AUTH_DISABLED_PUBLIC", f"ADMIN_AUTH_DISABLED=1 with --host {host}: refusing to "
                                 "serve an unauthenticated admin API beyond loopback; unset it or bind 127.0.0.1")
            for _ in range(3):
                log.warning("ADMIN_AUTH_DISABLED", detail="ADMIN_AUTH_DISABLED=1: /admin/* accepts requests WITHOUT a token; "
                            "never run like this outside a dev box")
            self.service.alert("admin_auth_disabled", {"host": host})
        elif not self.auth.configured:
            log.warning("admin_api_locked", detail="neither ADMIN_TOKEN_PRIMARY nor ADMIN_TOKEN_SECONDARY is set: "
                        "every /admin/* call will get 401")
        key = os.environ.get(audit.KEY_ENV, "")
        if key and len(key) < MIN_TOKEN_LEN:
            log.warning("audit_hmac_key_short", detail=f"{audit.KEY_ENV} is shorter than {MIN_TOKEN_LEN} chars")

    def secrets(self) -> list[str]:
        """What responses, request bodies and log details are scrubbed of (8+ chars: a
        shorter string would mangle ordinary text, and tokens are refused under 16)."""
        key = os.environ.get(audit.KEY_ENV, "")
        return [s for s in self.auth.secrets() + [key] if len(s) >= 8]

    # ---- the pipeline
    def wrap(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        handler: Handler = getattr(self, route.handler)
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"route {route.method} {route.path}: {route.handler} is not an async handler")

        async def run(request: web.Request) -> web.StreamResponse:
            t0 = time.perf_counter()
            token = request.headers.get(TOKEN_HEADER)
            actor = actor_id(token) if token else "anonymous"
            payload: Any = {}
            headers: dict[str, str] = {}
            authed = quiet = False
            try:
                if not self.settings.auth_disabled and not self.auth.check(token):
                    self.metrics.admin_unauthorized.inc()
                    quiet = self._noise.hit("refused") > 0
                    if not quiet:
                        log.warning("admin_unauthorized", endpoint=route.path, actor=actor, reason="wrong" if token else "missing")
                    raise AdminError(401, "E_ADMIN_UNAUTHORIZED", f"missing or wrong {TOKEN_HEADER} header")
                authed = True
                wait = self.limiter.hit((actor, route.path))
                if wait:
                    self.metrics.admin_rate_limited.labels(endpoint=route.path).inc()
                    quiet = self._noise.hit("refused") > 0
                    if not quiet:
                        log.warning("admin_rate_limited", endpoint=route.path, actor=actor)
                    raise AdminError(429, "E_ADMIN_RATE_LIMITED", f"more than {self.limiter.limit} requests in "
                                     f"{self.limiter.window_s:g} s for {route.path}; retry in {wait:.1f} s",
                                     {"Retry-After": str(max(1, int(wait + 0.999)))})
                query = _ascii_query(request)
                body = await _read_body(request) if route.method != "GET" else {}
                payload = body if route.method != "GET" else query
                if route.handler != "auth_rotate":  # the one route that must see a token
                    body, query = scrub(body, self.secrets()), scrub(query, self.secrets())
                status, out = 200, await handler(Call(request, actor, body, query))
                if isinstance(out, tuple):
                    status, out = out
            except AdminError as exc:
                status, out, headers = exc.status, {"error": exc.code, "detail": exc.detail}, exc.headers
            except ConfigError as exc:
                status, out = 400, {"error": exc.code, "detail": exc.message,
                                    "problems": [{"code": c, "path": p, "message": m} for c, p, m in exc.problems]}
            except MmkitError as exc:
                status, out = 400, {"error": exc.code, "detail": exc.message}
            except Exception as exc:  # a bug in a handler or the service: log it, leak nothing
                log.error("admin_internal_error", endpoint=route.path, error=type(exc).__name__,
                          detail=scrub(str(exc), self.secrets())[:300])
                status, out = 500, {"error": "E_ADMIN_INTERNAL", "detail": f"internal error ({type(exc).__name__}); see the service log"}
            if authed:  # refused tokens only count in admin_unauthorized_total: no per-endpoint series for them
                self.metrics.observe_admin(route.path, (time.perf_counter() - t0) * 1000.0)
            await self._audit(route, actor, payload, status, quiet)
            if self.settings.auth_disabled:
                headers["X-Admin-Auth"] = "DISABLED"
            return json_response(scrub(out, self.secrets()), status, headers)

        run.__name__ = f"admin_{route.handler}"
        return run

    async def _audit(self, route: Route, actor: str, payload: Any, status: int, quiet: bool = False) -> None:
        """Ring + chain; ``quiet`` (a flood of 401/429 past the per-window cap): ring only."""
        entry: dict[str, Any] = {"ts": utc_now_iso(), "endpoint": route.path, "method": route.method, "actor": actor,
                                 "payload_hash": payload_hash(payload), "status": status}
        reason = payload.get("reason") if isinstance(payload, dict) and status == 200 else None
        if isinstance(reason, str) and reason:  # the operator's why (kill switch), kept readable
            entry["reason"] = log.to_ascii(scrub(reason, self.secrets()))[:200]
        if quiet:
            entry["audit_seq"] = None  # the metrics still count every refusal
        else:
            try:
                written = await asyncio.to_thread(self.chain.append, AUDIT_KIND, entry)
                entry["audit_seq"] = written["seq"]
                self.metrics.admin_audit_events.inc()
            except MmkitError as exc:
                entry["audit_seq"] = None
                log.error("admin_audit_write_failed", endpoint=route.path, error=exc.code)
        self.ring.append(entry)

    # ---- handlers: health and performance
    async def selfcheck(self, call: Call) -> tuple[int, dict[str, Any]]:
        s = self.settings
        art = Path(self.service.artifacts_dir)
        checks: dict[str, dict[str, Any]] = {"artifacts_dir_write": _check_artifacts_dir(art),
                                             "alerts_log_writable": _check_alerts_log(art / "alerts.log")}
        beats = {name: round(float(age), 3) for name, age in sorted(self.service.heartbeats().items())}
        stale = sorted(n for n, age in beats.items() if age > s.loop_max_age_s)
        checks["loops_heartbeats_fresh"] = {"ok": not stale, "max_age_sec": s.loop_max_age_s, "stale": stale}
        drift = float(self.service.loop_drift_ms())
        checks["event_loop_drift"] = {"ok": drift <= s.drift_max_ms, "drift_ms": round(drift, 3), "max_ms": s.drift_max_ms}
        p50 = self.metrics.admin_latency_quantile_ms("/admin/selfcheck", 0.5)
        checks["admin_latency_budget"] = {"ok": p50 is None or p50 <= s.admin_p50_ms, "max_p50_ms": s.admin_p50_ms,
                                          "p50_ms": None if p50 is None or p50 == float("inf") else p50,
                                          "p50_over_max_bucket": p50 == float("inf")}
        reasons = [name for name, c in checks.items() if not c["ok"]]
        body = {"status": "fail" if reasons else "ok", "reasons": reasons, "ts": utc_now_iso(),
                "artifacts_dir": str(art), "loops": [{"name": n, "age_sec": a} for n, a in beats.items()], "checks": checks}
        return (503 if reasons else 200), body

    async def perf_snapshot(self, call: Call) -> dict[str, Any]:
        body = dict(self.service.perf_snapshot())
        body["event_loop_drift_ms"] = float(self.service.loop_drift_ms())
        body["admin_latency_buckets"] = self.metrics.admin_latency_buckets()
        return body

    # ---- handlers: operator controls
    async def killswitch_get(self, call: Call) -> Any:
        return self.service.killswitch_state()

    async def killswitch_post(self, call: Call) -> Any:
        _only(call.body, ("action", "reason"))
        action = call.body.get("action")
        if action not in ("pause", "resume", "flatten"):
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", 'body needs {"action": "pause"|"resume"|"flatten"}')
        if "reason" in call.body and not isinstance(call.body["reason"], str):
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", '"reason" must be a string')
        return await self.service.killswitch(action, call.actor)

    async def config_get(self, call: Call) -> Any:
        return self.service.config_snapshot()

    async def config_reload(self, call: Call) -> Any:
        _only(call.body, ("path",))
        path = call.body.get("path")
        if path is not None and (not isinstance(path, str) or not path):
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", '"path" must be a non-empty string (or omitted: reload the same file)')
        return self.service.reload_config(path, call.actor)

    async def thresholds_reload(self, call: Call) -> Any:
        _only(call.body, ("path",))
        path = call.body.get("path")
        if not isinstance(path, str) or not path:
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", 'body needs {"path": ".../thresholds.yaml"}')
        try:
            new = self.thresholds.reload(path, strict_from_env())
        except MmkitError:
            self.metrics.thresholds_reload.labels(result="failed").inc()
            raise
        self.metrics.thresholds_reload.labels(result="ok").inc()
        self.metrics.thresholds_version.set(new.version)
        warnings = scrub(list(new.warnings), self.secrets())  # key names come from the file
        for w in warnings:
            log.warning("thresholds_fallback", detail=w)
        if warnings:
            self.service.alert("thresholds_fallback", {"path": path, "warnings": warnings[:20]})
        return new.summary()

    async def thresholds_snapshot(self, call: Call) -> Any:
        return self.thresholds.current.snapshot()

    async def throttle_snapshot(self, call: Call) -> Any:
        return self.service.throttle_snapshot()

    async def throttle_load(self, call: Call) -> Any:
        if not call.body:
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", "body must be the throttle snapshot payload (a non-empty object)")
        return self.service.throttle_load(call.body, call.actor)

    async def throttle_reset(self, call: Call) -> Any:
        _only(call.body, ())
        return self.service.throttle_reset(call.actor)

    async def anti_stale_get(self, call: Call) -> Any:
        return self.service.anti_stale_guard()

    async def anti_stale_post(self, call: Call) -> Any:
        _only(call.body, ANTI_STALE_FIELDS)
        if not call.body:
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", f"body needs any of {', '.join(ANTI_STALE_FIELDS)}")
        return self.service.set_anti_stale_guard(call.body, call.actor)  # the service checks the values

    # ---- handlers: alerts, state, recorder
    async def alerts_log(self, call: Call) -> Any:
        raw = call.query.get("tail", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", "tail must be an integer in [1, 1000]")
        rows = self.service.alerts_tail(int(raw))
        return {"tail": int(raw), "count": len(rows), "alerts": rows}

    async def alerts_clear(self, call: Call) -> Any:
        _only(call.body, ())
        return {"cleared": int(self.service.alerts_clear(call.actor))}

    async def positions(self, call: Call) -> Any:
        return self.service.positions()

    async def orders(self, call: Call) -> Any:
        rows = self.service.orders()
        return {"count": len(rows), "orders": rows}

    async def allocator(self, call: Call) -> Any:
        return self.service.allocator_snapshot()

    async def recorder_status(self, call: Call) -> Any:
        return self.service.recorder_status()

    async def recorder_rotate(self, call: Call) -> Any:
        _only(call.body, ())
        return self.service.recorder_rotate(call.actor)

    async def execution_replay(self, call: Call) -> Any:
        _only(call.body, ("path", "speed"))
        path = call.body.get("path")
        speed = call.body.get("speed", "max")
        if not isinstance(path, str) or not path:
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", 'body needs {"path": ".../exe_YYYYmmdd.jsonl"}')
        if not isinstance(speed, str) or speed not in REPLAY_SPEEDS:
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", f'"speed" must be one of {", ".join(REPLAY_SPEEDS)}')
        return await self.service.execution_replay(path, speed, call.actor)

    # ---- handlers: audit, docs, auth
    async def audit_log(self, call: Call) -> Any:
        return {"count": len(self.ring), "capacity": RING_SIZE, "entries": list(self.ring)}

    async def openapi(self, call: Call) -> Any:
        return build_document(self._routes())

    async def auth_rotate(self, call: Call) -> Any:
        _only(call.body, ("token", "drop_secondary"))
        new = call.body.get("token")
        drop = call.body.get("drop_secondary", False)
        if new is None and drop is not True:
            raise AdminError(400, "E_ADMIN_BAD_REQUEST", 'body needs {"token": NEW} or {"drop_secondary": true}')
        if new is not None:
            if not isinstance(new, str) or len(new) < MIN_TOKEN_LEN or not new.isascii() \
                    or not new.isprintable() or " " in new:
                raise AdminError(400, "E_ADMIN_TOKEN_WEAK", f"a new token must be >= {MIN_TOKEN_LEN} printable "
                                 "ASCII chars without spaces")
            self.auth.rotate(new)
        if drop is True:
            self.auth.drop_secondary()
        actors = self.auth.actors()
        log.info("admin_token_rotated", by=call.actor, primary=actors["primary"], secondary=actors["secondary"])
        return {"ok": True, "primary_actor": actors["primary"], "secondary_actor": actors["secondary"]}


# ----------------------------------------------------------------------------- helpers
def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A deterministic ASCII JSON response (canonical JSON + LF)."""
    return web.Response(body=artifacts.canonical_bytes(obj), status=status, headers=dict(headers or {}),
                        content_type="application/json")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _only(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(k for k in body if k not in allowed)
    if extra:
        known = ", ".join(allowed) if allowed else "none (send {} or no body)"
        raise AdminError(400, "E_ADMIN_BAD_REQUEST", f"unknown field(s) {', '.join(extra)[:200]}; known: {known}")


def _ascii_query(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if not (key.isascii() and value.isascii()):
            raise AdminError(400, "E_ADMIN_NON_ASCII", "query string must be ASCII")
        out[key] = value
    return out


async def _read_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: <= 1 MiB (413), ASCII and valid JSON (400); empty -> {}."""
    too_big = AdminError(413, "E_ADMIN_BODY_TOO_LARGE", f"request body is larger than {MAX_BODY_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_big
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AdminError(400, "E_ADMIN_NON_ASCII", f"body has a non-ASCII byte at offset {exc.start}; "
                         "send ASCII JSON (escape other characters as \\uXXXX)") from exc
    try:
        obj = artifacts.parse_json(text, "body")
    except MmkitError as exc:
        raise AdminError(400, "E_ADMIN_BAD_JSON", exc.message) from exc
    if not isinstance(obj, dict):
        raise AdminError(400, "E_ADMIN_BAD_REQUEST", f"body must be a JSON object, got {type(obj).__name__}")
    return obj


def _check_artifacts_dir(art: Path) -> dict[str, Any]:
    probe = art / f".selfcheck.{os.getpid()}"
    try:
        artifacts.write_bytes(probe, b"selfcheck\n")
        probe.unlink()
        return {"ok": True}
    except (MmkitError, OSError) as exc:
        return {"ok": False, "detail": getattr(exc, "message", None) or str(exc)}


def _check_alerts_log(path: Path) -> dict[str, Any]:
    """Writable without writing: open for append (or check the folder when absent)."""
    try:
        if path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            os.close(fd)
        elif not os.access(path.parent if path.parent.exists() else path.parent.parent, os.W_OK | os.X_OK):
            return {"ok": False, "detail": f"cannot create {path}"}
        return {"ok": True}
    except OSError as exc:
        return {"ok": False, "detail": f"{path}: {exc.strerror or exc}"}
