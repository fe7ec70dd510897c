"""An alias answers with its own name: whatever model name the upstream answers with, the client
reads the one it asked for, from both SDKs, both upstreams (same-format relay and translation),
streaming and not. The upstream still gets its own name."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.e2e.conftest import Gateway, upstream_body, upstream_model
from tests.fakes import Reply

UPSTREAMS = ["openai", "anthropic"]
pytestmark = pytest.mark.parametrize("upstream", UPSTREAMS, ids=[f"to-{u}" for u in UPSTREAMS])
HI = [{"role": "user", "content": "hi"}]
# What the upstreams answer with: a dated snapshot of the name they were sent.
ANSWERED = {"openai": "gpt-up-2024-07-18", "anthropic": "claude-up-20250929"}


def answering(gateway: Gateway, upstream: str) -> str:
    """Script the upstream to answer under another name; return the name the client asks for."""
    gateway.upstream(upstream).enqueue(Reply(text="hello there", model=ANSWERED[upstream]))
    return upstream_model(upstream)


async def test_openai_client_gets_its_name_in_the_body(
    gateway: Gateway, upstream: str, openai_client: openai.AsyncOpenAI
) -> None:
    asked = answering(gateway, upstream)
    completion = await openai_client.chat.completions.create(model=asked, messages=HI)  # type: ignore[arg-type]
    assert completion.model == asked
    assert upstream_body(gateway, upstream)["model"] in ("gpt-up", "claude-up")


async def test_openai_client_gets_its_name_in_every_chunk(
    gateway: Gateway, upstream: str, openai_client: openai.AsyncOpenAI
) -> None:
    asked = answering(gateway, upstream)
    stream = await openai_client.chat.completions.create(
        model=asked,
        messages=HI,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    models = [chunk.model async for chunk in stream]
    assert len(models) > 2 and set(models) == {asked}


async def test_anthropic_client_gets_its_name_in_the_body(
    gateway: Gateway, upstream: str, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    asked = answering(gateway, upstream)
    message = await anthropic_client.messages.create(model=asked, max_tokens=64, messages=HI)  # type: ignore[arg-type]
    assert message.model == asked


async def test_anthropic_client_gets_its_name_in_message_start(
    gateway: Gateway, upstream: str, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    asked = answering(gateway, upstream)
    async with anthropic_client.messages.stream(model=asked, max_tokens=64, messages=HI) as stream:  # type: ignore[arg-type]
        starts = [event.message.model async for event in stream if event.type == "message_start"]
        final = await stream.get_final_message()
    assert starts == [asked] and final.model == asked
