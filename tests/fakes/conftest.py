"""Official SDK clients pointed at the fakes, validating every response strictly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from tests.fakes import AnthropicUpstream, OpenAIUpstream


@pytest.fixture
async def oai(openai_upstream: OpenAIUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=openai_upstream.url + "/v1",
        api_key=openai_upstream.api_key,
        max_retries=0,
        _strict_response_validation=True,
    )
    yield client
    await client.close()


@pytest.fixture
async def ant(anthropic_upstream: AnthropicUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        base_url=anthropic_upstream.url,
        api_key=anthropic_upstream.api_key,
        max_retries=0,
        _strict_response_validation=True,
    )
    yield client
    await client.close()
