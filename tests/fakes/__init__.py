"""Fake upstream providers: real HTTP servers on loopback speaking the OpenAI and Anthropic wire formats."""

from __future__ import annotations

from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.base import FakeUpstream, Recorded, Reply, ToolCallSpec
from tests.fakes.openai_responses_upstream import OpenAIResponsesUpstream
from tests.fakes.openai_upstream import OpenAIUpstream

__all__ = [
    "AnthropicUpstream",
    "FakeUpstream",
    "OpenAIResponsesUpstream",
    "OpenAIUpstream",
    "Recorded",
    "Reply",
    "ToolCallSpec",
]
