"""Recorded Ollama NDJSON streams -> canonical events, however the bytes are split."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest

from waypost.core.errors import StreamInterrupted
from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
    fold,
)
from waypost.core.types import FinishReason, Usage
from waypost.wire import ollama

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ollama"
RID = "ollama-feedface"


def decode(raw: bytes, chunk: int = 0) -> list[StreamEvent]:
    splitter = ollama.LineSplitter()
    decoder = ollama.StreamDecoder(RID)
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] if chunk else [raw]
    out: list[StreamEvent] = []
    for piece in pieces:
        for line in splitter.feed_frames(piece)[0]:
            out += decoder.feed(json.loads(line))
    assert splitter.end_frames() == []
    return out


def recorded(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_text_stream_events() -> None:
    events = decode(recorded("stream_text.ndjson"))
    assert events == [
        MessageStart(id=RID, model="llama3.2", created=calendar.timegm((2023, 8, 4, 15, 52, 19))),
        BlockStart(0, "text"),
        TextDelta(0, "The"),
        TextDelta(0, " sky"),
        TextDelta(0, " is blue."),
        BlockStop(0),
        UsageUpdate(Usage(input_tokens=26, output_tokens=282)),
        Finish(FinishReason.STOP),
        MessageEnd(),
    ]


@pytest.mark.parametrize("chunk", [0, 1, 7, 64])
def test_the_same_events_come_out_whatever_the_byte_boundaries(chunk: int) -> None:
    raw = recorded("stream_thinking_tool.ndjson")
    assert decode(raw, chunk) == decode(raw)


def test_thinking_text_and_tool_calls_are_separate_blocks_in_order() -> None:
    events = decode(recorded("stream_thinking_tool.ndjson"))
    starts = [(e.index, e.kind, e.tool_name) for e in events if isinstance(e, BlockStart)]
    assert starts == [
        (0, "thinking", None),
        (1, "text", None),
        (2, "tool_call", "get_weather"),
        (3, "tool_call", "get_weather"),
    ]
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["The user wants", " the weather."]
    args = [json.loads(e.fragment) for e in events if isinstance(e, ToolArgsDelta)]
    assert args == [{"city": "Paris"}, {"city": "Oslo", "days": [1, 2]}]


def test_streamed_tool_calls_finish_as_tool_calls_with_stable_ids() -> None:
    events = decode(recorded("stream_thinking_tool.ndjson"))
    resp = fold(events)
    assert resp.finish_reason is FinishReason.TOOL_CALLS
    assert [c.id for c in resp.tool_calls()] == ["call_feedface_0", "call_feedface_1"]


def test_stream_and_single_answer_fold_to_the_same_response() -> None:
    streamed = fold(decode(recorded("stream_thinking_tool.ndjson")))
    whole = ollama.decode_response(
        {
            "model": "qwen3",
            "created_at": "2025-05-29T09:35:56.5Z",
            "message": {
                "role": "assistant",
                "thinking": "The user wants the weather.",
                "content": "Let me check.",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_weather", "arguments": {"city": "Oslo", "days": [1, 2]}}},
                ],
            },
            "done_reason": "stop",
            "done": True,
            "prompt_eval_count": 122,
            "eval_count": 57,
        },
        RID,
    )
    assert streamed.content == whole.content
    assert (streamed.usage, streamed.finish_reason) == (whole.usage, whole.finish_reason)


def test_an_error_line_interrupts_the_stream_after_what_came_before() -> None:
    splitter = ollama.LineSplitter()
    decoder = ollama.StreamDecoder(RID)
    lines, _ = splitter.feed_frames(recorded("stream_error.ndjson"))
    before = decoder.feed(json.loads(lines[0]))
    assert TextDelta(0, "Partial") in before
    with pytest.raises(StreamInterrupted, match="unexpected EOF"):
        decoder.feed(json.loads(lines[1]))


def test_lines_after_done_are_ignored() -> None:
    decoder = ollama.StreamDecoder(RID)
    decoder.feed({"model": "m", "message": {"content": "a"}, "done": True})
    assert decoder.done
    assert decoder.feed({"message": {"content": "late"}}) == []


def test_a_final_line_without_its_newline_is_kept_for_the_end() -> None:
    splitter = ollama.LineSplitter()
    assert splitter.feed_frames(b'{"a": 1}\n{"b"') == ([b'{"a": 1}'], b"")
    assert splitter.feed_frames(b": 2}") == ([], b"")
    assert splitter.end_frames() == [b'{"b": 2}']


def test_crlf_and_blank_lines_are_tolerated() -> None:
    splitter = ollama.LineSplitter()
    lines, _ = splitter.feed_frames(b'{"message": {"content": "x"}}\r\n\r\n{"done": true}\r\n')
    assert [json.loads(line) for line in lines] == [{"message": {"content": "x"}}, {"done": True}]


def test_an_endless_line_is_refused() -> None:
    splitter = ollama.LineSplitter(max_line=16)
    assert splitter.feed_frames(b"x" * 10) == ([], b"")
    with pytest.raises(ValueError, match="longer than 16 bytes"):
        splitter.feed_frames(b"x" * 7)


def test_a_long_line_split_over_many_chunks_comes_out_whole() -> None:
    splitter = ollama.LineSplitter()
    line = b'{"message": {"content": "' + b"y" * 100_000 + b'"}}'
    pieces = [line[i : i + 1000] for i in range(0, len(line), 1000)]
    out = [splitter.feed_frames(piece)[0] for piece in pieces]
    assert out == [[]] * len(pieces)
    assert splitter.feed_frames(b"\n{") == ([line], b"")
    assert splitter.end_frames() == [b"{"]
