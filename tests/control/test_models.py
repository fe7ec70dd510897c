"""/admin/models: models created at run time, their credentials, their URLs and who may use them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control, message
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, settings

UPSTREAM_KEY = "sk-upstream-key-0123456789abcdef"
CONFIG_KEY = "sk-config-file-key-0123456789"


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture
async def api(upstream: OpenAIUpstream) -> AsyncIterator[Control]:
    """A gateway with a mock model and a config-file OpenAI model holding a key."""
    config = settings(model("echo", "mock"), model("configured", "openai", upstream.url, api_key=CONFIG_KEY))
    async with control(config) as client:
        yield client


def openai_model(name: str, upstream: OpenAIUpstream, **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai", "base_url": upstream.url + "/v1", **fields}


async def test_a_created_model_is_answered_with_its_settings(api: Control) -> None:
    resp = await api.post("/admin/models", {"name": "fast", "provider": "mock", "upstream_model": "m-1"})
    assert resp.status_code == 201
    body = resp.json()
    assert body["name"] == "fast" and body["provider"] == "mock"
    assert (body["source"], body["public"]) == ("database", False)
    assert body["config"]["upstream_model"] == "m-1"
    assert "name" not in body["config"]
    assert body["assignments"] == {"users": [], "groups": []}
    assert (await api.get("/admin/models/fast")).json() == body
    listed = {m["name"]: m["source"] for m in (await api.get("/admin/models")).json()["data"]}
    assert listed == {"echo": "config", "configured": "config", "fast": "database"}


async def test_a_created_model_is_usable_only_once_assigned_or_public(api: Control) -> None:
    await api.post("/admin/models", {"name": "fast", "provider": "mock"})
    bob = await api.person("bob@example.com")
    token = (await api.post("/me/tokens", {"name": "t"}, token=bob.token)).json()["token"]
    assert (await api.chat("fast", token)).status_code in (403, 404)
    assigned = await api.post("/admin/models/fast/assign", {"users": [bob.email]})
    assert assigned.json()["assignments"] == {"users": ["bob@example.com"], "groups": []}
    assert (await api.chat("fast", token)).status_code == 200
    await api.post("/admin/models/fast/unassign", {"users": [bob.email]})
    assert (await api.chat("fast", token)).status_code in (403, 404)
    public = await api.patch("/admin/models/fast", {"public": True})
    assert public.json()["public"] is True
    assert (await api.chat("fast", token)).status_code == 200


async def test_a_model_assigned_to_a_group_is_usable_by_its_members(api: Control) -> None:
    await api.post("/admin/models", {"name": "fast", "provider": "mock"})
    await api.post("/admin/groups", {"name": "team"})
    bob = await api.person("bob@example.com", groups=["team"])
    token = (await api.post("/me/tokens", {"name": "t"}, token=bob.token)).json()["token"]
    resp = await api.post("/admin/models/fast/assign", {"groups": ["team"]})
    assert resp.json()["assignments"] == {"users": [], "groups": ["team"]}
    assert (await api.chat("fast", token)).status_code == 200


async def test_config_file_models_can_be_assigned(api: Control) -> None:
    bob = await api.person("bob@example.com")
    resp = await api.post("/admin/models/echo/assign", {"users": [bob.id]})
    assert resp.status_code == 200
    assert resp.json()["assignments"]["users"] == [bob.email]


async def test_a_plaintext_key_is_stored_as_an_encrypted_secret_and_used(
    api: Control, upstream: OpenAIUpstream
) -> None:
    resp = await api.post("/admin/models", openai_model("gpt", upstream, api_key=UPSTREAM_KEY))
    assert resp.status_code == 201
    assert resp.json()["config"]["api_key"] == "secret://model.gpt.api_key"
    secret = await api.get("/admin/secrets/model.gpt.api_key")
    assert secret.status_code == 200
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200
    assert upstream.last.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert not api.leaked(UPSTREAM_KEY)
    assert UPSTREAM_KEY not in await api.stored_text()


async def test_credential_headers_are_stored_as_secrets_too(api: Control, upstream: OpenAIUpstream) -> None:
    body = openai_model("gpt", upstream, headers={"X-Api-Key": "hdr-secret-value-123", "X-Team": "blue"})
    resp = await api.post("/admin/models", body)
    assert resp.status_code == 201
    headers = resp.json()["config"]["headers"]
    assert headers == {"X-Api-Key": "secret://model.gpt.headers.x-api-key", "X-Team": "blue"}
    assert not api.leaked("hdr-secret-value-123")


async def test_config_file_credentials_are_masked(api: Control) -> None:
    resp = await api.get("/admin/models/configured")
    assert resp.json()["source"] == "config"
    assert resp.json()["config"]["api_key"] == "********"
    assert not api.leaked(CONFIG_KEY)


async def test_config_file_models_are_read_only(api: Control) -> None:
    patch = await api.patch("/admin/models/configured", {"upstream_model": "x"})
    delete = await api.delete("/admin/models/configured")
    assert patch.status_code == delete.status_code == 409
    assert message(delete) == "model 'configured' is declared in the config file; read-only through the API"


async def test_a_taken_name_is_a_409(api: Control) -> None:
    await api.post("/admin/models", {"name": "fast", "provider": "mock"})
    again = await api.post("/admin/models", {"name": "fast", "provider": "mock"})
    config = await api.post("/admin/models", {"name": "echo", "provider": "mock"})
    assert again.status_code == config.status_code == 409
    assert message(again) == "model 'fast' already exists"
    assert "config file" in message(config)


async def test_invalid_settings_are_a_400_naming_the_field(api: Control) -> None:
    cases = [
        ({"name": "x", "provider": "mock", "default_max_tokens": 0}, "body.default_max_tokens: "),
        ({"name": "x", "provider": "mock", "fallbacks": ["nope"]}, "fallbacks[0]"),
        ({"name": "x", "provider": "warp-drive"}, "provider"),
        ({"name": "x", "provider": "mock", "colour": "red"}, "body.colour: "),
        ({"name": "has space", "provider": "mock"}, "name: "),
        ({"provider": "mock"}, "body.name: Field required"),
    ]
    for body, expected in cases:
        resp = await api.post("/admin/models", body)
        assert resp.status_code == 400, body
        assert expected in message(resp), (body, message(resp))


async def test_a_referenced_secret_must_exist(api: Control, upstream: OpenAIUpstream) -> None:
    resp = await api.post("/admin/models", openai_model("gpt", upstream, api_key="secret://nope"))
    assert resp.status_code == 400
    assert message(resp) == "secret 'nope' does not exist"


async def test_a_model_can_use_a_secret_created_beforehand(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/admin/secrets", {"name": "openai-key", "value": UPSTREAM_KEY})
    resp = await api.post("/admin/models", openai_model("gpt", upstream, api_key="secret://openai-key"))
    assert resp.status_code == 201
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200


async def test_patch_changes_the_fields_sent_and_keeps_a_masked_key(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await api.post("/admin/models", openai_model("gpt", upstream, api_key=UPSTREAM_KEY))
    shown = (await api.get("/admin/models/gpt")).json()["config"]
    resp = await api.patch("/admin/models/gpt", {"upstream_model": "gpt-4o", "api_key": shown["api_key"]})
    assert resp.status_code == 200
    assert resp.json()["config"]["upstream_model"] == "gpt-4o"
    assert resp.json()["config"]["api_key"] == "secret://model.gpt.api_key"
    masked = await api.patch("/admin/models/gpt", {"api_key": "********"})
    assert masked.json()["config"]["api_key"] == "secret://model.gpt.api_key"
    reset = await api.patch("/admin/models/gpt", {"upstream_model": None})
    assert reset.json()["config"]["upstream_model"] is None


async def test_a_new_key_in_a_patch_replaces_the_stored_one(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/admin/models", openai_model("gpt", upstream, api_key="sk-wrong-key"))
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 502
    await api.patch("/admin/models/gpt", {"api_key": UPSTREAM_KEY})
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 200
    assert not api.leaked(UPSTREAM_KEY)


async def test_deleting_a_model_removes_it_and_its_credential_secrets(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await api.post("/admin/models", openai_model("gpt", upstream, api_key=UPSTREAM_KEY))
    assert (await api.delete("/admin/models/gpt")).status_code == 204
    assert (await api.get("/admin/models/gpt")).status_code == 404
    assert (await api.get("/admin/secrets/model.gpt.api_key")).status_code == 404
    assert (await api.chat("gpt", GATEWAY_KEY)).status_code == 404


async def test_an_unknown_model_is_a_404_naming_it(api: Control) -> None:
    for method, path, body in (
        ("GET", "/admin/models/ghost", None),
        ("PATCH", "/admin/models/ghost", {}),
        ("DELETE", "/admin/models/ghost", None),
        ("POST", "/admin/models/ghost/assign", {"users": ["admin@localhost"]}),
    ):
        resp = await api.call(method, path, body)
        assert resp.status_code == 404, (method, path)
        assert message(resp) == "model 'ghost' does not exist"


async def test_pointing_a_model_at_a_stored_secret_needs_secret_view(
    api: Control, upstream: OpenAIUpstream
) -> None:
    """Else model.create alone would send any stored key to a URL of one's choosing."""
    await api.post("/admin/secrets", {"name": "openai-key", "value": UPSTREAM_KEY})
    carol = await api.person("carol@example.com", permissions=("model.create", "model.modify"))
    body = {
        "name": "mine",
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "secret://openai-key",
    }
    refused = await api.post("/admin/models", body, token=carol.token)
    assert refused.status_code == 403
    assert "secret.view" in message(refused)
    await api.post("/admin/models", openai_model("gpt", upstream, api_key=UPSTREAM_KEY))
    redirect = await api.patch("/admin/models/gpt", {"base_url": "http://127.0.0.1:9/v1"}, token=carol.token)
    assert redirect.status_code == 403
    own_key = await api.post("/admin/models", {**body, "api_key": "sk-my-own-key-123"}, token=carol.token)
    assert own_key.status_code == 201


