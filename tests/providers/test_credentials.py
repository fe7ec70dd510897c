"""Which values of a deployment are credentials, and their removal from upstream text at the
HTTP client's boundary, whatever the provider. Specified by docs/providers.md ("Credentials in
upstream text")."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes import OpenAIUpstream, Reply
from waypost.core.context import RequestContext
from waypost.core.errors import GatewayError, UpstreamBadRequest
from waypost.core.types import ChatRequest, Message, TextPart
from waypost.providers.base import Deployment
from waypost.providers.credentials import credentials_of, scrub
from waypost.providers.http import HttpClient
from waypost.providers.openai import OpenAIProvider
from waypost.settings import ModelSettings

HI = ChatRequest(model="m", messages=[Message("user", [TextPart("hi")])])


def settings(**extra: Any) -> ModelSettings:
    return ModelSettings(name="m", provider=extra.pop("provider", "openai"), **extra)


def test_every_configured_credential_is_found() -> None:
    found = credentials_of(
        settings(
            provider="bedrock",
            api_key="sk-api-key-0001",
            headers={
                "Authorization": "Bearer entra-token-0002",
                "X-Custom-Api-Key": "custom-key-0003",
                "OpenAI-Organization": "org-not-a-secret",
            },
            aws={
                "access_key_id": "AKIDEXAMPLE0004",
                "secret_access_key": "aws/secret/0005",
                "session_token": "session-token-0006",
                "endpoint_url": "https://bedrock.example.com",
            },
        ),
        extra=["resolved-at-call-0007", None],
    )
    for secret in (
        "sk-api-key-0001",
        "Bearer entra-token-0002",
        "entra-token-0002",
        "custom-key-0003",
        "AKIDEXAMPLE0004",
        "aws/secret/0005",
        "aws%2Fsecret%2F0005",  # as it would appear in a URL
        "session-token-0006",
        "resolved-at-call-0007",
    ):
        assert secret in found
    assert "org-not-a-secret" not in found


def test_a_url_query_value_and_password_are_credentials() -> None:
    model = ModelSettings.model_construct(
        name="m",
        provider="gemini",
        base_url="https://user:url-password-1@x/v1?key=url-query-key-2",
        headers={},
    )
    found = credentials_of(model)
    assert {"url-password-1", "url-query-key-2"} <= set(found)


def test_short_placeholders_are_not_treated_as_secrets() -> None:
    assert credentials_of(settings(api_key="ollama")) == []


def test_scrub_replaces_the_longest_secret_whole() -> None:
    err = UpstreamBadRequest("bad key sk-abc-123456789 (prefix sk-abc-1234)")
    scrub(err, credentials_of(settings(api_key="sk-abc-123456789", headers={"x-api-key": "sk-abc-1234"})))
    assert err.message == "bad key [redacted] (prefix [redacted])"
    assert str(err) == err.message


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIProvider]:
    http = HttpClient()
    yield OpenAIProvider(http)
    await http.close()


@pytest.mark.parametrize("status", [400, 401, 429, 500, 503])
async def test_an_error_answer_repeating_the_key_is_scrubbed_at_the_client(
    provider: OpenAIProvider, status: int
) -> None:
    key = "sk-echoed-key-0123456789"
    async with OpenAIUpstream() as fake:
        fake.enqueue(Reply(status=status, error_message=f"Incorrect API key provided: {key}."))
        dep = Deployment(settings(base_url=fake.url + "/v1", api_key=key), "up")
        with pytest.raises(GatewayError) as err:
            await provider.complete(HI, dep, RequestContext("r", "openai"))
    assert key not in err.value.message
    assert key not in str(err.value)


async def test_a_mid_stream_error_repeating_a_header_credential_is_scrubbed(provider: OpenAIProvider) -> None:
    token = "entra-id-token-0123456789"
    async with OpenAIUpstream() as fake:
        fake.enqueue(Reply(error_event_after_chunks=2, error_message=f"token {token} expired"))
        dep = Deployment(
            settings(base_url=fake.url + "/v1", headers={"Authorization": f"Bearer {token}"}), "up"
        )
        req = ChatRequest(model="m", messages=HI.messages, stream=True)
        with pytest.raises(GatewayError) as err:
            async for _ in provider.stream(req, dep, RequestContext("r", "openai")):
                pass
    assert err.value.message.endswith("token [redacted] expired")
