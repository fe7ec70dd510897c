"""/admin/secrets: encrypted values that are never shown again, and key rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control, message
from tests.dbs import fresh_database
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, settings
from waypost.security.crypto import generate_key

VALUE = "sk-very-secret-value-0123456789"


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream(api_key=VALUE) as fake:
        yield fake


@pytest.fixture
async def api() -> AsyncIterator[Control]:
    async with control(settings(model("echo", "mock"))) as client:
        yield client


def gpt(upstream: OpenAIUpstream, secret: str = "openai-key") -> dict[str, Any]:
    return {
        "name": "gpt",
        "provider": "openai",
        "base_url": upstream.url + "/v1",
        "api_key": f"secret://{secret}",
    }


async def test_a_secret_is_answered_without_its_value(api: Control) -> None:
    resp = await api.post("/admin/secrets", {"name": "openai-key", "value": VALUE, "description": "prod"})
    assert resp.status_code == 201
    assert set(resp.json()) == {"name", "description", "created_at", "updated_at"}
    assert (await api.get("/admin/secrets/openai-key")).json() == resp.json()
    assert [s["name"] for s in (await api.get("/admin/secrets")).json()["data"]] == ["openai-key"]
    await api.patch("/admin/secrets/openai-key", {"value": VALUE + "-2"})
    assert not api.leaked(VALUE)


async def test_a_secret_is_stored_encrypted(api: Control) -> None:
    await api.post("/admin/secrets", {"name": "openai-key", "value": VALUE})
    assert VALUE not in await api.stored_text()


async def test_a_taken_name_is_a_409(api: Control) -> None:
    await api.post("/admin/secrets", {"name": "openai-key", "value": VALUE})
    resp = await api.post("/admin/secrets", {"name": "openai-key", "value": "other"})
    assert resp.status_code == 409
    assert "openai-key" in message(resp)


async def test_an_invalid_name_or_an_empty_value_is_a_400(api: Control) -> None:
    name = await api.post("/admin/secrets", {"name": "../etc", "value": VALUE})
    empty = await api.post("/admin/secrets", {"name": "ok", "value": ""})
    assert name.status_code == empty.status_code == 400
    assert message(name).startswith("body.name: ")
    assert message(empty).startswith("body.value: ")


async def test_an_unknown_secret_is_a_404_naming_it(api: Control) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        resp = await api.call(
            method, "/admin/secrets/ghost", {"description": "x"} if method == "PATCH" else None
        )
        assert resp.status_code == 404, method
        assert message(resp) == "secret 'ghost' does not exist"


async def test_a_secret_in_use_cannot_be_deleted(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/admin/secrets", {"name": "openai-key", "value": VALUE})
    await api.post("/admin/models", gpt(upstream))
    resp = await api.delete("/admin/secrets/openai-key")
    assert resp.status_code == 409
    assert "'gpt'" in message(resp)
    await api.delete("/admin/models/gpt")
    assert (await api.delete("/admin/secrets/openai-key")).status_code == 204


async def test_a_new_value_is_used_at_once(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/admin/secrets", {"name": "openai-key", "value": "sk-stale"})
    await api.post("/admin/models", gpt(upstream))
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 502
    await api.patch("/admin/secrets/openai-key", {"value": VALUE})
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200


async def test_changing_the_description_keeps_the_value(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/admin/secrets", {"name": "openai-key", "value": VALUE})
    await api.post("/admin/models", gpt(upstream))
    resp = await api.patch("/admin/secrets/openai-key", {"description": "rotated monthly"})
    assert resp.json()["description"] == "rotated monthly"
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200


async def test_rotation_re_encrypts_every_secret_and_models_keep_working(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await api.post("/admin/secrets", {"name": "openai-key", "value": VALUE})
    await api.post("/admin/secrets", {"name": "spare", "value": "x"})
    await api.post("/admin/models", gpt(upstream))
    resp = await api.post("/admin/secrets/rotate")
    assert resp.status_code == 200
    assert resp.json() == {"rotated": 2}
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200


async def test_a_new_encryption_key_takes_over_after_rotation(upstream: OpenAIUpstream) -> None:
    """Old key K1; then [K2, K1] and rotate; then K2 alone still reads everything."""
    old, new = generate_key(), generate_key()
    async with fresh_database() as database:

        def config(keys: list[str]) -> Any:
            return settings(
                database=database, security={"encryption_keys": keys, "allow_private_targets": True}
            )

        async with control(config([old])) as api:
            await api.post("/admin/secrets", {"name": "openai-key", "value": VALUE})
            await api.post("/admin/models", gpt(upstream))
        async with control(config([new, old])) as api:
            assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200
            assert (await api.post("/admin/secrets/rotate")).json() == {"rotated": 1}
        async with control(config([new])) as api:
            assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200
            checks = {c["name"]: c for c in (await api.get("/admin/status")).json()["checks"]}
            assert checks["encryption_key"]["ok"] is True, checks["encryption_key"]
