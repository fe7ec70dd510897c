"""End-to-end fixtures: a gateway in front of both fake upstreams, and SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, serve, settings


@dataclass
class Gateway:
    url: str
    openai_upstream: OpenAIUpstream
    anthropic_upstream: AnthropicUpstream

    def upstream(self, kind: str) -> OpenAIUpstream | AnthropicUpstream:
        return self.openai_upstream if kind == "openai" else self.anthropic_upstream


@pytest.fixture
async def gateway(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> AsyncIterator[Gateway]:
    """Model ``via-openai`` goes to the OpenAI fake, ``via-anthropic`` to the Anthropic fake."""
    config = settings(
        model("via-openai", "openai", openai_upstream.url, openai_upstream.api_key, upstream_model="gpt-up"),
        model(
            "via-anthropic",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            upstream_model="claude-up",
        ),
    )
    async with serve(config) as url:
        yield Gateway(url, openai_upstream, anthropic_upstream)


@pytest.fixture
async def openai_client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


@pytest.fixture
async def anthropic_client(gateway: Gateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


def upstream_model(kind: str) -> str:
    return "via-openai" if kind == "openai" else "via-anthropic"


def upstream_body(gateway: Gateway, kind: str) -> dict[str, Any]:
    body = gateway.upstream(kind).last.json
    assert isinstance(body, dict)
    return body
