"""Real Responses API clients (the ``openai`` SDK, the Agents SDK, the Codex CLI) through a gateway to
three loopback fakes: OpenAI's own /v1/responses (reached natively), an OpenAI chat server and
Anthropic (both reached through the canonical model). The ``kind`` parameter picks the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.fakes import AnthropicUpstream, FakeUpstream, OpenAIUpstream
from tests.fakes.fixtures import ANTHROPIC_UPSTREAM_KEY, OPENAI_UPSTREAM_KEY
from tests.harness import GATEWAY_KEY, model, serve, settings

KINDS = ("responses", "chat", "anthropic")
"""Which fake answers: OpenAI's Responses API, an OpenAI chat-completions server, Anthropic."""


@dataclass
class Gateway:
    url: str
    kind: str
    upstream: FakeUpstream

    @property
    def model(self) -> str:
        """The gateway's model name that goes to this kind's fake."""
        return f"via-{self.kind}"


def upstream_for(kind: str) -> FakeUpstream:
    if kind == "responses":
        from tests.fakes.openai_responses_upstream import OpenAIResponsesUpstream

        return OpenAIResponsesUpstream(api_key=OPENAI_UPSTREAM_KEY)
    if kind == "chat":
        return OpenAIUpstream(api_key=OPENAI_UPSTREAM_KEY)
    return AnthropicUpstream(api_key=ANTHROPIC_UPSTREAM_KEY)


def model_for(kind: str, upstream: FakeUpstream, name: str | None = None) -> dict[str, Any]:
    """The gateway's model entry for ``kind``'s fake, named ``via-<kind>`` unless ``name`` is given."""
    name = name or f"via-{kind}"
    if kind == "anthropic":
        return model(name, "anthropic", upstream.url, upstream.api_key, upstream_model="claude-up")
    # A loopback base URL is not known to serve /v1/responses, so by default the gateway translates
    # to chat completions; the Responses fake's deployment says it does (the same-format fast path).
    extra = {"responses_api": True} if kind == "responses" else {}
    return model(name, "openai", upstream.url, upstream.api_key, upstream_model="gpt-up", **extra)


@pytest.fixture(params=KINDS)
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    kind: str = request.param
    async with upstream_for(kind) as upstream, serve(settings(model_for(kind, upstream))) as url:
        yield Gateway(url, kind, upstream)


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK on the gateway, validating every answer against its models (strict)."""
    sdk = openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    )
    yield sdk
    await sdk.close()
