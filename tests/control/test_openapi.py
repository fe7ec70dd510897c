"""The OpenAPI document describes every control-plane route, typed and tagged, and is shown only to
authenticated callers unless configured public."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.control.client import Control, control, message
from tests.harness import settings

ROUTES = {
    ("post", "/auth/login"),
    ("post", "/auth/refresh"),
    ("post", "/auth/logout"),
    ("get", "/auth/identity-providers"),
    ("get", "/auth/oidc/{name}/login"),
    ("get", "/auth/oidc/{name}/callback"),
    ("get", "/me"),
    ("post", "/me/password"),
    ("get", "/me/models"),
    ("get", "/me/tokens"),
    ("post", "/me/tokens"),
    ("delete", "/me/tokens/{token_id}"),
    ("get", "/admin/status"),
    ("get", "/admin/users"),
    ("post", "/admin/users"),
    ("get", "/admin/users/{user}"),
    ("patch", "/admin/users/{user}"),
    ("delete", "/admin/users/{user}"),
    ("get", "/admin/groups"),
    ("post", "/admin/groups"),
    ("get", "/admin/groups/{group}"),
    ("patch", "/admin/groups/{group}"),
    ("delete", "/admin/groups/{group}"),
    ("post", "/admin/groups/{group}/members"),
    ("delete", "/admin/groups/{group}/members/{user}"),
    ("get", "/admin/permissions"),
    ("get", "/admin/users/{user}/permissions"),
    ("post", "/admin/users/{user}/permissions"),
    ("delete", "/admin/users/{user}/permissions/{permission}"),
    ("get", "/admin/groups/{group}/permissions"),
    ("post", "/admin/groups/{group}/permissions"),
    ("delete", "/admin/groups/{group}/permissions/{permission}"),
    ("get", "/admin/models"),
    ("post", "/admin/models"),
    ("get", "/admin/models/{name}"),
    ("patch", "/admin/models/{name}"),
    ("delete", "/admin/models/{name}"),
    ("post", "/admin/models/{name}/assign"),
    ("post", "/admin/models/{name}/unassign"),
    ("get", "/admin/tokens"),
    ("post", "/admin/tokens"),
    ("get", "/admin/tokens/{token_id}"),
    ("patch", "/admin/tokens/{token_id}"),
    ("delete", "/admin/tokens/{token_id}"),
    ("get", "/admin/secrets"),
    ("post", "/admin/secrets"),
    ("get", "/admin/secrets/{name}"),
    ("patch", "/admin/secrets/{name}"),
    ("delete", "/admin/secrets/{name}"),
    ("post", "/admin/secrets/rotate"),
    ("get", "/admin/usage/summary"),
    ("get", "/admin/usage/summary.csv"),
    ("get", "/admin/usage/costs"),
    ("get", "/admin/usage/latency"),
    ("get", "/me/usage"),
    ("get", "/admin/audit-logs"),
    ("get", "/admin/audit-logs.csv"),
    ("get", "/admin/audit-logs/{request_id}"),
    ("get", "/admin/audit-trail"),
    ("get", "/admin/audit-trail/verify"),
    ("get", "/admin/budgets"),
    ("post", "/admin/budgets"),
    ("get", "/admin/budgets/{budget}"),
    ("patch", "/admin/budgets/{budget}"),
    ("delete", "/admin/budgets/{budget}"),
    ("post", "/admin/budgets/{budget}/reset"),
    ("get", "/admin/limits"),
    ("post", "/admin/limits"),
    ("get", "/admin/limits/{limit}"),
    ("patch", "/admin/limits/{limit}"),
    ("delete", "/admin/limits/{limit}"),
    ("get", "/admin/rules"),
    ("post", "/admin/rules"),
    ("get", "/admin/rules/{rule}"),
    ("patch", "/admin/rules/{rule}"),
    ("delete", "/admin/rules/{rule}"),
    ("post", "/admin/rules/test"),
    ("get", "/admin/cache"),
    ("post", "/admin/cache/invalidate"),
}


@pytest.fixture
async def api() -> AsyncIterator[Control]:
    async with control(settings()) as client:
        yield client


async def test_the_document_lists_every_route(api: Control) -> None:
    resp = await api.get("/admin/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["info"]["title"] == "Waypost control plane"
    listed = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert listed == ROUTES


async def test_every_operation_is_tagged_and_its_answer_typed(api: Control) -> None:
    doc = (await api.get("/admin/openapi.json")).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("tags"), (method, path)
            success = next(code for code in op["responses"] if code.startswith(("2", "3")))
            if success in ("204", "302"):
                continue
            content = op["responses"][success]["content"]
            if "text/csv" in content:  # an export: a CSV body, not JSON
                continue
            schema = content["application/json"]["schema"]
            assert "$ref" in schema or schema.get("type"), (method, path, schema)


async def test_the_docs_page_is_served(api: Control) -> None:
    resp = await api.get("/admin/docs")
    assert resp.status_code == 200
    assert "/admin/openapi.json" in resp.text


@pytest.mark.parametrize("path", ["/admin/openapi.json", "/admin/docs"])
@pytest.mark.parametrize("token", [None, "wp-not-a-real-token-0000000000"])
async def test_the_docs_need_credentials(api: Control, path: str, token: str | None) -> None:
    resp = await api.get(path, token=token)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert message(resp)
    assert "paths" not in resp.text


async def test_any_signed_in_person_may_read_the_docs(api: Control) -> None:
    bob = await api.person("bob@example.com")  # no permissions at all
    assert (await api.get("/admin/openapi.json", token=bob.token)).status_code == 200
    assert (await api.get("/admin/docs", token=bob.token)).status_code == 200


async def test_docs_configured_public_need_no_credentials() -> None:
    async with control(settings(server={"public_api_docs": True})) as api:
        document = await api.get("/admin/openapi.json", token=None)
        page = await api.get("/admin/docs", token=None)
        users = await api.get("/admin/users", token=None)
    assert document.status_code == 200 and document.json()["info"]["title"] == "Waypost control plane"
    assert page.status_code == 200
    assert users.status_code == 401  # the API itself still needs credentials


async def test_errors_are_documented_in_the_shape_they_are_sent(api: Control) -> None:
    doc = (await api.get("/admin/openapi.json")).json()
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)
            for code in ("400", "401", "403"):
                if code in op["responses"]:
                    assert op["responses"][code]["content"]["application/json"]["schema"] == error
    assert (await api.post("/admin/users", {})).status_code == 400
