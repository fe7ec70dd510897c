"""Anthropic Messages responses and errors: upstream body -> canonical, canonical -> client body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import Message as SDKMessage

from waypost.core.errors import (
    BadRequest,
    GatewayError,
    Overloaded,
    RateLimited,
    UpstreamBadRequest,
    UpstreamError,
)
from waypost.core.events import fold
from waypost.core.types import (
    ChatResponse,
    FinishReason,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)
from waypost.wire.anthropic.messages import StreamDecoder, decode_response, encode_error, encode_response

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"
RESPONSES = sorted(p.name for p in FIXTURES.glob("response_*.json"))


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def strictly_valid(body: dict[str, Any]) -> SDKMessage:
    return SDKMessage.model_validate(body, strict=True)


# -- decode ----------------------------------------------------------------------------------


def test_decode_text_response() -> None:
    resp = decode_response(fixture("response_text.json"))
    assert resp.id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert resp.model == "claude-sonnet-4-5-20250929"
    assert resp.content == [TextPart("Hello! How can I help you today?")]
    assert resp.finish_reason is FinishReason.STOP
    assert resp.usage == Usage(input_tokens=12, output_tokens=10)


def test_decode_parallel_tool_use_arguments_are_compact_json() -> None:
    resp = decode_response(fixture("response_tool_use.json"))
    assert resp.finish_reason is FinishReason.TOOL_CALLS
    assert resp.tool_calls() == [
        ToolCallPart(
            "toolu_01A09q90qw90lq917835lq9",
            "get_weather",
            '{"location":"San Francisco, CA","unit":"celsius"}',
        ),
        ToolCallPart(
            "toolu_01B4aNbQp8sQ6mXy3dP2K7Zc", "get_weather", '{"location":"Paris, France","unit":"celsius"}'
        ),
    ]


def test_decode_thinking_signature_redacted_thinking_and_thinking_tokens() -> None:
    resp = decode_response(fixture("response_thinking.json"))
    thinking, redacted, text = resp.content
    assert thinking == ThinkingPart(
        text="Let me analyze this step by step. 27 * 453 = 12231.",
        signature="WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL",
    )
    assert redacted == ThinkingPart(
        redacted=True, data="EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"
    )
    assert text == TextPart("27 * 453 = 12,231")
    assert resp.usage.reasoning_tokens == 290


def test_decode_usage_counts_cache_reads_and_writes_into_input() -> None:
    resp = decode_response(fixture("response_cached.json"))
    assert resp.usage == Usage(
        input_tokens=21 + 188086 + 2048,
        output_tokens=393,
        cache_read_tokens=2048,
        cache_write_tokens=188086,
    )


def test_decode_stop_sequence() -> None:
    resp = decode_response(fixture("response_cached.json"))
    assert resp.finish_reason is FinishReason.STOP_SEQUENCE
    assert resp.stop_sequence == "</answer>"


def test_decode_skips_server_tool_blocks_and_keeps_the_text() -> None:
    resp = decode_response(fixture("response_server_tool.json"))
    assert resp.content == [
        TextPart("I'll search for that."),
        TextPart("Claude Shannon was born on April 30, 1916."),
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("stop_sequence", FinishReason.STOP_SEQUENCE),
        ("refusal", FinishReason.REFUSAL),
        ("pause_turn", FinishReason.PAUSE),
        ("model_context_window_exceeded", FinishReason.LENGTH),
        (None, FinishReason.STOP),  # an answer without a stop reason ended, as its stream would read
    ],
)
def test_decode_stop_reason_map(stop_reason: str | None, finish: FinishReason) -> None:
    body = fixture("response_text.json")
    body["stop_reason"] = stop_reason
    assert decode_response(body).finish_reason is finish


@pytest.mark.parametrize("body", [None, "oops", [], {"id": "msg_1"}, {"content": "text"}])
def test_decode_garbage_is_an_upstream_error(body: Any) -> None:
    with pytest.raises(UpstreamError):
        decode_response(body)


def test_decode_odd_fields_never_crash() -> None:
    body = {
        "id": 5,
        "content": [
            "junk",
            {"type": "text"},
            {"type": "tool_use", "id": None, "input": [1, 2]},
            {"type": "thinking", "thinking": None, "signature": 3},
            {"type": "text", "text": "ok"},
        ],
        "stop_reason": 17,
        "usage": {"input_tokens": "ten", "output_tokens": -3, "cache_read_input_tokens": None},
    }
    resp = decode_response(body)
    assert resp.id == ""
    # A text block without text is an empty one, as its stream would read.
    assert resp.content == [TextPart(""), ToolCallPart("", "", "[1,2]"), ThinkingPart(), TextPart("ok")]
    assert resp.finish_reason is FinishReason.STOP
    assert resp.usage == Usage()


def streamed(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events the Messages API streams for the answer in ``body``: every block opened
    empty, its content in deltas."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": {"id": body["id"], "model": body["model"], "usage": body["usage"]}})
    ]
    for i, block in enumerate(body["content"]):
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        start = dict(block)
        if kind == "text":
            start["text"] = ""
            deltas = [{"type": "text_delta", "text": block["text"]}]
        elif kind == "tool_use":
            start["input"] = {}
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        elif kind == "thinking":
            start.update(thinking="", signature="")
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        events.append(("content_block_start", {"index": i, "content_block": start}))
        events += [("content_block_delta", {"index": i, "delta": delta}) for delta in deltas]
        events.append(("content_block_stop", {"index": i}))
    delta = {"stop_reason": body["stop_reason"], "stop_sequence": body["stop_sequence"]}
    events.append(
        ("message_delta", {"delta": delta, "usage": {"output_tokens": body["usage"]["output_tokens"]}})
    )
    events.append(("message_stop", {}))
    return [(name, {"type": name, **data}) for name, data in events]


@pytest.mark.parametrize("name", RESPONSES)
def test_a_body_decodes_as_the_fold_of_its_stream(name: str) -> None:
    body = fixture(name)
    decoder = StreamDecoder()
    events = [ev for event, data in streamed(body) for ev in decoder.feed(event, data)]
    expected = fold(events)
    resp = decode_response(body)
    # Arguments arrive as the upstream wrote them in a stream, re-serialised from a body.
    for part in [*resp.content, *expected.content]:
        if isinstance(part, ToolCallPart):
            part.arguments = json.dumps(json.loads(part.arguments))
    assert resp == expected


def test_decode_error_body_maps_to_the_error_tree() -> None:
    with pytest.raises(Overloaded):
        decode_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(UpstreamBadRequest):
        decode_response({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})


# -- encode ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESPONSES)
def test_every_decoded_fixture_encodes_to_a_strictly_valid_message(name: str) -> None:
    strictly_valid(encode_response(decode_response(fixture(name)), "claude-sonnet-4-5"))


@pytest.mark.parametrize("name", ["response_text.json", "response_tool_use.json", "response_thinking.json"])
def test_decode_then_encode_round_trips_the_fixture(name: str) -> None:
    body = fixture(name)
    out = encode_response(decode_response(body), body["model"])
    assert out["content"] == body["content"]
    assert out["stop_reason"] == body["stop_reason"]
    assert out["id"] == body["id"]


def test_encode_usage_splits_cache_out_of_input_tokens() -> None:
    body = encode_response(decode_response(fixture("response_cached.json")), "m")
    assert body["usage"] == {
        "input_tokens": 21,
        "output_tokens": 393,
        "cache_creation_input_tokens": 188086,
        "cache_read_input_tokens": 2048,
        "cache_creation": {"ephemeral_5m_input_tokens": 188086, "ephemeral_1h_input_tokens": 0},
    }
    assert body["stop_sequence"] == "</answer>"


def test_encode_from_another_provider_response() -> None:
    resp = ChatResponse(
        id="chatcmpl-9abc",
        model="gpt-4o",
        content=[
            TextPart(""),
            ToolCallPart("call_1", "lookup", '{"q": "x"}'),
            ImagePart(url="https://x/y.png"),
        ],
        finish_reason=FinishReason.TOOL_CALLS,
        usage=Usage(input_tokens=100, output_tokens=20, cache_read_tokens=64),
    )
    body = encode_response(resp, "gpt-4o")
    assert body["id"] == "msg_chatcmpl-9abc"
    assert body["content"] == [{"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "x"}}]
    assert body["usage"]["input_tokens"] == 36
    strictly_valid(body)


def test_encode_tool_calls_with_a_plain_stop_report_tool_use() -> None:
    resp = ChatResponse(
        id="r1", model="m", content=[ToolCallPart("c1", "f", "{}")], finish_reason=FinishReason.STOP
    )
    assert encode_response(resp, "m")["stop_reason"] == "tool_use"


def test_encode_invalid_or_non_object_arguments_become_an_empty_input() -> None:
    resp = ChatResponse(
        id="r1",
        model="m",
        content=[ToolCallPart("c1", "f", '{"a": '), ToolCallPart("c2", "f", "[1]")],
        finish_reason=FinishReason.TOOL_CALLS,
    )
    body = encode_response(resp, "m")
    assert [b["input"] for b in body["content"]] == [{}, {}]
    strictly_valid(body)


def test_encode_missing_tool_ids_get_unique_ones() -> None:
    resp = ChatResponse(
        id="gem-1", model="m", content=[ToolCallPart("", "f", "{}"), ToolCallPart("", "g", "{}")]
    )
    ids = [b["id"] for b in encode_response(resp, "m")["content"]]
    assert len(set(ids)) == 2 and all(ids)


def test_encode_unsigned_thinking_gets_an_empty_signature() -> None:
    resp = ChatResponse(id="r", model="m", content=[ThinkingPart("reasoning"), TextPart("answer")])
    body = encode_response(resp, "m")
    assert body["content"][0] == {"type": "thinking", "thinking": "reasoning", "signature": ""}
    strictly_valid(body)


def test_encode_empty_response_has_empty_content() -> None:
    body = encode_response(ChatResponse(id="", model=""), "m")
    assert body["content"] == []
    assert body["stop_reason"] == "end_turn"
    assert body["id"].startswith("msg_")
    strictly_valid(body)


def test_encode_a_response_without_id_takes_the_callers_fresh_one() -> None:
    resp = ChatResponse(id="", model="m", content=[ToolCallPart("", "f", "{}")])
    body = encode_response(resp, "m", fallback_id="0123abcd")
    assert body["id"] == "msg_0123abcd"
    assert body["content"][0]["id"] == "toolu_0123abcd_0"  # derived, so unique as the id is
    assert encode_response(ChatResponse(id="up-1", model="m"), "m", fallback_id="x")["id"] == "msg_up-1"


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        (FinishReason.STOP, "end_turn"),
        (FinishReason.LENGTH, "max_tokens"),
        (FinishReason.TOOL_CALLS, "tool_use"),
        (FinishReason.STOP_SEQUENCE, "stop_sequence"),
        (FinishReason.CONTENT_FILTER, "refusal"),
        (FinishReason.REFUSAL, "refusal"),
        (FinishReason.PAUSE, "pause_turn"),
    ],
)
def test_encode_stop_reason_map(finish: FinishReason, stop_reason: str) -> None:
    body = encode_response(
        ChatResponse(id="r", model="m", content=[TextPart("x")], finish_reason=finish), "m"
    )
    assert body["stop_reason"] == stop_reason
    strictly_valid(body)


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "status", "etype"),
    [
        (BadRequest("messages: bad"), 400, "invalid_request_error"),
        (RateLimited("slow down"), 429, "rate_limit_error"),
        (Overloaded("busy"), 529, "overloaded_error"),
        (UpstreamError("boom"), 502, "api_error"),
    ],
)
def test_encode_error(err: GatewayError, status: int, etype: str) -> None:
    assert encode_error(err) == (status, {"type": "error", "error": {"type": etype, "message": err.message}})


def test_encode_sanitises_tool_ids_so_clients_can_replay_them_anywhere() -> None:
    resp = ChatResponse(id="r", model="m", content=[ToolCallPart("fc:1/a", "f", "{}")])
    assert encode_response(resp, "m")["content"][0]["id"] == "fc_1_a"
