"""The Responses API ``response`` object: canonical answers encoded (checked strictly with the
official SDK's models), upstream bodies decoded (recorded-shape fixtures), usage and errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.responses_sdk import validate_response

from waypost.core.errors import BadRequest, BudgetExceeded, RateLimited, UpstreamError
from waypost.core.passthrough import Passthrough
from waypost.core.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    Usage,
)
from waypost.wire.openai.responses import (
    FORMAT,
    decode_response,
    encode_error,
    encode_response,
    encrypted_content,
    thinking_part,
    usage_to_responses,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai_responses"
RID = "resp_5f0c1d2e3a4b"
ENC = "gAAAAABo1aPmX3q9Lw2vR8tYbN6cK1jH4fD0sZ7aQ5eU3iO9pM2xV8rT1yW6nB4gC0kL7hJ5fS3dA9qE2zX8cV6bN1mQ4wR7tY0uI3oP5a=="


def fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return body


def request(**fields: Any) -> ChatRequest:
    return ChatRequest(model="gpt-test", messages=[Message("user", [TextPart("hi")])], **fields)


def encode(
    resp: ChatResponse, req: ChatRequest | None = None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    return encode_response(resp, req or request(), response_id=RID, created_at=1_700_000_000, body=body)


def answer(*parts: Any, finish: FinishReason = FinishReason.STOP, usage: Usage | None = None) -> ChatResponse:
    return ChatResponse(
        id="up-1", model="upstream-model", content=list(parts), finish_reason=finish, usage=usage or Usage()
    )


# -- encoding ----------------------------------------------------------------------------------------


def test_text_answer_is_a_completed_response_the_sdk_accepts_strictly() -> None:
    body = encode(answer(TextPart("Hello there."), usage=Usage(input_tokens=12, output_tokens=3)))
    parsed = validate_response(body)
    assert parsed.output_text == "Hello there."
    assert (parsed.id, parsed.status, parsed.model, parsed.object) == (
        RID,
        "completed",
        "gpt-test",
        "response",
    )
    assert body["output"][0]["id"] == "msg_5f0c1d2e3a4b_0"
    assert body["output"][0]["content"][0] == {
        "type": "output_text",
        "text": "Hello there.",
        "annotations": [],
        "logprobs": [],
    }


def test_parallel_tool_calls_are_function_call_items_in_order() -> None:
    body = encode(
        answer(
            TextPart("Checking both."),
            ToolCallPart("call_a", "get_weather", '{"city":"Paris"}'),
            ToolCallPart("toolu_b", "get_time", '{"city":"Tokyo"}'),
            finish=FinishReason.TOOL_CALLS,
        )
    )
    validate_response(body)
    calls = [item for item in body["output"] if item["type"] == "function_call"]
    assert [(c["id"], c["call_id"], c["name"], c["arguments"], c["status"]) for c in calls] == [
        ("fc_5f0c1d2e3a4b_1", "call_a", "get_weather", '{"city":"Paris"}', "completed"),
        ("fc_5f0c1d2e3a4b_2", "toolu_b", "get_time", '{"city":"Tokyo"}', "completed"),
    ]
    assert body["status"] == "completed"


def test_tool_call_without_an_id_gets_one_derived_from_the_response_id() -> None:
    body = encode(answer(ToolCallPart("", "ping", ""), finish=FinishReason.TOOL_CALLS))
    item = body["output"][0]
    assert (item["call_id"], item["arguments"]) == ("call_5f0c1d2e3a4b_0", "{}")


def test_thinking_with_an_anthropic_signature_is_a_reasoning_item_that_reads_back() -> None:
    part = ThinkingPart(text="Let me add them.", signature="EqQBCkYIBxgCKkBsig")
    body = encode(answer(part, TextPart("391")))
    validate_response(body)
    item = body["output"][0]
    assert item == {
        "id": "rs_5f0c1d2e3a4b_0",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "Let me add them."}],
        "encrypted_content": "waypost:signature:EqQBCkYIBxgCKkBsig",
    }
    assert thinking_part("Let me add them.", item["encrypted_content"]) == part


def test_an_openai_reasoning_signature_reaches_the_client_as_openai_sent_it() -> None:
    decoded = decode_response(fixture("response_reasoning.json"))
    thinking = decoded.content[0]
    assert isinstance(thinking, ThinkingPart) and thinking.signature == "openai:" + ENC
    item = encode(decoded)["output"][0]
    assert item["encrypted_content"] == ENC
    assert thinking_part(thinking.text, ENC) == thinking


def test_redacted_thinking_travels_as_encrypted_content_only() -> None:
    part = ThinkingPart(redacted=True, data="EmwKAhgBEgy3va3pzix")
    item = encode(answer(part, TextPart("ok")))["output"][0]
    assert item == {
        "id": "rs_5f0c1d2e3a4b_0",
        "type": "reasoning",
        "summary": [],
        "encrypted_content": "waypost:redacted:EmwKAhgBEgy3va3pzix",
    }
    assert thinking_part("", item["encrypted_content"]) == part


def test_a_gemini_signature_carrier_is_a_reasoning_item_without_summary() -> None:
    part = ThinkingPart(signature="gemini:call0:c2lnbmF0dXJl")
    item = encode(answer(part, ToolCallPart("c1", "f", "{}"), finish=FinishReason.TOOL_CALLS))["output"][0]
    assert (
        item["summary"] == [] and item["encrypted_content"] == "waypost:signature:gemini:call0:c2lnbmF0dXJl"
    )
    assert encrypted_content(thinking_part("", item["encrypted_content"])) == item["encrypted_content"]


def test_parts_with_nothing_to_say_make_no_items() -> None:
    body = encode(answer(TextPart(""), ThinkingPart(), TextPart("only this")))
    assert [item["id"] for item in body["output"]] == ["msg_5f0c1d2e3a4b_0"]


def test_max_tokens_makes_an_incomplete_response_whose_last_item_is_incomplete() -> None:
    body = encode(
        answer(ThinkingPart("hmm", signature="s"), TextPart("Once upon"), finish=FinishReason.LENGTH)
    )
    validate_response(body)
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][-1]["status"] == "incomplete"


@pytest.mark.parametrize("finish", [FinishReason.CONTENT_FILTER, FinishReason.REFUSAL])
def test_filtered_and_refused_answers_are_incomplete_for_content_filter(finish: FinishReason) -> None:
    body = encode(answer(TextPart("I can't"), finish=finish))
    assert (body["status"], body["incomplete_details"]) == ("incomplete", {"reason": "content_filter"})


def test_usage_counts_cached_input_and_reasoning_output() -> None:
    usage = Usage(
        input_tokens=100, output_tokens=40, cache_read_tokens=64, cache_write_tokens=8, reasoning_tokens=30
    )
    assert usage_to_responses(usage) == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 8},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 30},
        "total_tokens": 140,
    }


def test_the_client_body_is_echoed_with_the_values_used() -> None:
    client_body = {
        "model": "gpt-test",
        "instructions": "Be brief.",
        "input": "hi",
        "tools": [
            {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True},
            {"type": "web_search_preview"},
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "text": {
            "format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}
        },
        "reasoning": {"effort": "low", "summary": "auto"},
        "metadata": {"ticket": "42"},
        "store": False,
        "previous_response_id": "resp_prev",
        "truncation": "auto",
        "user": "u-1",
        "max_output_tokens": 500,
        "prompt_cache_key": "k",
    }
    kept = copy.deepcopy(client_body)
    req = request(max_tokens=256, temperature=0.2, user="u-1")  # a stage lowered the token limit
    body = encode(answer(TextPart("{}")), req, client_body)
    validate_response(body)
    assert client_body == kept
    for key in (
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "metadata",
    ):
        assert body[key] == client_body[key], key
    assert (body["store"], body["previous_response_id"], body["truncation"], body["prompt_cache_key"]) == (
        False,
        "resp_prev",
        "auto",
        "k",
    )
    assert (body["max_output_tokens"], body["temperature"], body["top_p"], body["user"]) == (
        256,
        0.2,
        1.0,
        "u-1",
    )


def test_without_a_client_body_the_echo_comes_from_the_request() -> None:
    req = request(
        tools=[Tool("lookup", "Find a thing", {"type": "object", "properties": {}}, strict=False)],
        tool_choice=ToolChoice(mode="tool", name="lookup", parallel=False),
        response_format=ResponseFormat(
            type="json_schema", schema={"type": "object"}, name="thing", strict=True
        ),
    )
    body = encode(answer(TextPart("x")), req)
    validate_response(body)
    assert body["tools"] == [
        {
            "type": "function",
            "name": "lookup",
            "description": "Find a thing",
            "parameters": {"type": "object", "properties": {}},
            "strict": False,
        }
    ]
    assert body["tool_choice"] == {"type": "function", "name": "lookup"}
    assert body["parallel_tool_calls"] is False
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "thing", "schema": {"type": "object"}, "strict": True}
    }
    assert (body["store"], body["truncation"], body["instructions"]) == (True, "disabled", None)


def test_the_request_passthrough_body_stands_in_for_a_missing_body() -> None:
    req = request(
        passthrough=Passthrough({"model": "gpt-test", "input": "hi", "store": False, "instructions": "x"})
    )
    body = encode(answer(TextPart("x")), req)
    assert (body["store"], body["instructions"]) == (False, "x")


def test_errors_take_the_openai_error_shape_and_status() -> None:
    assert encode_error(BadRequest("Invalid 'input[0].type'.", param="input[0].type")) == (
        400,
        {
            "error": {
                "message": "Invalid 'input[0].type'.",
                "type": "invalid_request_error",
                "param": "input[0].type",
                "code": None,
            }
        },
    )
    status, body = encode_error(BudgetExceeded("budget spent", status=402))
    assert status == 402 and body["error"]["code"] == "budget_exceeded"


def test_format_name() -> None:
    assert FORMAT == "openai_responses"


# -- decoding ----------------------------------------------------------------------------------------


def test_decodes_a_text_response() -> None:
    resp = decode_response(fixture("response_text.json"))
    assert resp.text() == "Hello! How can I help you today?"
    assert (resp.id, resp.model, resp.created) == (
        "resp_0a1f6c2e8d3b4e5f0068d5a1c2e3f4a5b6c7d8e9f0a1b2c3",
        "gpt-4.1-2025-04-14",
        1758797000,
    )
    assert resp.finish_reason is FinishReason.STOP
    assert resp.usage == Usage(input_tokens=18, output_tokens=10)


def test_decodes_parallel_function_calls() -> None:
    resp = decode_response(fixture("response_parallel_tool_calls.json"))
    assert [(c.id, c.name, c.input()) for c in resp.tool_calls()] == [
        ("call_kD3sJv0m2XbQ9pLr7TnYwE1a", "get_weather", {"city": "Paris"}),
        ("call_Zq8Hn4bT1yWc6RfA0sLpGu7e", "get_time", {"city": "Tokyo"}),
    ]
    assert resp.finish_reason is FinishReason.TOOL_CALLS
    assert (resp.usage.input_tokens, resp.usage.cache_read_tokens) == (96, 64)


def test_decodes_reasoning_summaries_and_encrypted_content() -> None:
    resp = decode_response(fixture("response_reasoning.json"))
    thinking, text = resp.content
    assert isinstance(thinking, ThinkingPart) and isinstance(text, TextPart)
    assert thinking.text == (
        "**Checking the arithmetic**\n\nThe user asks for 17 * 23. That is 391."
        "\n\n**Answering briefly**\n\nGive the number."
    )
    assert text.text == "17 * 23 = 391."
    assert (resp.usage.output_tokens, resp.usage.reasoning_tokens) == (212, 192)


def test_raw_reasoning_content_is_the_text_when_there_is_no_summary() -> None:
    body = fixture("response_text.json")
    body["output"].insert(
        0,
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "raw"}],
        },
    )
    assert decode_response(body).content[0] == ThinkingPart(text="raw")


def test_an_incomplete_response_finished_for_length() -> None:
    resp = decode_response(fixture("response_incomplete.json"))
    assert resp.finish_reason is FinishReason.LENGTH and resp.text() == "Once upon a time, in a"


def test_a_refusal_is_text_that_finished_as_a_refusal() -> None:
    resp = decode_response(fixture("response_refusal.json"))
    assert resp.text() == "I'm sorry, I can't help with that request."
    assert resp.finish_reason is FinishReason.REFUSAL


def test_a_failed_response_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="failed to generate"):
        decode_response(fixture("response_failed.json"))


def test_a_failed_response_for_rate_limits_stays_a_rate_limit() -> None:
    body = fixture("response_failed.json")
    body["error"] = {"code": "rate_limit_exceeded", "message": "slow down"}
    with pytest.raises(RateLimited):
        decode_response(body)


@pytest.mark.parametrize("body", [[], "x", {"status": "in_progress", "output": []}])
def test_unusable_bodies_are_upstream_errors(body: Any) -> None:
    with pytest.raises(UpstreamError):
        decode_response(body)


def test_built_in_tool_items_are_skipped() -> None:
    body = fixture("response_text.json")
    body["output"].insert(0, {"id": "ws_1", "type": "web_search_call", "status": "completed"})
    assert decode_response(body).content == [TextPart("Hello! How can I help you today?")]


@pytest.mark.parametrize("name", ["response_text.json", "response_parallel_tool_calls.json"])
def test_a_decoded_response_encodes_back_to_the_same_output(name: str) -> None:
    # (Reasoning comes back with its summary parts as one: the canonical text is one string.)
    upstream = fixture(name)
    ours = encode(decode_response(upstream))
    validate_response(ours)

    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k != "id"} for item in items]

    assert strip(ours["output"]) == strip(upstream["output"])


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("response_*.json")))
def test_fixtures_are_valid_for_the_sdk(name: str) -> None:
    validate_response(fixture(name))
