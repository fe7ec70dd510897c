"""Bedrock Converse answers -> canonical responses and streams, on recorded payloads: content
blocks, stop reasons, usage (cache tokens added into the input), and errors mapped once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.eventstream_encoder import encode_message

from waypost.core.errors import (
    GatewayError,
    Overloaded,
    RateLimited,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
)
from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    StreamEvent,
    TextDelta,
    UsageUpdate,
    fold,
)
from waypost.core.types import FinishReason, TextPart, ThinkingPart, ToolCallPart, Usage
from waypost.wire.bedrock.converse import StreamDecoder, decode_response, error_for, usage_from_bedrock
from waypost.wire.eventstream import EventStreamDecoder

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bedrock"
MODEL = "anthropic.claude-sonnet-4-20250514-v1:0"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def frames(name: str) -> bytes:
    return b"".join(
        encode_message(m["headers"], json.dumps(m["payload"]).encode()) for m in load(name)["messages"]
    )


def run_stream(raw: bytes, *, chunk: int | None = None) -> list[StreamEvent]:
    """Decode a ConverseStream body fed in pieces of ``chunk`` bytes (whole when None)."""
    messages = EventStreamDecoder()
    decoder = StreamDecoder(model=MODEL, response_id="req-1")
    out: list[StreamEvent] = []
    step = chunk or len(raw)
    for i in range(0, len(raw), step):
        for message in messages.feed(raw[i : i + step]):
            out += decoder.feed(message)
    return out + decoder.finish()


# -- non-streamed ------------------------------------------------------------------------------


def test_a_text_answer_decodes_with_cache_reads_added_to_the_input() -> None:
    resp = decode_response(load("response_text.json"), model=MODEL, response_id="req-1")
    assert resp.content == [TextPart("Hello! How can I help you today?")]
    assert (resp.id, resp.model, resp.finish_reason) == ("req-1", MODEL, FinishReason.STOP)
    assert resp.usage == Usage(input_tokens=1512, output_tokens=11, cache_read_tokens=1500)


def test_parallel_tool_calls_decode_with_their_inputs_as_json_text() -> None:
    resp = decode_response(load("response_tool_use.json"), model=MODEL)
    assert resp.text() == "I'll check the weather in both cities."
    assert resp.tool_calls() == [
        ToolCallPart("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "get_weather", '{"city":"Paris"}'),
        ToolCallPart("tooluse_Xv2pBh0sQkOmGx1Yd6bLQw", "get_weather", '{"city":"Lyon, France"}'),
    ]
    assert resp.finish_reason == FinishReason.TOOL_CALLS


def test_reasoning_decodes_with_its_signature_and_redacted_reasoning_keeps_its_bytes() -> None:
    resp = decode_response(load("response_thinking.json"), model=MODEL)
    assert resp.content[:2] == [
        ThinkingPart(
            "The user asks for 17 * 23. 17*20=340, 17*3=51, total 391.", signature="EqQBCkgIAxABGAIiQL2sig=="
        ),
        ThinkingPart(redacted=True, data="cmVkYWN0ZWQtYnl0ZXM="),
    ]
    assert resp.usage.cache_write_tokens == 2048 and resp.usage.input_tokens == 2096


def test_the_matched_stop_sequence_is_read_from_the_additional_fields() -> None:
    resp = decode_response(load("response_stop_sequence.json"), model=MODEL)
    assert (resp.finish_reason, resp.stop_sequence) == (FinishReason.STOP_SEQUENCE, "four")


def test_a_guardrail_intervention_is_a_content_filter_finish() -> None:
    assert (
        decode_response(load("response_guardrail.json"), model=MODEL).finish_reason
        == FinishReason.CONTENT_FILTER
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", FinishReason.STOP),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("max_tokens", FinishReason.LENGTH),
        ("stop_sequence", FinishReason.STOP_SEQUENCE),
        ("content_filtered", FinishReason.CONTENT_FILTER),
        ("guardrail_intervened", FinishReason.CONTENT_FILTER),
        ("model_context_window_exceeded", FinishReason.LENGTH),
        ("something_new", FinishReason.STOP),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: FinishReason) -> None:
    body = {"output": {"message": {"role": "assistant", "content": []}}, "stopReason": stop_reason}
    assert decode_response(body, model=MODEL).finish_reason == finish


@pytest.mark.parametrize("body", [[], {"output": {}}, {"output": {"message": {"content": "x"}}}, "text"])
def test_a_body_without_message_content_is_an_upstream_error(body: Any) -> None:
    with pytest.raises(UpstreamError):
        decode_response(body, model=MODEL)


def test_unknown_and_malformed_blocks_are_skipped() -> None:
    body = {
        "output": {
            "message": {
                "content": [
                    {"image": {}},
                    "junk",
                    {"text": 5},
                    {"citationsContent": {"content": [{"text": "cited"}]}},
                ]
            }
        },
        "stopReason": "end_turn",
    }
    assert decode_response(body, model=MODEL).content == [TextPart("cited")]


def test_usage_counts_that_are_not_numbers_count_as_zero() -> None:
    assert (
        usage_from_bedrock({"inputTokens": "9", "outputTokens": -3, "cacheReadInputTokens": True}) == Usage()
    )


# -- streamed ----------------------------------------------------------------------------------


def test_a_text_stream_opens_its_block_on_the_first_delta_and_reports_all_input_tokens() -> None:
    events = run_stream(frames("stream_text.json"))
    assert events[0] == MessageStart(id="req-1", model=MODEL)
    assert events[1] == BlockStart(0, "text")
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello", "! How can I", " help?"]
    assert events[-4:] == [
        BlockStop(0),
        Finish(FinishReason.STOP),
        UsageUpdate(Usage(input_tokens=310, output_tokens=7, cache_read_tokens=200, cache_write_tokens=100)),
        MessageEnd(),
    ]


@pytest.mark.parametrize("name", ["stream_text.json", "stream_tool_use.json", "stream_thinking.json"])
@pytest.mark.parametrize("chunk", [1, 7, 64, None])
def test_a_stream_decodes_the_same_however_its_bytes_are_split(name: str, chunk: int | None) -> None:
    assert run_stream(frames(name), chunk=chunk) == run_stream(frames(name))


def test_a_tool_use_stream_folds_into_text_and_calls_with_assembled_arguments() -> None:
    resp = fold(run_stream(frames("stream_tool_use.json")))
    assert resp.text() == "Checking."
    assert resp.tool_calls() == [
        ToolCallPart("tooluse_abc123", "get_weather", '{"city": "Paris"}'),
        ToolCallPart("tooluse_def456", "get_time", "{}"),
    ]
    assert resp.finish_reason == FinishReason.TOOL_CALLS
    assert resp.usage == Usage(input_tokens=380, output_tokens=55)


def test_a_body_decodes_as_the_fold_of_the_stream_of_the_same_answer() -> None:
    body = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_abc123",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                    {"toolUse": {"toolUseId": "tooluse_def456", "name": "get_time", "input": {}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 380, "outputTokens": 55, "totalTokens": 435},
    }
    streamed = fold(run_stream(frames("stream_tool_use.json")))
    decoded = decode_response(body, model=MODEL, response_id="req-1")
    # A stream carries arguments as the model wrote them, a body as an object: compare the values.
    for part in [*streamed.content, *decoded.content]:
        if isinstance(part, ToolCallPart):
            part.arguments = json.dumps(part.input())
    assert decoded == streamed


def test_a_thinking_stream_keeps_the_signature_and_the_whole_redacted_data() -> None:
    events = run_stream(frames("stream_thinking.json"))
    resp = fold(events)
    assert resp.content == [
        ThinkingPart("Let me think.", signature="EqQBCkgIsig=="),
        ThinkingPart(redacted=True, data="cmVkYWN0ZWQ="),
        TextPart("391."),
    ]
    assert [e.index for e in events if isinstance(e, BlockStart)] == [0, 1, 2]


def test_a_mid_stream_exception_raises_after_the_events_before_it() -> None:
    messages = list(EventStreamDecoder().feed(frames("stream_exception.json")))
    decoder = StreamDecoder(model=MODEL)
    events = decoder.feed(messages[0]) + decoder.feed(messages[1])
    assert [type(e) for e in events] == [MessageStart, BlockStart, TextDelta]
    with pytest.raises(UpstreamError) as err:
        decoder.feed(messages[2])
    assert "Model stream error" in err.value.message and "upstream model crashed" in err.value.message


@pytest.mark.parametrize(
    ("exception_type", "kind"),
    [
        ("throttlingException", RateLimited),
        ("validationException", UpstreamBadRequest),
        ("serviceUnavailableException", Overloaded),
        ("internalServerException", UpstreamError),
        ("modelStreamErrorException", UpstreamError),
    ],
)
def test_exception_frames_map_like_http_errors(exception_type: str, kind: type[GatewayError]) -> None:
    frame = encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        b'{"message": "no"}',
    )
    (message,) = EventStreamDecoder().feed(frame)
    with pytest.raises(kind):
        StreamDecoder(model=MODEL).feed(message)


def test_an_error_frame_maps_its_error_code() -> None:
    frame = encode_message(
        {":message-type": "error", ":error-code": "ThrottlingException", ":error-message": "slow down"}
    )
    (message,) = EventStreamDecoder().feed(frame)
    with pytest.raises(RateLimited, match="slow down"):
        StreamDecoder(model=MODEL).feed(message)


def test_a_stream_that_ends_before_message_stop_is_interrupted() -> None:
    raw = frames("stream_text.json")
    messages = list(EventStreamDecoder().feed(raw))[:3]
    decoder = StreamDecoder(model=MODEL)
    for message in messages:
        decoder.feed(message)
    with pytest.raises(StreamInterrupted):
        decoder.finish()


def test_a_stream_that_ends_after_message_stop_without_metadata_completes() -> None:
    messages = list(EventStreamDecoder().feed(frames("stream_text.json")))[:-1]
    decoder = StreamDecoder(model=MODEL)
    events = [e for m in messages for e in decoder.feed(m)] + decoder.finish()
    assert isinstance(events[-1], MessageEnd) and fold(events).text() == "Hello! How can I help?"


def test_an_event_payload_that_is_not_json_is_a_value_error_for_the_stream_loop() -> None:
    # providers.streaming turns it into UpstreamInvalid, as for every provider's garbage.
    frame = encode_message({":event-type": "contentBlockDelta", ":message-type": "event"}, b"{nope")
    (message,) = EventStreamDecoder().feed(frame)
    with pytest.raises(ValueError, match="an event payload that is not JSON"):
        StreamDecoder(model=MODEL).feed(message)


def test_unknown_events_and_malformed_deltas_are_ignored() -> None:
    decoder = StreamDecoder(model=MODEL)

    def feed(event_type: str, payload: Any) -> list[StreamEvent]:
        frame = encode_message(
            {":event-type": event_type, ":message-type": "event"}, json.dumps(payload).encode()
        )
        return [e for m in EventStreamDecoder().feed(frame) for e in decoder.feed(m)]

    assert feed("somethingNew", {"x": 1}) == []
    assert feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": "text"}) == [
        MessageStart(id="", model=MODEL)
    ]
    assert feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}}) == []
    assert feed("contentBlockStart", {"contentBlockIndex": 1, "start": {"image": {"format": "png"}}}) == []


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "status", "kind"),
    [
        ("ThrottlingException", 429, RateLimited),
        ("ValidationException", 400, UpstreamBadRequest),
        ("ResourceNotFoundException", 404, UpstreamBadRequest),
        ("AccessDeniedException", 403, UpstreamAuthError),
        ("UnrecognizedClientException", 403, UpstreamAuthError),
        ("ServiceUnavailableException", 503, Overloaded),
        ("ModelNotReadyException", 429, Overloaded),
        ("ModelTimeoutException", 408, UpstreamTimeout),
        ("ModelErrorException", 424, UpstreamError),
        ("ModelStreamErrorException", 424, UpstreamError),
        ("InternalServerException", 500, UpstreamError),
        ("ServiceQuotaExceededException", 400, RateLimited),
    ],
)
def test_http_errors_map_by_their_error_type(error_type: str, status: int, kind: type[GatewayError]) -> None:
    header = f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    err = error_for(header, "details", model="claude", upstream_status=status)
    assert type(err) is kind
    assert err.upstream_status == status and err.provider == "bedrock"


def test_credential_errors_never_echo_bedrocks_message() -> None:
    err = error_for(
        "AccessDeniedException",
        "User arn:aws:iam::123:user/x is not authorized",
        model="claude",
        upstream_status=403,
    )
    assert "arn:aws" not in err.message and "claude" in err.message


def test_an_unknown_error_type_falls_back_to_its_status() -> None:
    assert isinstance(error_for("NewException", "x", model="m", upstream_status=429), RateLimited)
    assert isinstance(error_for(None, "x", model="m", upstream_status=502), UpstreamError)
