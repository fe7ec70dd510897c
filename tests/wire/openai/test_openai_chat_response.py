"""decode_response / encode_response / encode_error: non-streamed OpenAI bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from waypost.core.errors import (
    BadRequest,
    GatewayError,
    ModelNotFound,
    Overloaded,
    RateLimited,
    UpstreamError,
)
from waypost.core.events import fold
from waypost.core.types import (
    ChatResponse,
    FinishReason,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)
from waypost.wire.openai.chat import (
    StreamDecoder,
    decode_response,
    encode_error,
    encode_response,
    stop_reason_to_openai,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
RESPONSES = [
    "response_text.json",
    "response_parallel_tool_calls.json",
    "response_reasoning_deepseek.json",
    "response_compat_tool_stop.json",
    "response_cache_write.json",
]


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def strictly_valid(body: dict[str, Any]) -> ChatCompletion:
    return ChatCompletion.model_validate(body, strict=True)


# -- decode --------------------------------------------------------------------------------------


def test_text_answer_is_decoded() -> None:
    resp = decode_response(load("response_text.json"))
    assert resp.id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert resp.model == "gpt-4o-2024-08-06"
    assert resp.created == 1741570283
    assert resp.content == [TextPart(text="Hello! How can I help you today?")]
    assert resp.finish_reason is FinishReason.STOP


def test_llama_cpp_function_call_beside_tool_calls_is_the_same_call() -> None:
    resp = decode_response(load("response_llamacpp_tool_call.json"))
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls()] == [
        ("call__0_get_weather_cmpl-5c1e7d6a-0f0e-4c4b-9a53-6f3f1d3c2b11", "get_weather", '{"city": "Paris"}')
    ]


def test_a_lone_legacy_function_call_is_a_call() -> None:
    body = load("response_llamacpp_tool_call.json")
    del body["choices"][0]["message"]["tool_calls"]
    assert [c.name for c in decode_response(body).tool_calls()] == ["get_weather"]


def test_calls_without_ids_or_indexes_stay_separate_calls() -> None:
    body = load("response_parallel_tool_calls.json")
    for call in body["choices"][0]["message"]["tool_calls"]:
        del call["id"]
    assert [(c.id, c.arguments) for c in decode_response(body).tool_calls()] == [
        ("call_0", '{"city":"Paris"}'),
        ("call_1", '{"city":"Tokyo"}'),
    ]


def test_a_body_decodes_as_the_stream_of_the_same_answer() -> None:
    """Non-streamed answers are the fold of the stream: the body, sent as one chunk, agrees."""
    body = load("response_reasoning_deepseek.json")
    message = body["choices"][0]["message"]
    chunk = {**body, "choices": [{"index": 0, "delta": message, "finish_reason": "stop"}]}
    decoder = StreamDecoder()
    assert decode_response(body) == fold([*decoder.feed(chunk), *decoder.finish()])


def test_usage_counts_cached_tokens_inside_input() -> None:
    usage = decode_response(load("response_text.json")).usage
    assert usage == Usage(input_tokens=1117, output_tokens=46, cache_read_tokens=1024)


def test_parallel_tool_calls_are_decoded_in_order() -> None:
    resp = decode_response(load("response_parallel_tool_calls.json"))
    assert resp.content == [
        ToolCallPart(id="call_Zkp4pCRgn8BaM2Tqc2qqjxwm", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCallPart(id="call_kOnD6Yw8q9eRJYbcgVivA4wW", name="get_weather", arguments='{"city":"Tokyo"}'),
    ]
    assert resp.finish_reason is FinishReason.TOOL_CALLS


def test_reasoning_content_comes_first_with_reasoning_tokens() -> None:
    resp = decode_response(load("response_reasoning_deepseek.json"))
    assert resp.content == [
        ThinkingPart(text="Compare 9.11 and 9.8: 9.8 = 9.80 > 9.11."),
        TextPart(text="9.11 is smaller than 9.8."),
    ]
    assert resp.usage.reasoning_tokens == 180
    assert resp.usage.output_tokens == 214


def test_deepseek_cache_hit_tokens_count_as_cache_reads() -> None:
    body = load("response_reasoning_deepseek.json")
    body["usage"]["prompt_cache_hit_tokens"] = 12
    assert decode_response(body).usage.cache_read_tokens == 12


def test_tool_calls_with_finish_stop_mean_tool_calls() -> None:
    resp = decode_response(load("response_compat_tool_stop.json"))
    assert resp.finish_reason is FinishReason.TOOL_CALLS
    assert resp.content == [ToolCallPart(id="call_x1", name="list_files", arguments='{"path":"."}')]


def test_thinking_blocks_with_signatures_win_over_reasoning_text() -> None:
    resp = decode_response(load("response_cache_write.json"))
    assert resp.content[0] == ThinkingPart(text="Short answer.", signature="ErUBCkYIBRgCIkDsig")
    assert len([p for p in resp.content if isinstance(p, ThinkingPart)]) == 1


def test_cache_write_tokens_are_read_from_prompt_details() -> None:
    usage = decode_response(load("response_cache_write.json")).usage
    assert usage == Usage(
        input_tokens=5000,
        output_tokens=12,
        cache_read_tokens=3000,
        cache_write_tokens=1500,
        reasoning_tokens=5,
    )


def test_anthropic_style_cache_creation_count_is_a_cache_write() -> None:
    body = load("response_text.json")
    body["usage"]["cache_creation_input_tokens"] = 77
    assert decode_response(body).usage.cache_write_tokens == 77


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("tool_calls", FinishReason.TOOL_CALLS),
        ("function_call", FinishReason.TOOL_CALLS),
        ("content_filter", FinishReason.CONTENT_FILTER),
        (None, FinishReason.STOP),
        ("something_new", FinishReason.STOP),
    ],
)
def test_finish_reason_mapping(raw: Any, reason: FinishReason) -> None:
    body = load("response_text.json")
    body["choices"][0]["finish_reason"] = raw
    assert decode_response(body).finish_reason is reason


def test_refusal_without_content_is_kept_as_text() -> None:
    body = load("response_text.json")
    body["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    assert decode_response(body).content == [TextPart(text="I can't help with that.")]


def test_legacy_function_call_answer_is_a_tool_call() -> None:
    body = load("response_text.json")
    body["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "f", "arguments": "{}"},
    }
    body["choices"][0]["finish_reason"] = "function_call"
    resp = decode_response(body)
    assert [(c.name, c.arguments) for c in resp.tool_calls()] == [("f", "{}")]


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x"},
        {"id": "x", "choices": []},
        {"id": "x", "choices": "nope"},
        [],
        "text",
        None,
    ],
)
def test_a_body_without_choices_is_an_upstream_error(body: Any) -> None:
    with pytest.raises(UpstreamError):
        decode_response(body)


def test_an_error_body_is_an_upstream_error_with_its_message() -> None:
    with pytest.raises(UpstreamError, match="server had an error"):
        decode_response(load("response_error.json"))


def test_odd_fields_degrade_instead_of_crashing() -> None:
    body = {
        "id": 5,
        "created": "yesterday",
        "model": None,
        "choices": [
            {
                "message": {
                    "content": ["not", "parts"],
                    "tool_calls": [
                        None,
                        {"function": "x"},
                        {"id": 3, "function": {"name": "f", "arguments": {"a": 1}}},
                    ],
                },
                "finish_reason": 7,
            }
        ],
        "usage": {"prompt_tokens": "ten", "completion_tokens": -1, "prompt_tokens_details": None},
    }
    resp = decode_response(body)
    assert resp.id == ""
    assert resp.created == 0
    assert resp.usage == Usage()
    assert [(c.name, c.arguments) for c in resp.tool_calls()] == [("", "{}"), ("f", '{"a":1}')]
    assert resp.finish_reason is FinishReason.TOOL_CALLS


# -- encode --------------------------------------------------------------------------------------


def test_encoded_text_answer_matches_openai() -> None:
    resp = ChatResponse(
        id="chatcmpl-abc",
        model="gpt-4o",
        content=[TextPart(text="Hi")],
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=10, output_tokens=2, cache_read_tokens=4),
        created=1700000000,
    )
    assert encode_response(resp, "alias") == {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "alias",  # the name the client asked for, whatever the upstream answered with
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi", "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_foreign_response_id_is_given_the_chatcmpl_prefix() -> None:
    resp = ChatResponse(id="msg_01ABC", model="claude")
    assert encode_response(resp, "m")["id"] == "chatcmpl-msg_01ABC"


def test_requested_model_is_used_when_the_response_has_none() -> None:
    assert encode_response(ChatResponse(id="x", model=""), "my-alias")["model"] == "my-alias"


def test_content_is_null_when_the_answer_only_calls_tools() -> None:
    resp = ChatResponse(id="x", model="m", content=[ToolCallPart(id="c", name="f", arguments='{"a":1}')])
    message = encode_response(resp, "m")["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    ]


def test_thinking_is_encoded_as_reasoning_content_and_signed_blocks() -> None:
    resp = ChatResponse(
        id="x",
        model="m",
        content=[
            ThinkingPart(text="hmm", signature="sig"),
            ThinkingPart(redacted=True, data="zzz"),
            TextPart(text="A"),
        ],
    )
    message = encode_response(resp, "m")["choices"][0]["message"]
    assert message["reasoning_content"] == "hmm"
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "redacted_thinking", "data": "zzz"},
    ]


def test_cache_writes_are_reported_in_prompt_details() -> None:
    resp = ChatResponse(id="x", model="m", usage=Usage(input_tokens=100, cache_write_tokens=60))
    details = encode_response(resp, "m")["usage"]["prompt_tokens_details"]
    assert details == {"cached_tokens": 0, "cache_write_tokens": 60}


@pytest.mark.parametrize(
    ("reason", "openai"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.TOOL_CALLS, "tool_calls"),
        (FinishReason.STOP_SEQUENCE, "stop"),
        (FinishReason.CONTENT_FILTER, "content_filter"),
        (FinishReason.REFUSAL, "content_filter"),
        (FinishReason.PAUSE, "stop"),
        (None, "stop"),
    ],
)
def test_stop_reason_to_openai(reason: FinishReason | None, openai: str) -> None:
    assert stop_reason_to_openai(reason) == openai


@pytest.mark.parametrize("name", RESPONSES)
def test_round_trip_keeps_the_response(name: str) -> None:
    resp = decode_response(load(name))
    assert decode_response(encode_response(resp, "m")).content == resp.content


@pytest.mark.parametrize("name", RESPONSES)
def test_every_encoded_response_passes_strict_sdk_validation(name: str) -> None:
    resp = decode_response(load(name))
    parsed = strictly_valid(encode_response(resp, "m"))
    assert parsed.choices[0].finish_reason == stop_reason_to_openai(resp.finish_reason)


def test_an_empty_response_passes_strict_sdk_validation() -> None:
    strictly_valid(encode_response(ChatResponse(id="", model=""), "m"))


@pytest.mark.parametrize("name", RESPONSES)
def test_recorded_fixtures_are_themselves_valid(name: str) -> None:
    strictly_valid(load(name))


# -- errors --------------------------------------------------------------------------------------


def test_encode_error_renders_status_and_openai_body() -> None:
    status, body = encode_error(BadRequest("'messages' must be a non-empty array.", param="messages"))
    assert status == 400
    assert body == {
        "error": {
            "message": "'messages' must be a non-empty array.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        }
    }


@pytest.mark.parametrize(
    ("err", "status", "kind", "code"),
    [
        (RateLimited("slow down"), 429, "rate_limit_error", "rate_limit_exceeded"),
        (ModelNotFound("no such model"), 404, "invalid_request_error", "model_not_found"),
        (Overloaded("busy"), 503, "service_unavailable", None),
        (GatewayError("boom"), 500, "server_error", None),
    ],
)
def test_encode_error_uses_the_error_tree(
    err: GatewayError, status: int, kind: str, code: str | None
) -> None:
    got_status, body = encode_error(err)
    assert got_status == status
    assert body["error"]["type"] == kind
    assert body["error"]["code"] == code
