"""The live service's HTTP surface (aiohttp): ``/metrics``, health checks and the admin API.

Why a separate module from the service: the service knows trading, this knows HTTP.  The
only contract between them is ``ServiceApi`` (``mmkit.live.api``); ``start_http`` binds a
loopback port by default, registers exactly the routes of ``PUBLIC_ROUTES`` and
``admin.ADMIN_ROUTES`` (the same tables ``/admin/openapi.json`` is built from) and returns
an ``HttpServer`` handle whose ``port`` is the bound one (``port=0`` picks a free port, as
the tests do).

Public routes need no token and change nothing: ``GET /metrics`` (prometheus-client
exposition of ``service.registry``, content-negotiated like prometheus-client's own
server), ``GET /healthz`` (liveness; 503 only when the service says ``fail``),
``GET /readyz`` and ``GET /healthz/{orders,risk,connectors}`` (200 when ready/healthy,
else 503).  Every body is canonical ASCII JSON; unknown paths get a JSON 404.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from mmkit import audit, log
from mmkit.errors import MmkitError
from mmkit.live.admin import ADMIN_ROUTES, MAX_BODY_BYTES, AdminApi, AdminSettings, TokenAuth, json_response, scrub
from mmkit.live.api import ServiceApi
from mmkit.live.metrics import LiveMetrics
from mmkit.live.openapi import Route
from mmkit.live.thresholds import ThresholdsStore

COMPONENTS = ("orders", "risk", "connectors")
_HEALTH_BODY = {"type": "object", "properties": {"status": {"type": "string"}}, "additionalProperties": True}

PUBLIC_ROUTES: tuple[Route, ...] = (
    Route("GET", "/metrics", "metrics", "Prometheus exposition of the service registry (text 0.0.4, or OpenMetrics "
          "when the Accept header asks for it)", auth=False, content_type="text/plain", tag="public"),
    Route("GET", "/healthz", "healthz", "Liveness: 200 while the process serves (status ok|degraded), 503 on fail",
          auth=False, extra_status=(503,), response=_HEALTH_BODY, tag="public"),
    Route("GET", "/readyz", "readyz", "Readiness: 200 once the service trades (data flowing, venue connected), else 503",
          auth=False, extra_status=(503,), response=_HEALTH_BODY, tag="public"),
    *(Route("GET", f"/healthz/{c}", f"health_{c}", f"Health of the {c} component: 200 healthy, 503 not",
            auth=False, extra_status=(503,), response=_HEALTH_BODY, tag="public") for c in COMPONENTS),
)


def all_routes() -> tuple[Route, ...]:
    """Every route the server registers (and the OpenAPI document lists)."""
    return PUBLIC_ROUTES + ADMIN_ROUTES


class PublicApi:
    """Handlers for ``PUBLIC_ROUTES``."""

    def __init__(self, service: ServiceApi, metrics: LiveMetrics, secrets: Callable[[], list[str]]) -> None:
        self.service = service
        self.live = metrics
        self._secrets = secrets

    def wrap(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        handler = getattr(self, route.handler)
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"route {route.method} {route.path}: {route.handler} is not an async handler")

        async def run(request: web.Request) -> web.StreamResponse:
            self.live.on_http(route.path)
            try:
                out = await handler(request)
            except Exception as exc:  # the service failed to answer: say so, leak nothing
                log.error("http_internal_error", endpoint=route.path, error=type(exc).__name__,
                          detail=scrub(str(exc), self._secrets())[:300])
                return json_response({"error": "E_HTTP_INTERNAL", "detail": f"internal error ({type(exc).__name__})"}, 500)
            if isinstance(out, web.StreamResponse):
                return out
            status, body = out
            return json_response(scrub(body, self._secrets()), status)

        run.__name__ = f"public_{route.handler}"
        return run

    async def metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encoder(self.service.registry), headers={"Content-Type": content_type})

    async def healthz(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        body = dict(self.service.health())
        body.setdefault("uptime_s", round(float(self.service.uptime_s()), 3))
        return (503 if body.get("status") == "fail" else 200), body

    async def readyz(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        ok, body = self.service.ready()
        return (200 if ok else 503), {"ready": bool(ok), **body}

    async def _component(self, name: str) -> tuple[int, dict[str, Any]]:
        ok, body = self.service.health_component(name)
        return (200 if ok else 503), {"component": name, "ok": bool(ok), **body}

    async def health_orders(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        return await self._component("orders")

    async def health_risk(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        return await self._component("risk")

    async def health_connectors(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        return await self._component("connectors")


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Router-level refusals (404 unknown path, 405 wrong method) as JSON like every other answer."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status in (404, 405):
            code = "E_HTTP_NOT_FOUND" if exc.status == 404 else "E_HTTP_METHOD"
            detail = "no such route; GET /admin/openapi.json lists them" if exc.status == 404 else f"{request.method} not allowed here"
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            return json_response({"error": code, "detail": detail}, exc.status, headers)
        raise


@dataclass(slots=True)
class HttpServer:
    """A running HTTP server: ``url``, the bound ``port``, the admin state, ``close()``."""

    host: str
    port: int
    admin: AdminApi
    _runner: web.AppRunner

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop accepting, finish in-flight requests (bounded), release the port."""
        await self._runner.cleanup()


