"""Usage is never silently zero (docs/usage.md): when an OpenAI-compatible upstream sends none
(llama.cpp ignores ``stream_options.include_usage``; some servers leave ``usage`` out of bodies),
the gateway counts the prompt it sent and the text, tool calls and reasoning it relayed, answers
the counts in the caller's format and marks them estimated in the access log; usage an upstream
reports is relayed untouched and not marked.

Through a real gateway, from the official SDKs (validating strictly) and raw HTTP, both client
formats, streamed and not, to a fake OpenAI server whose models send no usage (quirk ``no_usage``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio
import toktok

from tests.e2e.clients import TOOL, Answer, ask_anthropic, ask_openai
from tests.fakes import OpenAIUpstream, Reply
from tests.fakes.openai_quirks import NO_USAGE
from tests.harness import GATEWAY_KEY, access_line, serve, settings
from waypost.metering.estimate import MESSAGE_OVERHEAD
from waypost.metering.usage_count import REPLY_PRIMING, TOKENS_PER_MESSAGE

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "sk-usage-counted-0123456789"
CLIENTS = ["openai", "anthropic"]
MODES = ["body", "stream"]
PROMPT = "How many tokens does this question take, counted the way GPT-4o counts them?"
ANSWER = "Eighteen, give or take: the gateway counts them itself when the server will not."


@dataclass
class Stage:
    url: str
    fake: OpenAIUpstream
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def started() -> AsyncIterator[Stage]:
    """Upstream models without usage: one of GPT-4o's family (o200k_base counts it), one no
    tokenizer fits (the estimate); and one that reports its usage."""
    async with AsyncExitStack() as stack:
        fake = OpenAIUpstream(api_key=KEY, quirks={"gpt-4o-mini": {NO_USAGE}, "smollm2-360m": {NO_USAGE}})
        await stack.enter_async_context(fake)
        entries = [
            {
                "name": name,
                "provider": "openai",
                "base_url": fake.url + "/v1",
                "api_key": KEY,
                "upstream_model": upstream,
                "retry": {"max_retries": 0},
            }
            for name, upstream in (
                ("counted", "gpt-4o-mini"),
                ("estimated", "smollm2-360m"),
                ("reported", "gpt-4o"),
            )
        ]
        config = settings(*entries, logging={"level": "info", "access_log": True, "json": True})
        url = await stack.enter_async_context(serve(config))
        oai = openai.AsyncOpenAI(
            base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        stack.push_async_callback(oai.close)
        ant = anthropic.AsyncAnthropic(
            base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        )
        stack.push_async_callback(ant.close)
        yield Stage(url, fake, oai, ant)


@pytest_asyncio.fixture(loop_scope="module")
async def stage(started: Stage) -> Stage:
    started.fake.reset()
    return started


def o200k(text: str) -> int:
    return int(toktok.batch_count([text], "o200k_base", threads=1)[0])


def quarter(text: str) -> int:
    return -(-len(text) // 4)


async def ask(stage: Stage, client: str, model: str, *, stream: bool, rid: str, **kw: Any) -> Answer:
    messages = [{"role": "user", "content": PROMPT}]
    headers = {"x-request-id": rid}
    if client == "anthropic":
        return await ask_anthropic(
            stage.anthropic, model, messages, stream=stream, extra_headers=headers, **kw
        )
    return await ask_openai(stage.openai, model, messages, stream=stream, extra_headers=headers, **kw)


def new_rid() -> str:
    return uuid.uuid4().hex


# -- counted with the tokenizer of the model's family ---------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
async def test_missing_usage_is_counted_with_the_models_tokenizer_and_marked_estimated(
    stage: Stage, client: str, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    stage.fake.enqueue(Reply(text=ANSWER))
    rid = new_rid()
    answer = await ask(stage, client, "counted", stream=mode == "stream", rid=rid)
    assert answer.text == ANSWER
    # The prompt as sent, with OpenAI's chat framing; the answer as relayed.
    assert answer.input_tokens == o200k(PROMPT) + TOKENS_PER_MESSAGE + REPLY_PRIMING
    assert answer.output_tokens == o200k(ANSWER)
    line = await access_line(capfd, rid)
    assert line["usage_estimated"] is True and line["usage_counted_with"] == "o200k_base"
    assert (line["input_tokens"], line["output_tokens"]) == (answer.input_tokens, answer.output_tokens)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
async def test_without_a_tokenizer_for_the_family_the_estimate_counts(
    stage: Stage, client: str, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    stage.fake.enqueue(Reply(text=ANSWER))
    rid = new_rid()
    answer = await ask(stage, client, "estimated", stream=mode == "stream", rid=rid)
    assert answer.input_tokens == quarter(PROMPT) + MESSAGE_OVERHEAD
    assert answer.output_tokens == quarter(ANSWER)
    line = await access_line(capfd, rid)
    assert line["usage_estimated"] is True and line["usage_counted_with"] == "estimate"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
async def test_tool_calls_count_as_name_and_arguments(stage: Stage, client: str, mode: str) -> None:
    stage.fake.enqueue(Reply(tool_calls=[("call_1", "get_weather", {"city": "Paris"})]))
    answer = await ask(stage, client, "counted", stream=mode == "stream", rid=new_rid(), tools=[TOOL])
    assert [name for _, name, _ in answer.tool_calls] == ["get_weather"]
    assert answer.output_tokens == o200k("get_weather" + json.dumps({"city": "Paris"}))
    assert answer.input_tokens > o200k(PROMPT)  # the tool's definition counts too


@pytest.mark.parametrize("mode", MODES)
async def test_reasoning_counts_as_output_and_as_reasoning_tokens(stage: Stage, mode: str) -> None:
    stage.fake.enqueue(Reply(text="42.", thinking=("Six times seven makes forty-two.", "")))
    messages: Any = [{"role": "user", "content": PROMPT}]
    if mode == "stream":
        chunks = [
            chunk
            async for chunk in await stage.openai.chat.completions.create(
                model="counted", messages=messages, stream=True, stream_options={"include_usage": True}
            )
        ]
        usage = chunks[-1].usage
    else:
        usage = (await stage.openai.chat.completions.create(model="counted", messages=messages)).usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = o200k("Six times seven makes forty-two.")
    assert usage.completion_tokens_details.reasoning_tokens == reasoning
    assert usage.completion_tokens == o200k("42.") + reasoning


# -- the same-format relay ends as OpenAI's own API does ------------------------------------------


async def raw_stream(stage: Stage, body: dict[str, Any], path: str = "/v1/chat/completions") -> list[str]:
    """The ``data:`` payloads of a stream, as the client received them."""
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(stage.url + path, json={**body, "stream": True}, headers=headers) as resp,
    ):
        assert resp.status == 200
        text = (await resp.read()).decode()
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


async def test_a_relayed_stream_gets_the_usage_chunk_last_then_one_done(stage: Stage) -> None:
    stage.fake.enqueue(Reply(text=ANSWER))
    body = {"model": "counted", "messages": [{"role": "user", "content": PROMPT}]}
    payloads = await raw_stream(stage, {**body, "stream_options": {"include_usage": True}})
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    usage_chunk = json.loads(payloads[-2])
    assert usage_chunk["choices"] == [] and usage_chunk["model"] == "counted"
    assert usage_chunk["usage"]["completion_tokens"] == o200k(ANSWER)
    assert usage_chunk["id"] == json.loads(payloads[0])["id"]
    assert all(json.loads(p).get("usage") is None for p in payloads[:-2])


async def test_a_relayed_stream_that_did_not_ask_for_usage_gets_none_but_is_still_counted(
    stage: Stage, capfd: pytest.CaptureFixture[str]
) -> None:
    stage.fake.enqueue(Reply(text=ANSWER))
    rid = new_rid()
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "x-request-id": rid}
    body = {"model": "counted", "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(stage.url + "/v1/chat/completions", json=body, headers=headers) as resp,
    ):
        text = (await resp.read()).decode()
    payloads = [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    assert all("usage" not in json.loads(p) or json.loads(p)["usage"] is None for p in payloads[:-1])
    line = await access_line(capfd, rid)
    assert line["usage_estimated"] is True and line["output_tokens"] == o200k(ANSWER)


async def test_a_relayed_legacy_completion_without_usage_is_counted_too(stage: Stage) -> None:
    stage.fake.enqueue(Reply(text=ANSWER), Reply(text=ANSWER))
    body = {"model": "counted", "prompt": PROMPT, "stream_options": {"include_usage": True}}
    payloads = await raw_stream(stage, body, "/v1/completions")
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    usage = json.loads(payloads[-2])["usage"]
    assert usage["completion_tokens"] == o200k(ANSWER) and usage["prompt_tokens"] > o200k(PROMPT)
    completion = await stage.openai.completions.create(model="counted", prompt=PROMPT)
    assert completion.usage is not None and completion.usage.completion_tokens == o200k(ANSWER)


# -- usage the upstream reports is relayed untouched ---------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
async def test_reported_usage_is_relayed_untouched_and_not_marked(
    stage: Stage, client: str, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    stage.fake.enqueue(Reply(text=ANSWER, input_tokens=11, output_tokens=3))
    rid = new_rid()
    answer = await ask(stage, client, "reported", stream=mode == "stream", rid=rid)
    assert (answer.input_tokens, answer.output_tokens) == (11, 3)
    line = await access_line(capfd, rid)
    assert line["usage_estimated"] is False and "usage_counted_with" not in line
    assert (line["input_tokens"], line["output_tokens"]) == (11, 3)


async def test_a_relayed_stream_with_usage_ends_as_the_upstream_ended_it(stage: Stage) -> None:
    stage.fake.enqueue(Reply(text=ANSWER, input_tokens=11, output_tokens=3))
    body = {"model": "reported", "messages": [{"role": "user", "content": PROMPT}]}
    payloads = await raw_stream(stage, {**body, "stream_options": {"include_usage": True}})
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    usage = json.loads(payloads[-2])["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (11, 3)
