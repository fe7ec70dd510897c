"""POST /v1/completions through a real gateway: forwarded natively to OpenAI-compatible upstreams,
translated to chat for every other provider, streaming and not, checked with the openai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.api.client import post
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, serve, settings


@dataclass
class Setup:
    url: str
    openai_upstream: OpenAIUpstream
    anthropic_upstream: AnthropicUpstream


@pytest.fixture
async def setup(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> AsyncIterator[Setup]:
    config = settings(
        model(
            "instruct", "openai", openai_upstream.url, openai_upstream.api_key, upstream_model="instruct-up"
        ),
        model(
            "claude",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            upstream_model="claude-up",
        ),
        model("mock", "mock"),
    )
    async with serve(config) as url:
        yield Setup(url, openai_upstream, anthropic_upstream)


@pytest.fixture
async def strict(setup: Setup) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=setup.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


@pytest.fixture
async def streaming(setup: Setup) -> AsyncIterator[openai.AsyncOpenAI]:
    # Streamed text_completion chunks carry ``finish_reason: null`` until the last one, as the real API
    # sends them, and the SDK's model types it as a non-optional Literal: strict validation refuses
    # every real stream, so streams are read with a lenient client and checked field by field.
    client = openai.AsyncOpenAI(base_url=setup.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)
    yield client
    await client.close()


async def collect(stream: Any) -> tuple[str, list[str | None], Any]:
    """(text of choice 0, every finish_reason seen, the usage chunk's usage or None)."""
    text, finishes, usage = "", [], None
    async for chunk in stream:
        assert chunk.object == "text_completion"
        if not chunk.choices:
            usage = chunk.usage
            continue
        for choice in chunk.choices:
            if choice.index == 0:
                text += choice.text
                finishes.append(choice.finish_reason)
    return text, finishes, usage


# -- OpenAI-compatible upstreams: native --------------------------------------------------------------


async def test_openai_upstream_gets_the_body_at_its_completions_path(
    setup: Setup, strict: openai.AsyncOpenAI
) -> None:
    await strict.completions.create(
        model="instruct", prompt="Say hi", max_tokens=5, suffix="!", logprobs=1, extra_body={"x_extra": True}
    )
    last = setup.openai_upstream.last
    assert last.path == "/v1/completions"
    assert last.json == {
        "model": "instruct-up",
        "prompt": "Say hi",
        "max_tokens": 5,
        "suffix": "!",
        "logprobs": 1,
        "x_extra": True,
    }


async def test_openai_answer_is_relayed_and_validates_strictly(
    setup: Setup, strict: openai.AsyncOpenAI
) -> None:
    setup.openai_upstream.enqueue(
        Reply(text=" there", finish_reason="length", input_tokens=3, output_tokens=1)
    )
    result = await strict.completions.create(model="instruct", prompt="Hi")
    assert result.choices[0].text == " there"
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and (result.usage.prompt_tokens, result.usage.completion_tokens) == (3, 1)


async def test_several_prompts_get_one_choice_each_from_openai(
    setup: Setup, strict: openai.AsyncOpenAI
) -> None:
    result = await strict.completions.create(model="instruct", prompt=["one", "two"])
    assert [(c.index, c.text) for c in result.choices] == [(0, "echo: one"), (1, "echo: two")]


async def test_openai_stream_is_relayed_and_always_metered(
    setup: Setup, streaming: openai.AsyncOpenAI
) -> None:
    setup.openai_upstream.enqueue(Reply(text="a b c"))
    text, finishes, usage = await collect(
        await streaming.completions.create(model="instruct", prompt="p", stream=True)
    )
    assert text == "a b c"
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert usage is None  # not asked for, so the chunk the gateway asked for is not relayed
    assert setup.openai_upstream.last.json["stream_options"] == {"include_usage": True}


async def test_openai_stream_relays_the_usage_chunk_when_asked(
    setup: Setup, streaming: openai.AsyncOpenAI
) -> None:
    setup.openai_upstream.enqueue(Reply(text="a b", input_tokens=4, output_tokens=2))
    _, _, usage = await collect(
        await streaming.completions.create(
            model="instruct", prompt="p", stream=True, stream_options={"include_usage": True}
        )
    )
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 2)


