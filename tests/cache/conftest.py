"""Response-cache tests: a real gateway with the cache on, in front of fake OpenAI and Anthropic
upstreams on loopback that count the calls they get."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control
from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import model, settings

PRICES = {"input": 10.0, "output": 20.0}  # USD per million tokens
REPLY = Reply(text="The answer is 42.", input_tokens=100, output_tokens=50)
CALL_MICROS = 2000  # 100 * 10 + 50 * 20: what one upstream call costs


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = REPLY
        yield fake


@pytest.fixture
async def claude_upstream() -> AsyncIterator[AnthropicUpstream]:
    async with AnthropicUpstream() as fake:
        fake.default_reply = REPLY
        yield fake


def cache_settings(
    upstream: OpenAIUpstream,
    claude: AnthropicUpstream | None = None,
    cache: dict[str, Any] | None = None,
    **sections: Any,
) -> Any:
    """A gateway with the cache on (``cache`` overrides its settings): ``gpt`` and ``gpt-big``
    on the OpenAI fake, ``claude`` on the Anthropic one when given; all public."""
    entries = [
        model(
            "gpt", "openai", upstream.url, "sk-x", upstream_model="gpt-4o-mini", prices=PRICES, public=True
        ),
        model("gpt-big", "openai", upstream.url, "sk-x", upstream_model="gpt-4o", prices=PRICES, public=True),
    ]
    if claude is not None:
        entries.append(
            model(
                "claude",
                "anthropic",
                claude.url,
                "sk-ant-x",
                upstream_model="claude-haiku-4-5",
                prices=PRICES,
                public=True,
            )
        )
    return settings(*entries, cache={"enabled": True, **(cache or {})}, **sections)


@pytest.fixture
async def api(upstream: OpenAIUpstream, database: dict[str, Any]) -> AsyncIterator[Control]:
    async with control(cache_settings(upstream, database=database)) as client:
        yield client


def chat(text: str = "What is the answer?", model: str = "gpt", **fields: Any) -> dict[str, Any]:
    """A deterministic (temperature 0) OpenAI chat body."""
    return {
        "model": model,
        "temperature": 0,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


def messages(text: str = "What is the answer?", model: str = "gpt", **fields: Any) -> dict[str, Any]:
    """The same request as ``chat`` in Anthropic's format."""
    return {
        "model": model,
        "temperature": 0,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


async def api_token(api: Control, email: str, **token_fields: Any) -> str:
    """A new user ``email`` and an API token of theirs (``token_fields``: e.g. ``models``)."""
    person = await api.person(email)
    created = await api.post("/me/tokens", {"name": "t", **token_fields}, token=person.token)
    assert created.status_code == 201, created.text
    return str(created.json()["token"])
