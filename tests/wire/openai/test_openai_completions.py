"""OpenAI legacy completions <-> canonical: requests, text_completion bodies and streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types import Completion

from waypost.core.errors import BadRequest, RateLimited, StreamInterrupted, UpstreamError
from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    UsageUpdate,
    fold,
    response_events,
)
from waypost.core.types import ChatRequest, ChatResponse, FinishReason, Message, TextPart, Usage
from waypost.wire.openai.completions import (
    FORMAT,
    StreamDecoder,
    StreamEncoder,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from waypost.wire.sse import SSEParser

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"


def chunks(name: str) -> list[dict[str, Any]]:
    frames, _ = SSEParser().feed_frames((FIXTURES / name).read_bytes())
    return [json.loads(data) for _, data in frames if data != b"[DONE]"]


def decode_stream(objs: list[dict[str, Any]]) -> list[StreamEvent]:
    decoder = StreamDecoder()
    events: list[StreamEvent] = []
    for obj in objs:
        events += decoder.feed(obj)
    return events + decoder.finish()


def sse_objects(data: bytes) -> list[Any]:
    frames, _ = SSEParser().feed_frames(data)
    return [d.decode() if d == b"[DONE]" else json.loads(d) for _, d in frames]


# -- client requests ------------------------------------------------------------------------------


def test_the_prompt_becomes_one_user_message() -> None:
    req = decode_request({"model": "m", "prompt": "Once upon a time"})
    assert [(m.role, m.text()) for m in req.messages] == [("user", "Once upon a time")]
    assert req.source_format == FORMAT
    assert req.notes == []


def test_sampling_limits_and_stream_options_are_carried() -> None:
    req = decode_request(
        {
            "model": "m",
            "prompt": ["p"],
            "max_tokens": 20,
            "temperature": 0.3,
            "top_p": 0.9,
            "stop": "\n",
            "seed": 7,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "user": "u",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert (req.max_tokens, req.temperature, req.top_p, req.stop, req.seed) == (20, 0.3, 0.9, ["\n"], 7)
    assert (req.presence_penalty, req.frequency_penalty, req.user) == (0.1, 0.2, "u")
    assert req.stream and req.include_usage


def test_fields_a_chat_model_cannot_honour_are_noted() -> None:
    req = decode_request(
        {
            "model": "m",
            "prompt": "p",
            "suffix": "s",
            "echo": True,
            "logprobs": 2,
            "n": 3,
            "logit_bias": {"1": 2},
        }
    )
    assert req.notes == [
        "suffix dropped (chat models have no equivalent)",
        "logit_bias dropped (chat models have no equivalent)",
        "echo dropped: the answer does not repeat the prompt",
        "logprobs dropped",
        "n > 1: only one completion is returned",
    ]


def test_several_prompts_keep_the_first_for_translation() -> None:
    req = decode_request({"model": "m", "prompt": ["first", "second"]})
    assert req.messages[0].text() == "first"
    assert req.notes == ["prompt: only the first of several prompts is answered by non-OpenAI providers"]


@pytest.mark.parametrize("prompt", [[1, 2, 3], [[1, 2], [3]]])
def test_token_prompts_are_kept_for_openai_upstreams_and_noted(prompt: Any) -> None:
    req = decode_request({"model": "m", "prompt": prompt})
    assert req.passthrough is not None and req.passthrough.body["prompt"] == prompt
    assert req.notes == ["prompt: token-id prompts can only be answered by OpenAI-compatible upstreams"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "p"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": ["a", 1]}, "prompt"),
        ({"model": "m", "prompt": {"text": "a"}}, "prompt"),
        ({"model": "m", "prompt": "p", "max_tokens": "ten"}, "max_tokens"),
        ({"model": "m", "prompt": "p", "stop": 3}, "stop"),
        ({"model": "m", "prompt": "p", "logprobs": 6}, "logprobs"),
        ({"model": "m", "prompt": "p", "best_of": 21}, "best_of"),
        ({"model": "m", "prompt": "p", "best_of": 0}, "best_of"),
        ({"model": "m", "prompt": "p", "n": 0}, "n"),
    ],
)
def test_invalid_requests_name_the_offending_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        decode_request(body)
    assert err.value.param == param


@pytest.mark.parametrize(
    ("body", "choices"),
    [
        ({"prompt": "p"}, 1),
        ({"prompt": "p", "n": 3}, 3),
        ({"prompt": "p", "n": 2, "best_of": 5}, 5),
        ({"prompt": ["a", "b", "c"], "n": 2}, 6),
        ({"prompt": [[1, 2], [3], [4]]}, 3),
        ({"prompt": [1, 2, 3], "n": 2}, 2),
    ],
)
def test_choices_count_every_completion_the_upstream_generates(body: dict[str, Any], choices: int) -> None:
    assert decode_request({"model": "m", **body}).choices == choices


# -- upstream requests ----------------------------------------------------------------------------


def test_a_client_body_is_forwarded_with_every_field() -> None:
    body = {"model": "alias", "prompt": ["a", "b"], "suffix": "z", "logprobs": 1, "echo": True}
    assert encode_request(decode_request(body), "gpt-3.5-turbo-instruct", stream=False) == (
        {**body, "model": "gpt-3.5-turbo-instruct"},
        (),
    )


def test_streaming_always_asks_for_usage_and_keeps_other_stream_options() -> None:
    body = {"model": "m", "prompt": "p", "stream": True, "stream_options": {"future_option": 1}}
    out = encode_request(decode_request(body), "up", stream=True).body
    assert out["stream"] is True
    assert out["stream_options"] == {"future_option": 1, "include_usage": True}


def test_a_non_streamed_call_sends_no_stream_options() -> None:
    body = {"model": "m", "prompt": "p", "stream": False, "stream_options": {"include_usage": True}}
    out = encode_request(decode_request(body), "up", stream=False).body
    assert "stream" not in out and "stream_options" not in out


def test_a_canonical_request_becomes_a_prompt() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(role="system", content=[TextPart("Be terse.")]),
            Message(role="user", content=[TextPart("Hi")]),
        ],
        max_tokens=5,
        stop=["\n"],
    )
    assert encode_request(req, "up", stream=False).body == {
        "model": "up",
        "prompt": "Be terse.\n\nHi",
        "max_tokens": 5,
        "stop": ["\n"],
    }


# -- upstream responses ---------------------------------------------------------------------------


def test_a_text_completion_is_decoded() -> None:
    resp = decode_response(json.loads((FIXTURES / "completion_text.json").read_text()))
    assert resp.text() == "\n\nThis is indeed a test"
    assert resp.finish_reason is FinishReason.LENGTH
    assert resp.usage == Usage(input_tokens=5, output_tokens=7)
    assert (resp.id, resp.model, resp.created) == (
        "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
        "gpt-3.5-turbo-instruct",
        1589478378,
    )


def test_a_body_without_choices_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        decode_response({"object": "text_completion"})


def test_a_stream_decodes_to_one_text_block_with_usage() -> None:
    events = decode_stream(chunks("stream_completion_usage.sse"))
    assert isinstance(events[0], MessageStart) and events[0].id == "cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe"
    assert events[1] == BlockStart(0, "text")
    assert events[-4:] == [
        BlockStop(0),
        UsageUpdate(Usage(input_tokens=6, output_tokens=4)),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]
    assert fold(events).text() == "This is a test"


def test_only_the_first_choice_of_a_stream_is_decoded() -> None:
    head = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m"}
    events = decode_stream(
        [
            {**head, "choices": [{"text": "A", "index": 0, "finish_reason": None}]},
            {**head, "choices": [{"text": "B", "index": 1, "finish_reason": None}]},
        ]
    )
    assert fold(events).text() == "A"


def test_an_error_chunk_interrupts_the_stream_with_its_message() -> None:
    decoder = StreamDecoder()
    with pytest.raises(StreamInterrupted, match="overloaded"):
        decoder.feed({"error": {"message": "overloaded", "type": "server_error"}})


def test_a_stream_without_chunks_is_interrupted() -> None:
    with pytest.raises(StreamInterrupted):
        StreamDecoder().finish()


# -- client responses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.STOP_SEQUENCE, "stop"),
        (FinishReason.TOOL_CALLS, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.REFUSAL, "content_filter"),
        (FinishReason.CONTENT_FILTER, "content_filter"),
    ],
)
def test_every_finish_reason_is_one_a_text_completion_allows(reason: FinishReason, expected: str) -> None:
    resp = ChatResponse(id="msg_1", model="claude", content=[TextPart("hi")], finish_reason=reason, created=5)
    body = encode_response(resp, "alias")
    assert body["choices"][0]["finish_reason"] == expected
    Completion.model_validate(body, strict=False)


def test_a_response_validates_with_the_sdk_and_names_the_requested_model() -> None:
    resp = ChatResponse(
        id="msg_1",
        model="claude",
        content=[TextPart("hello")],
        usage=Usage(input_tokens=3, output_tokens=2),
        created=9,
    )
    parsed = Completion.model_validate(encode_response(resp, "alias"))
    assert (parsed.id, parsed.model, parsed.object, parsed.created) == (
        "cmpl-msg_1",
        "alias",
        "text_completion",
        9,
    )
    assert parsed.choices[0].text == "hello"
    assert parsed.usage is not None and (parsed.usage.prompt_tokens, parsed.usage.completion_tokens) == (3, 2)


def test_a_stream_is_text_chunks_then_the_finish_then_done() -> None:
    resp = ChatResponse(id="msg_1", model="c", content=[TextPart("hello")], usage=Usage(3, 2))
    encoder = StreamEncoder("alias", include_usage=False, created=9)
    out = sse_objects(b"".join(encoder.feed(ev) for ev in response_events(resp)))
    assert out[-1] == "[DONE]"
    texts = [(c["choices"][0]["text"], c["choices"][0]["finish_reason"]) for c in out[:-1]]
    assert texts == [("hello", None), ("", "stop")]
    assert all(c["object"] == "text_completion" and c["model"] == "alias" for c in out[:-1])
    assert all(c["id"] == "cmpl-msg_1" and c["created"] == 9 for c in out[:-1])


def test_the_usage_chunk_comes_last_when_asked() -> None:
    resp = ChatResponse(
        id="m", model="c", content=[TextPart("hi")], usage=Usage(input_tokens=3, output_tokens=2)
    )
    encoder = StreamEncoder("alias", include_usage=True)
    out = sse_objects(b"".join(encoder.feed(ev) for ev in response_events(resp)))
    assert out[-2]["choices"] == []
    assert out[-2]["usage"]["prompt_tokens"] == 3 and out[-2]["usage"]["completion_tokens"] == 2


def test_thinking_has_no_place_in_a_text_completion_stream() -> None:
    encoder = StreamEncoder("alias", include_usage=False)
    encoder.feed(MessageStart(id="m", model="c"))
    assert encoder.feed(BlockStart(0, "thinking")) == b""
    assert encoder.feed(ThinkingDelta(0, "hmm")) == b""


def test_a_failure_mid_stream_is_an_error_frame_and_ends_the_stream() -> None:
    encoder = StreamEncoder("alias", include_usage=False)
    encoder.feed(TextDelta(0, "partial"))
    frame = sse_objects(encoder.error(RateLimited("slow down")))
    assert frame == [
        {
            "error": {
                "message": "slow down",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    ]
    assert encoder.feed(MessageEnd()) == b""