# -- other providers: translated to chat --------------------------------------------------------------


async def test_anthropic_gets_the_prompt_as_one_user_message(
    setup: Setup, strict: openai.AsyncOpenAI
) -> None:
    await strict.completions.create(
        model="claude", prompt="Once upon a time", max_tokens=30, temperature=0.5, stop=["\n"]
    )
    body = setup.anthropic_upstream.last.json
    assert setup.anthropic_upstream.last.path == "/v1/messages"
    assert body["model"] == "claude-up"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Once upon a time"}]}]
    assert (body["max_tokens"], body["temperature"], body["stop_sequences"]) == (30, 0.5, ["\n"])


async def test_anthropic_answer_comes_back_as_a_text_completion(
    setup: Setup, strict: openai.AsyncOpenAI
) -> None:
    setup.anthropic_upstream.enqueue(
        Reply(text="there was", finish_reason="max_tokens", input_tokens=5, output_tokens=2)
    )
    result = await strict.completions.create(model="claude", prompt="Once upon a time", max_tokens=2)
    assert result.object == "text_completion"
    assert result.model == "claude"
    assert result.id.startswith("cmpl-")
    assert result.choices[0].text == "there was"
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 2)


async def test_anthropic_stream_comes_back_as_text_completion_chunks(
    setup: Setup, streaming: openai.AsyncOpenAI
) -> None:
    setup.anthropic_upstream.enqueue(Reply(text="one two three", input_tokens=5, output_tokens=3))
    text, finishes, usage = await collect(
        await streaming.completions.create(
            model="claude", prompt="Count", stream=True, stream_options={"include_usage": True}
        )
    )
    assert text == "one two three"
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 3)


async def test_what_translation_cannot_carry_is_reported(setup: Setup) -> None:
    resp = await post(
        setup.url + "/v1/completions", {"model": "mock", "prompt": "hello", "echo": True, "logprobs": 2}
    )
    assert resp.status == 200
    assert resp.body["choices"][0]["text"] == "You said: hello"
    assert "echo dropped" in resp.headers["x-waypost-dropped"]
    assert "logprobs dropped" in resp.headers["x-waypost-dropped"]


async def test_nothing_is_reported_dropped_when_forwarded_natively(setup: Setup) -> None:
    resp = await post(setup.url + "/v1/completions", {"model": "instruct", "prompt": "hello", "echo": True})
    assert resp.body["choices"][0]["text"] == "helloecho: hello"
    assert "x-waypost-dropped" not in resp.headers


# -- errors -------------------------------------------------------------------------------------------


async def test_a_missing_prompt_is_a_400_in_openai_format(setup: Setup) -> None:
    resp = await post(setup.url + "/v1/completions", {"model": "mock"})
    assert resp.status == 400
    assert resp.body["error"] == {
        "message": "Missing required parameter: 'prompt'.",
        "type": "invalid_request_error",
        "param": "prompt",
        "code": None,
    }


async def test_a_stream_broken_mid_way_raises_in_the_sdk(setup: Setup, streaming: openai.AsyncOpenAI) -> None:
    setup.openai_upstream.enqueue(Reply(text="a b c d", error_event_after_chunks=2))
    with pytest.raises(openai.APIError):
        await collect(await streaming.completions.create(model="instruct", prompt="p", stream=True))


async def test_completions_answer_without_the_v1_prefix_too(setup: Setup) -> None:
    resp = await post(setup.url + "/completions", {"model": "mock", "prompt": "x"})
    assert resp.status == 200 and resp.body["object"] == "text_completion"
