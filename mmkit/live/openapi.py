"""The route table type and the OpenAPI 3.1 document built from it.

Why one table: the server registers exactly the routes listed in ``http.PUBLIC_ROUTES`` and
``admin.ADMIN_ROUTES``, and ``/admin/openapi.json`` is generated from the same objects, so
the published API and the served API cannot drift (a test compares the document with the
aiohttp router).  This module is pure data: no aiohttp, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmkit import __version__

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "stable error code, e.g. E_ADMIN_UNAUTHORIZED or E_CFG_UNKNOWN_KEY"},
        "detail": {"type": "string", "description": "one ASCII line saying what was wrong"},
        "problems": {"type": "array", "items": {"type": "object"}, "description": "every config problem (config reload)"},
    },
}

_STATUS_TEXT = {
    200: "OK",
    400: "Bad request: non-ASCII body, invalid JSON, wrong field, or the operation was refused (error names the code)",
    401: "Missing or wrong X-Admin-Token (admin_unauthorized_total)",
    404: "No such route",
    413: "Request body over 1 MiB",
    429: "More than 60 requests in 60 s for this (actor, endpoint) (admin_rate_limited_total); see Retry-After",
    500: "Internal error (logged; no details leak)",
    503: "Not ready / check failed",
}


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter."""

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP route: what the server registers and what the OpenAPI document says.

    ``handler`` is the name of the method on the handler object (``AdminApi`` or
    ``PublicApi``) so the table can be a module constant.
    """

    method: str
    path: str
    handler: str
    summary: str
    auth: bool = True
    body: dict[str, Any] | None = None  # JSON Schema of the request body (None = no body)
    body_required: bool = False
    query: tuple[Param, ...] = ()
    response: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    content_type: str = "application/json"
    extra_status: tuple[int, ...] = ()
    tag: str = "admin"

    @property
    def operation_id(self) -> str:
        parts = [p for p in self.path.strip("/").replace("-", "_").replace(".", "_").split("/") if p]
        return self.method.lower() + "_" + "_".join(parts)

    def statuses(self) -> tuple[int, ...]:
        codes = {200, 500, *self.extra_status}
        if self.auth:
            codes |= {401, 429}
        if self.body is not None:
            codes |= {400, 413}
        if self.query:
            codes.add(400)
        return tuple(sorted(codes))


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary, "tags": [route.tag]}
    op["security"] = [{"AdminToken": []}] if route.auth else []
    if route.query:
        op["parameters"] = [
            {"name": p.name, "in": "query", "required": p.required, "description": p.description, "schema": p.schema}
            for p in route.query
        ]
    if route.body is not None:
        op["requestBody"] = {"required": route.body_required,
                             "content": {"application/json": {"schema": route.body}}}
    responses: dict[str, Any] = {}
    for code in route.statuses():
        if code in (200, 503) and route.content_type != "application/json":
            responses[str(code)] = {"description": _STATUS_TEXT[code],
                                    "content": {route.content_type: {"schema": {"type": "string"}}}}
        elif code in (200, 503):
            responses[str(code)] = {"description": _STATUS_TEXT[code],
                                    "content": {"application/json": {"schema": route.response}}}
        else:
            responses[str(code)] = {"description": _STATUS_TEXT[code],
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    op["responses"] = responses
    return op


def build_document(routes: list[Route] | tuple[Route, ...]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes`` (deterministic: paths and methods sorted)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda r: (r.path, r.method)):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mmkit live service",
            "version": __version__,
            "description": "Metrics, health and the authenticated admin API of `mmkit run` (docs/admin-api.md). "
                           "Admin calls need X-Admin-Token, are rate-limited to 60 per 60 s per (actor, endpoint), "
                           "take ASCII JSON bodies of at most 1 MiB and are audited.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "components": {
            "securitySchemes": {"AdminToken": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "paths": paths,
    }
