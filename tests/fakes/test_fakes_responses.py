"""The fake of OpenAI's Responses API speaks what the official SDK reads, strictly, and refuses
what OpenAI refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseErrorEvent, ResponseFailedEvent

from tests.fakes import OpenAIResponsesUpstream, Reply
from tests.fakes.fixtures import OPENAI_UPSTREAM_KEY
from tests.fakes.raw_client import post_raw, post_stream, sse_data, sse_event_names
from tests.fakes.responses_sdk import accumulate, validate_event, validate_response

TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TWO_CALLS = [("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_weather", {"city": "Lyon"})]
AUTH = {"authorization": f"Bearer {OPENAI_UPSTREAM_KEY}"}


@pytest.fixture
async def sdk(openai_responses_upstream: OpenAIResponsesUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=openai_responses_upstream.url + "/v1",
        api_key=OPENAI_UPSTREAM_KEY,
        max_retries=0,
        _strict_response_validation=True,
    )
    yield client
    await client.close()


async def raw(fake: OpenAIResponsesUpstream, body: dict[str, Any]) -> tuple[int, Any]:
    return await post_raw(fake.url + "/v1/responses", body, AUTH)


async def raw_stream(fake: OpenAIResponsesUpstream, body: dict[str, Any]) -> bytes:
    return await post_stream(fake.url + "/v1/responses", {**body, "stream": True}, AUTH)


# -- answers -----------------------------------------------------------------------------------------


async def test_a_text_answer_is_a_strict_response_object(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    status, body = await raw(openai_responses_upstream, {"model": "gpt-5", "input": "hello"})

    assert status == 200
    response = validate_response(body)
    assert response.output_text == "echo: hello" and response.status == "completed"
    assert response.model == "gpt-5" and response.id.startswith("resp_")


async def test_the_sdk_reads_a_text_answer(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="gpt-5", input=[{"role": "user", "content": "hi there"}])

    assert response.output_text == "echo: hi there"


async def test_a_stream_is_typed_events_numbered_from_zero_each_valid_for_the_sdk(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    openai_responses_upstream.enqueue(Reply(text="one two three"))
    data = await raw_stream(openai_responses_upstream, {"model": "gpt-5", "input": "x"})

    events = sse_data(data)
    for event in events:
        validate_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert sse_event_names(data) == [e["type"] for e in events]
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    final = accumulate(events)
    assert final is not None and final.output_text == "one two three"


async def test_the_sdks_stream_helper_accumulates_reasoning_text_and_calls(
    openai_responses_upstream: OpenAIResponsesUpstream, sdk: openai.AsyncOpenAI
) -> None:
    openai_responses_upstream.enqueue(Reply(thinking=("t", "sig"), text="hi there", tool_calls=TWO_CALLS[:1]))
    async with sdk.responses.stream(
        model="gpt-5", input="x", reasoning={"summary": "auto"}, include=["reasoning.encrypted_content"]
    ) as stream:
        async for event in stream:
            validate_event(event.model_dump(mode="json", exclude_unset=True, warnings=False))
        final = await stream.get_final_response()

    assert final.output_text == "hi there"
    assert [i.type for i in final.output] == ["reasoning", "message", "function_call"]


async def test_delta_events_are_obfuscated_unless_the_client_turns_it_off(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    body = {"model": "gpt-5", "input": "a b"}
    default = sse_data(await raw_stream(openai_responses_upstream, body))
    off = sse_data(
        await raw_stream(
            openai_responses_upstream, {**body, "stream_options": {"include_obfuscation": False}}
        )
    )

    deltas = [e for e in default if e["type"] == "response.output_text.delta"]
    assert deltas and all(e["obfuscation"] for e in deltas)
    assert not any("obfuscation" in e for e in off)


async def test_parallel_function_calls_are_one_item_each(
    sdk: openai.AsyncOpenAI, openai_responses_upstream: OpenAIResponsesUpstream
) -> None:
    openai_responses_upstream.enqueue(Reply(tool_calls=TWO_CALLS))
    response = await sdk.responses.create(model="gpt-5", input="weather?", tools=[TOOL])

    calls = [
        (i.call_id, i.name, json.loads(i.arguments)) for i in response.output if i.type == "function_call"
    ]
    assert calls == [(c, n, a) for c, n, a in TWO_CALLS]
    assert response.output_text == ""


async def test_without_parallel_tool_calls_the_model_makes_one_call(
    sdk: openai.AsyncOpenAI, openai_responses_upstream: OpenAIResponsesUpstream
) -> None:
    openai_responses_upstream.enqueue(Reply(tool_calls=TWO_CALLS))
    response = await sdk.responses.create(
        model="gpt-5", input="weather?", tools=[TOOL], parallel_tool_calls=False
    )

    assert [i.type for i in response.output] == ["function_call"]


async def test_a_streamed_call_sends_its_arguments_in_deltas_then_done(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    openai_responses_upstream.enqueue(Reply(tool_calls=TWO_CALLS[:1]))
    events = sse_data(
        await raw_stream(openai_responses_upstream, {"model": "gpt-5", "input": "x", "tools": [TOOL]})
    )

    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert json.loads(deltas) == {"city": "Paris"} and done["arguments"] == deltas


async def test_encrypted_reasoning_only_when_include_asks_for_it(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    openai_responses_upstream.enqueue(Reply(thinking=("plan", "gAAAA-sealed"), repeat=2))
    body = {"model": "gpt-5", "input": "x", "reasoning": {"effort": "low"}}
    _, plain = await raw(openai_responses_upstream, body)
    _, sealed = await raw(openai_responses_upstream, {**body, "include": ["reasoning.encrypted_content"]})

    assert "encrypted_content" not in plain["output"][0]
    assert sealed["output"][0]["encrypted_content"] == "gAAAA-sealed"
    assert sealed["output"][0]["summary"] == []  # no summary without reasoning.summary


async def test_a_reasoning_summary_is_streamed_in_summary_events(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    openai_responses_upstream.enqueue(Reply(thinking=("plan it", "sig"), text="ok"))
    body = {"model": "gpt-5", "input": "x", "reasoning": {"summary": "auto"}}
    events = sse_data(await raw_stream(openai_responses_upstream, body))

    texts = [e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    assert texts == ["plan it"]


async def test_usage_carries_cached_and_reasoning_tokens(
    sdk: openai.AsyncOpenAI, openai_responses_upstream: OpenAIResponsesUpstream
) -> None:
    openai_responses_upstream.enqueue(
        Reply(text="ok", input_tokens=120, output_tokens=30, cache_read_tokens=100, reasoning_tokens=20)
    )
    usage = (await sdk.responses.create(model="gpt-5", input="x")).usage

    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (120, 30, 150)
    assert usage.input_tokens_details.cached_tokens == 100
    assert usage.output_tokens_details.reasoning_tokens == 20


async def test_max_output_tokens_cuts_the_answer_and_leaves_it_incomplete(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    openai_responses_upstream.enqueue(Reply(text=" ".join(f"w{i}" for i in range(40)), repeat=2))
    body = {"model": "gpt-5", "input": "x", "max_output_tokens": 16}
    _, answer = await raw(openai_responses_upstream, body)
    events = sse_data(await raw_stream(openai_responses_upstream, body))

    response = validate_response(answer)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text.split()) == 16
    assert events[-1]["type"] == "response.incomplete"


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
    ],
)
async def test_a_scripted_status_is_openais_error_json(
    sdk: openai.AsyncOpenAI,
    openai_responses_upstream: OpenAIResponsesUpstream,
    status: int,
    error: type[Exception],
) -> None:
    openai_responses_upstream.enqueue(Reply(status=status, error_message="scripted failure"))
    with pytest.raises(error) as caught:
        await sdk.responses.create(model="gpt-5", input="x")

    body = caught.value.body  # type: ignore[attr-defined]
    assert body["message"] == "scripted failure" and {"type", "param", "code"} <= body.keys()


async def test_a_wrong_key_is_a_401(openai_responses_upstream: OpenAIResponsesUpstream) -> None:
    client = openai.AsyncOpenAI(
        base_url=openai_responses_upstream.url + "/v1", api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        await client.responses.create(model="gpt-5", input="x")
    await client.close()


async def test_an_error_event_ends_a_failing_stream(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    openai_responses_upstream.enqueue(
        Reply(text="a b c", error_event_after_chunks=3, error_type="rate_limit_exceeded")
    )
    events = sse_data(await raw_stream(openai_responses_upstream, {"model": "gpt-5", "input": "x"}))

    last = ResponseErrorEvent.model_validate(events[-1], strict=True)
    assert (last.type, last.code, last.sequence_number) == ("error", "rate_limit_exceeded", 3)
    assert len(events) == 4


async def test_a_failing_stream_may_end_with_response_failed() -> None:
    async with OpenAIResponsesUpstream(api_key=OPENAI_UPSTREAM_KEY, failure="response.failed") as fake:
        fake.enqueue(Reply(text="a b c", error_event_after_chunks=2, error_message="overloaded"))
        events = sse_data(await raw_stream(fake, {"model": "gpt-5", "input": "x"}))

    last = ResponseFailedEvent.model_validate(events[-1], strict=True)
    assert last.sequence_number == 2 and last.response.status == "failed"
    assert last.response.error is not None and last.response.error.message == "overloaded"


# -- what OpenAI refuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {"model": "gpt-5", "input": "x", "max_completion_tokens": 5},
            "max_completion_tokens",
            "Unknown parameter",
        ),
        ({"input": "x"}, "model", "Missing required parameter"),
        ({"model": "gpt-5"}, "input", "Missing required parameter"),
        ({"model": "gpt-5", "input": [{"type": "bogus"}]}, "input[0].type", "Invalid value"),
        (
            {
                "model": "gpt-5",
                "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "hi"}]}],
            },
            "input[0].content[0]",
            "Supported values are: 'output_text', 'refusal'",
        ),
        (
            {"model": "gpt-5", "input": [{"type": "function_call_output", "call_id": "c"}]},
            "input[0].output",
            "Missing",
        ),
        ({"model": "gpt-5", "input": [{"type": "reasoning", "id": "rs_1"}]}, "input[0].summary", "Missing"),
        (
            {"model": "gpt-5", "input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools[0].name",
            "Missing",
        ),
        (
            {"model": "gpt-5", "input": "x", "include": ["reasoning.everything"]},
            "include[0]",
            "Invalid value",
        ),
        (
            {"model": "gpt-5", "input": "x", "stream_options": {"include_obfuscation": False}},
            "stream_options",
            "only allowed",
        ),
        ({"model": "gpt-5", "input": "x", "max_output_tokens": 5}, "max_output_tokens", "minimum value"),
    ],
)
async def test_what_openai_refuses_is_a_400_naming_the_param(
    openai_responses_upstream: OpenAIResponsesUpstream, body: dict[str, Any], param: str, message: str
) -> None:
    status, answer = await raw(openai_responses_upstream, body)

    assert status == 400
    error = answer["error"]
    assert error["param"] == param and message in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_a_refused_request_is_recorded_but_takes_no_reply(
    openai_responses_upstream: OpenAIResponsesUpstream,
) -> None:
    openai_responses_upstream.enqueue(Reply(text="kept"))
    await raw(openai_responses_upstream, {"model": "gpt-5", "input": "x", "bogus": 1})
    _, answer = await raw(openai_responses_upstream, {"model": "gpt-5", "input": "x"})

    assert openai_responses_upstream.hits == 2
    assert openai_responses_upstream.requests[0].json["bogus"] == 1
    assert Response.model_validate(answer).output_text == "kept"


async def test_the_route_without_v1_serves_too(openai_responses_upstream: OpenAIResponsesUpstream) -> None:
    status, _ = await post_raw(
        openai_responses_upstream.url + "/responses", {"model": "m", "input": "x"}, AUTH
    )

    assert status == 200 and openai_responses_upstream.last.path == "/responses"