async def test_a_user_cannot_assign_themselves_a_model_they_may_not_use(api: Control) -> None:
    await api.post("/admin/models", {"name": "fast", "provider": "mock"})
    carol = await api.person("carol@example.com", permissions=("model.modify",))
    resp = await api.post("/admin/models/fast/assign", {"users": [carol.email]}, token=carol.token)
    assert resp.status_code == 403


# -- the outbound guard ---------------------------------------------------------------------------


@pytest.fixture
async def guarded() -> AsyncIterator[Control]:
    """A gateway that refuses private targets (the production default)."""
    async with control(settings(model("echo", "mock"), security={"allow_private_targets": False})) as client:
        yield client


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"provider": "openai", "base_url": "http://127.0.0.1:8080/v1"}, "base_url"),
        ({"provider": "openai", "base_url": "http://10.1.2.3/v1"}, "base_url"),
        ({"provider": "openai", "base_url": "http://localhost:8080/v1"}, "base_url"),
        ({"provider": "ollama"}, "base_url"),  # its default is a loopback address
        (
            {"provider": "bedrock", "aws": {"region": "us-east-1", "endpoint_url": "http://192.168.0.10"}},
            "aws.endpoint_url",
        ),
    ],
)
async def test_a_private_target_is_refused_naming_the_field(
    guarded: Control, fields: dict[str, Any], field: str
) -> None:
    resp = await guarded.post("/admin/models", {"name": "inside", **fields})
    assert resp.status_code == 400
    assert message(resp).startswith(f"{field}: ")
    assert resp.json()["error"]["param"] == field
    assert (await guarded.get("/admin/models/inside")).status_code == 404


async def test_a_private_target_is_refused_in_a_patch_too(guarded: Control) -> None:
    await guarded.post(
        "/admin/models", {"name": "out", "provider": "openai", "base_url": "https://93.184.215.14/v1"}
    )
    resp = await guarded.patch("/admin/models/out", {"base_url": "http://127.0.0.1/v1"})
    assert resp.status_code == 400
    assert message(resp).startswith("base_url: ")


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/v1",
        "http://[fd00:ec2::254]/",
    ],
)
async def test_a_metadata_address_is_refused_even_when_private_targets_are_allowed(
    api: Control, url: str
) -> None:
    resp = await api.post("/admin/models", {"name": "meta", "provider": "openai", "base_url": url})
    assert resp.status_code == 400
    assert message(resp).startswith("base_url: ")


async def test_private_targets_are_accepted_when_allowed(api: Control, upstream: OpenAIUpstream) -> None:
    resp = await api.post("/admin/models", openai_model("local", upstream))
    assert resp.status_code == 201
