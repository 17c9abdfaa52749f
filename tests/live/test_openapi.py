"""The OpenAPI document and the server come from one route table, so they cannot drift:
every route the aiohttp router serves is documented, and every documented operation is
served (and described in docs/admin-api.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from live.admin_support import FakeService, arun, call, live, setup_env
from mmkit.artifacts import canonical_json
from mmkit.live.http import all_routes, build_app
from mmkit.live.openapi import build_document
from support import ROOT

METHODS = {"get", "post", "put", "delete", "patch", "head", "options"}


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeService:
    return FakeService(tmp_path / "artifacts", setup_env(tmp_path, monkeypatch))


def _documented(doc: dict) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops if m in METHODS}


def test_router_and_document_list_the_same_routes(svc):
    app, _ = build_app(svc)
    served = {(r.method, r.resource.canonical) for r in app.router.routes()}
    doc = build_document(all_routes())
    assert served == _documented(doc)
    assert len(served) == len(all_routes())  # no duplicates in the table


def test_served_document_is_the_built_one(tmp_path, svc):
    async def body():
        async with live(tmp_path) as (_, s):
            st, js, raw = await call(s, "GET", "/admin/openapi.json")
            assert st == 200
            assert raw.decode("ascii") == canonical_json(build_document(all_routes())) + "\n"
            assert (await call(s, "GET", "/admin/openapi.json", token=None))[0] == 401

    arun(body())


def test_document_shape():
    doc = build_document(all_routes())
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["AdminToken"] == {"type": "apiKey", "in": "header", "name": "X-Admin-Token"}
    ids = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ids.append(op["operationId"])
            assert op["summary"] and op["summary"].isascii()
            assert "200" in op["responses"] and "500" in op["responses"]
            if path.startswith("/admin/"):
                assert op["security"] == [{"AdminToken": []}], path
                assert {"401", "429"} <= set(op["responses"]), path
            else:
                assert op["security"] == [], path
            if method == "post":
                assert {"400", "413"} <= set(op["responses"]) and "requestBody" in op, path
    assert len(ids) == len(set(ids))
    refs = re.findall(r'"\$ref":"#/components/schemas/([A-Za-z]+)"', canonical_json(doc))
    assert refs and set(refs) <= set(doc["components"]["schemas"])


def test_admin_api_doc_describes_every_route_with_a_curl_example():
    text = (ROOT / "docs" / "admin-api.md").read_text()
    for route in all_routes():
        heading = f"### {route.method} {route.path}"
        assert heading in text, f"docs/admin-api.md has no section '{heading}'"
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        assert "curl" in section and route.path.split("{")[0] in section, heading
