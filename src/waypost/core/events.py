"""Typed stream events and ``fold()``, which turns a complete event stream into a response.

A canonical stream is::

    MessageStart  (BlockStart  (TextDelta|ThinkingDelta|SignatureDelta|ToolArgsDelta)*  BlockStop)*
    UsageUpdate* (anywhere)   Finish   MessageEnd

Blocks never interleave: at most one block is open at a time and ``index`` counts blocks from 0
in the order they start. Decoders of upstream formats that interleave (OpenAI parallel tool
calls may) must serialise. Failures are raised as ``GatewayError`` from the iterator, never
encoded as events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

from waypost.core.types import (
    ChatResponse,
    FinishReason,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)

BlockKind = Literal["text", "thinking", "redacted_thinking", "tool_call"]


@dataclass(slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage = field(default_factory=Usage)
    created: int = 0


@dataclass(slots=True)
class BlockStart:
    index: int
    kind: BlockKind
    tool_call_id: str | None = None
    tool_name: str | None = None
    data: str | None = None  # redacted thinking payload


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    index: int
    text: str


@dataclass(slots=True)
class SignatureDelta:
    index: int
    signature: str


@dataclass(slots=True)
class ToolArgsDelta:
    index: int
    fragment: str  # a piece of the JSON arguments text


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class UsageUpdate:
    usage: Usage  # a cumulative snapshot; merge with Usage.merge


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    stop_sequence: str | None = None


@dataclass(slots=True)
class MessageEnd:
    pass


@dataclass(slots=True)
class RawFrame:
    """Bytes already in the caller's wire format, relayed as they are.

    A provider whose dialect is the caller's own emits these next to the canonical events
    (which still drive metering); the caller's encoder writes either the raw frames or the
    encoded canonical events, never both.
    """

    data: bytes


StreamEvent = (
    MessageStart
    | BlockStart
    | TextDelta
    | ThinkingDelta
    | SignatureDelta
    | ToolArgsDelta
    | BlockStop
    | UsageUpdate
    | Finish
    | MessageEnd
    | RawFrame
)


class Folder:
    """Accumulates events into a ``ChatResponse``; usable incrementally (for metering taps)."""

    __slots__ = ("_blocks", "response")

    def __init__(self) -> None:
        self.response = ChatResponse(id="", model="")
        self._blocks: dict[int, Part] = {}

    def feed(self, ev: StreamEvent) -> None:
        # By exact type (events are final classes), the most frequent first: a chain of
        # ``isinstance`` tests ran up to eight of them per event.
        r = self.response
        kind = type(ev)
        if kind is TextDelta:
            text = cast(TextDelta, ev)
            part = self._blocks.get(text.index)
            if isinstance(part, TextPart):
                part.text += text.text
        elif kind is ToolArgsDelta:
            args = cast(ToolArgsDelta, ev)
            part = self._blocks.get(args.index)
            if isinstance(part, ToolCallPart):
                part.arguments += args.fragment
        elif kind is ThinkingDelta:
            thought = cast(ThinkingDelta, ev)
            part = self._blocks.get(thought.index)
            if isinstance(part, ThinkingPart):
                part.text += thought.text
        elif kind is SignatureDelta:
            sig = cast(SignatureDelta, ev)
            part = self._blocks.get(sig.index)
            if isinstance(part, ThinkingPart):
                part.signature = (part.signature or "") + sig.signature
        elif kind is BlockStart:
            start = cast(BlockStart, ev)
            new: Part
            if start.kind == "text":
                new = TextPart(text="")
            elif start.kind == "tool_call":
                new = ToolCallPart(id=start.tool_call_id or "", name=start.tool_name or "", arguments="")
            elif start.kind == "redacted_thinking":
                new = ThinkingPart(redacted=True, data=start.data)
            else:
                new = ThinkingPart()
            self._blocks[start.index] = new
            r.content.append(new)
        elif kind is UsageUpdate:
            r.usage.merge(cast(UsageUpdate, ev).usage)
        elif kind is Finish:
            finish = cast(Finish, ev)
            r.finish_reason = finish.reason
            r.stop_sequence = finish.stop_sequence
        elif kind is MessageStart:
            begin = cast(MessageStart, ev)
            r.id = begin.id
            r.model = begin.model
            r.created = begin.created
            r.usage.merge(begin.usage)

    def result(self) -> ChatResponse:
        for part in self.response.content:
            if isinstance(part, ToolCallPart) and not part.arguments:
                part.arguments = "{}"
        return self.response


def fold(events: list[StreamEvent]) -> ChatResponse:
    """Fold a complete list of events into the equivalent non-streamed response."""
    folder = Folder()
    for ev in events:
        folder.feed(ev)
    return folder.result()


def response_events(resp: ChatResponse) -> list[StreamEvent]:
    """The inverse of ``fold``: a response as the event stream that produces it."""
    # The input side of usage is known before any output: report it at the start, as providers do.
    u = resp.usage
    start_usage = Usage(
        input_tokens=u.input_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
    )
    out: list[StreamEvent] = [
        MessageStart(id=resp.id, model=resp.model, usage=start_usage, created=resp.created)
    ]
    index = 0
    for part in resp.content:
        if isinstance(part, TextPart):
            out += [BlockStart(index, "text"), TextDelta(index, part.text), BlockStop(index)]
        elif isinstance(part, ToolCallPart):
            out += [
                BlockStart(index, "tool_call", tool_call_id=part.id, tool_name=part.name),
                ToolArgsDelta(index, part.arguments),
                BlockStop(index),
            ]
        elif isinstance(part, ThinkingPart):
            if part.redacted:
                out += [BlockStart(index, "redacted_thinking", data=part.data), BlockStop(index)]
            else:
                out += [BlockStart(index, "thinking"), ThinkingDelta(index, part.text)]
                if part.signature:
                    out.append(SignatureDelta(index, part.signature))
                out.append(BlockStop(index))
        else:
            continue
        index += 1
    out.append(UsageUpdate(resp.usage))
    out.append(Finish(resp.finish_reason or FinishReason.STOP, resp.stop_sequence))
    out.append(MessageEnd())
    return out