def _live_metrics(service: ServiceApi, metrics: LiveMetrics | None) -> LiveMetrics:
    found = metrics if metrics is not None else getattr(service, "metrics", None)
    if isinstance(found, LiveMetrics):
        return found
    raise MmkitError("E_HTTP_NO_METRICS", "the service has no LiveMetrics (service.metrics); pass metrics= to start_http")


def build_app(service: ServiceApi, *, metrics: LiveMetrics | None = None, audit_path: str | os.PathLike[str] | None = None,
              thresholds: ThresholdsStore | None = None, settings: AdminSettings | None = None,
              auth: TokenAuth | None = None) -> tuple[web.Application, AdminApi]:
    """The aiohttp application with every route of ``all_routes()`` (no socket yet)."""
    live = _live_metrics(service, metrics)
    store = thresholds if thresholds is not None else getattr(service, "thresholds", None)
    admin = AdminApi(
        service,
        audit_path=audit_path or Path(service.artifacts_dir) / audit.DEFAULT_LOG_NAME,
        metrics=live,
        thresholds=store if isinstance(store, ThresholdsStore) else None,
        settings=settings,
        auth=auth,
        routes=all_routes,
    )
    public = PublicApi(service, live, admin.secrets)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_json_errors])
    for route in all_routes():
        target = admin if route.path.startswith("/admin/") else public
        app.router.add_route(route.method, route.path, target.wrap(route))
    return app, admin


async def start_http(service: ServiceApi, host: str = "127.0.0.1", port: int = 8080, *,
                     metrics: LiveMetrics | None = None, audit_path: str | os.PathLike[str] | None = None,
                     thresholds: ThresholdsStore | None = None, settings: AdminSettings | None = None,
                     auth: TokenAuth | None = None) -> HttpServer:
    """Serve ``service`` on ``host:port`` (``port=0``: a free port) and return the handle.

    Admin settings and tokens come from the environment unless given.  The admin audit
    log defaults to ``<artifacts_dir>/audit.jsonl`` (what ``mmkit audit verify`` reads).
    """
    app, admin = build_app(service, metrics=metrics, audit_path=audit_path, thresholds=thresholds,
                           settings=settings, auth=auth)
    admin.announce(host)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    t0 = time.perf_counter()
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise MmkitError("E_HTTP_BIND", f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                         "pick another --port (0 = any free port)") from exc
    bound = int(runner.addresses[0][1])
    server = HttpServer(host, bound, admin, runner)
    log.info("http_listening", url=server.url, metrics=f"{server.url}/metrics", admin_auth=_auth_mode(admin),
             bind_ms=round((time.perf_counter() - t0) * 1000.0, 3))
    return server


def _auth_mode(admin: AdminApi) -> str:
    if admin.settings.auth_disabled:
        return "DISABLED"
    return "token" if admin.auth.configured else "locked"
