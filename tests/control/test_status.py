"""GET /admin/status: ok when configured safely, degraded naming each unsafe setting."""

from __future__ import annotations

from typing import Any

from tests.control.client import control
from tests.harness import model, settings
from waypost.security.crypto import generate_key
from waypost.security.generated_secrets import secrets_file_path


def checks(body: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["ok"] for c in body["checks"]}


async def test_development_defaults_are_reported_as_degraded() -> None:
    async with control(settings(model("echo", "mock"))) as api:
        resp = await api.get("/admin/status")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "degraded"
    assert checks(body) == {
        "database": True,
        "encryption_key": True,  # generated, which is fine on loopback
        "jwt_secret": True,  # generated too
        "admin_password": True,  # the harness sets one
        "outbound_guard": False,  # the harness allows private targets for its loopback fakes
    }
    assert all(c["detail"] for c in body["checks"])


async def test_generated_secrets_are_reported_with_the_file_they_are_kept_in() -> None:
    async with control(settings(model("echo", "mock"))) as api:
        body = (await api.get("/admin/status")).json()
        path = secrets_file_path(api.container.settings)
    details = {c["name"]: c["detail"] for c in body["checks"]}
    for name in ("encryption_key", "jwt_secret"):
        assert "generated" in details[name] and str(path) in details[name], details[name]
    assert "reads the stored secrets" in details["encryption_key"]


async def test_a_safe_configuration_is_ok() -> None:
    config = settings(
        model("echo", "mock"),
        auth={"jwt_secret": "a-real-secret-for-this-test-0123456789"},
        security={"encryption_keys": [generate_key()], "allow_private_targets": False},
    )
    async with control(config) as api:
        body = (await api.get("/admin/status")).json()
    assert body["status"] == "ok", body
    assert set(checks(body)) == {
        "database",
        "encryption_key",
        "jwt_secret",
        "admin_password",
        "outbound_guard",
    }
    assert "migration" in next(c["detail"] for c in body["checks"] if c["name"] == "database")


async def test_the_default_admin_password_is_reported() -> None:
    config = settings(model("echo", "mock"), auth={"admin_password": None})
    async with control(config) as api:
        body = (await api.get("/admin/status")).json()
    assert checks(body)["admin_password"] is False


async def test_any_signed_in_person_may_read_the_status() -> None:
    async with control(settings(model("echo", "mock"))) as api:
        bob = await api.person("bob@example.com")
        assert (await api.get("/admin/status", token=bob.token)).status_code == 200
        assert (await api.get("/admin/status", token=None)).status_code == 401
