"""Pytest fixtures: one fake upstream per test, started before and stopped after it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.openai_responses_upstream import OpenAIResponsesUpstream
from tests.fakes.openai_upstream import OpenAIUpstream

OPENAI_UPSTREAM_KEY = "sk-fake-openai-upstream-key"
ANTHROPIC_UPSTREAM_KEY = "sk-ant-fake-anthropic-upstream-key"


@pytest.fixture
async def openai_upstream() -> AsyncIterator[OpenAIUpstream]:
    """A running fake OpenAI server that requires ``OPENAI_UPSTREAM_KEY`` (see ``.api_key``, ``.url``)."""
    async with OpenAIUpstream(api_key=OPENAI_UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture
async def openai_responses_upstream() -> AsyncIterator[OpenAIResponsesUpstream]:
    """A running fake OpenAI server with the Responses API (``/v1/responses``) besides chat
    completions, requiring ``OPENAI_UPSTREAM_KEY``."""
    async with OpenAIResponsesUpstream(api_key=OPENAI_UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture
async def anthropic_upstream() -> AsyncIterator[AnthropicUpstream]:
    """A running fake Anthropic server requiring ``ANTHROPIC_UPSTREAM_KEY`` (see ``.api_key``, ``.url``)."""
    async with AnthropicUpstream(api_key=ANTHROPIC_UPSTREAM_KEY) as fake:
        yield fake
