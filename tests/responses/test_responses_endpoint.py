"""``POST /v1/responses`` through the gateway to the OpenAI chat and Anthropic fakes: the answer
as a response object or as the typed event stream (both checked strictly against the official
SDK's models), and refusals in the Responses API's error shape."""

from __future__ import annotations

import json

import pytest

from tests.control.client import Control
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.fakes.responses_sdk import accumulate, validate_event, validate_response
from tests.responses.conftest import KINDS, create, events, output_text, upstream_of, via


@pytest.mark.parametrize("kind", KINDS)
async def test_a_text_answer_is_a_response_object(
    api: Control, kind: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    answer = await create(api, {"model": via(kind), "input": "hello"})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    validate_response(body)
    assert body["id"].startswith("resp_") and body["object"] == "response"
    assert (body["status"], body["model"]) == ("completed", via(kind))
    assert output_text(body) == "echo: hello"
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    assert answer.headers["x-waypost-deployment"] == via(kind)
    assert upstream_of(kind, openai_upstream, anthropic_upstream).hits == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_streamed_answer_is_the_typed_event_stream(api: Control, kind: str) -> None:
    answer = await create(api, {"model": via(kind), "input": "hello there", "stream": True})

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    stream = events(answer)
    for event in stream:
        validate_event(event)
    assert [e["sequence_number"] for e in stream] == list(range(len(stream)))
    assert [stream[0]["type"], stream[1]["type"], stream[-1]["type"]] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    final = accumulate(stream)
    assert final is not None and final.output_text == "echo: hello there"
    assert final.id.startswith("resp_") and stream[0]["response"]["id"] == final.id


async def test_instructions_reach_the_upstream_as_the_system_prompt(
    api: Control, anthropic_upstream: AnthropicUpstream
) -> None:
    answer = await create(api, {"model": via("anthropic"), "instructions": "Be brief.", "input": "hi"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["instructions"] == "Be brief."
    sent = anthropic_upstream.last.json
    assert "Be brief." in str(sent["system"])
    assert sent["messages"][-1]["role"] == "user"


async def test_a_function_call_is_an_output_item(api: Control, openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(tool_calls=[("call_1", "get_weather", {"city": "Paris"})]))
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]

    answer = await create(api, {"model": via("openai"), "input": "weather?", "tools": tools})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    validate_response(body)
    [call] = [item for item in body["output"] if item["type"] == "function_call"]
    assert (call["call_id"], call["name"]) == ("call_1", "get_weather")
    assert json.loads(call["arguments"]) == {"city": "Paris"}


async def test_an_unknown_model_is_refused_in_the_responses_error_shape(api: Control) -> None:
    answer = await create(api, {"model": "nope", "input": "hi"})

    assert answer.status_code == 404
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "model_not_found"


async def test_a_store_that_is_not_a_boolean_is_refused_naming_it(api: Control) -> None:
    answer = await create(api, {"model": via("openai"), "input": "hi", "store": "yes"})

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "store"


async def test_the_route_takes_only_post(api: Control) -> None:
    answer = await api.get("/v1/responses")

    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["error"]["message"] == "/v1/responses takes POST, not GET."


async def test_the_path_without_v1_is_served_too(api: Control) -> None:
    answer = await api.post("/responses", {"model": via("openai"), "input": "hello"})

    assert answer.status_code == 200, answer.text
    assert output_text(answer.json()) == "echo: hello"
