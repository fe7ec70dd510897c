"""ConverseStream events -> canonical stream events.

A ConverseStream body is a binary event stream (see ``eventstream``) whose messages carry
``:event-type`` and a JSON payload, in this order::

    messageStart {role}
    per content block: contentBlockStart (tool use blocks only) -> contentBlockDelta* -> contentBlockStop
    messageStop {stopReason}
    metadata {usage, metrics}

Text and reasoning blocks get no ``contentBlockStart``: their first delta opens them. Failures
arrive as ``:message-type exception`` messages (``:exception-type`` names the error, the payload
has ``message``) or ``:message-type error`` messages (``:error-code`` / ``:error-message``).
"""

from __future__ import annotations

from typing import Any

import orjson

from waypost.core.errors import GatewayError, StreamInterrupted
from waypost.core.events import (
    BlockKind,
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
)
from waypost.wire.bedrock.mapping import (
    PROVIDER,
    error_for,
    error_message,
    finish_from_stop_reason,
    stop_sequence_from,
    usage_from_bedrock,
)
from waypost.wire.eventstream import EventMessage


class StreamDecoder:
    """Feed each decoded event-stream message; get canonical events back.

    Bedrock block indexes are renumbered from 0 in the order blocks open (blocks we do not model
    take no number). A redacted reasoning block's data may come in several deltas, so it is
    emitted whole when the block stops.
    """

    __slots__ = (
        "_ended",
        "_finish",
        "_id",
        "_model",
        "_next_index",
        "_open",
        "_open_kind",
        "_open_upstream",
        "_redacted",
        "_started",
        "_stopped",
    )

    def __init__(self, *, model: str, response_id: str = "") -> None:
        self._model = model
        self._id = response_id
        self._started = False
        self._stopped = False  # messageStop seen
        self._ended = False  # MessageEnd emitted
        self._finish: Finish | None = None
        self._next_index = 0
        self._open: int | None = None  # canonical index of the open block
        self._open_kind: BlockKind | None = None
        self._open_upstream: int | None = None  # its Bedrock contentBlockIndex
        self._redacted: list[str] | None = None  # pieces of an open redacted block

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, message: EventMessage) -> list[StreamEvent]:
        """Events for one message; raises the mapped ``GatewayError`` for an exception message."""
        message_type = message.header(":message-type") or "event"
        if message_type == "exception":
            raise self._exception(message.header(":exception-type"), _payload(message.payload))
        if message_type == "error":
            raise error_for(
                message.header(":error-code") or "InternalServerException",
                message.header(":error-message") or "",
                model=self._model,
            )
        if message_type != "event" or self._ended:
            return []
        return self.event(message.header(":event-type"), _payload(message.payload))

    def event(self, event_type: str | None, data: dict[str, Any]) -> list[StreamEvent]:
        """Events for one event's type and parsed payload (a Converse body is read this way too)."""
        if self._ended:
            return []
        out: list[StreamEvent] = []
        if event_type == "messageStart":
            self._ensure_started(out)
        elif event_type == "contentBlockStart":
            self._ensure_started(out)
            self._block_start(data, out)
        elif event_type == "contentBlockDelta":
            self._ensure_started(out)
            self._block_delta(data, out)
        elif event_type == "contentBlockStop":
            if data.get("contentBlockIndex") == self._open_upstream:
                self._close(out)
        elif event_type == "messageStop":
            self._ensure_started(out)
            self._close(out)
            self._stopped = True
            self._finish = Finish(
                finish_from_stop_reason(data.get("stopReason")),
                stop_sequence_from(data.get("additionalModelResponseFields")),
            )
            out.append(self._finish)
        elif event_type == "metadata":
            self._ensure_started(out)
            if isinstance(data.get("usage"), dict):
                out.append(UsageUpdate(usage_from_bedrock(data["usage"])))
            if self._stopped:
                out.append(MessageEnd())
                self._ended = True
        return out

    def finish(self) -> list[StreamEvent]:
        """Call at the end of the body. Ending after ``messageStop`` (with or without metadata)
        completes the answer; ending before it is a broken stream."""
        if self._ended:
            return []
        if not self._stopped:
            raise StreamInterrupted("bedrock upstream stream ended before messageStop", provider=PROVIDER)
        self._ended = True
        return [MessageEnd()]

    def _exception(self, exception_type: str | None, data: dict[str, Any]) -> GatewayError:
        message = error_message(data)
        original = data.get("originalMessage")
        if isinstance(original, str) and original and original not in message:
            message = f"{message} ({original[:500]})" if message else original[:500]
        return error_for(exception_type or "InternalServerException", message, model=self._model)

    def _ensure_started(self, out: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            out.append(MessageStart(id=self._id, model=self._model))

    def _open_block(self, upstream: Any, kind: BlockKind, out: list[StreamEvent], **extra: Any) -> int:
        self._close(out)
        index = self._next_index
        self._next_index += 1
        self._open, self._open_kind, self._open_upstream = index, kind, upstream
        if kind == "redacted_thinking":
            self._redacted = []
        else:
            out.append(BlockStart(index, kind, **extra))
        return index

    def _block_start(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        start = data.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return  # a tool result or image block (server-side tools): not modelled
        tool_id, name = use.get("toolUseId"), use.get("name")
        self._open_block(
            data.get("contentBlockIndex"),
            "tool_call",
            out,
            tool_call_id=tool_id if isinstance(tool_id, str) else "",
            tool_name=name if isinstance(name, str) else "",
        )

    def _block_delta(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        upstream = data.get("contentBlockIndex")
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return
        same_block = self._open is not None and upstream == self._open_upstream
        if isinstance(delta.get("text"), str):
            if not delta["text"]:
                return
            index = self._open if same_block and self._open_kind == "text" else None
            if index is None:
                if same_block:
                    return  # text inside a block of another kind: not ours to invent
                index = self._open_block(upstream, "text", out)
            out.append(TextDelta(index, delta["text"]))
        elif isinstance(delta.get("toolUse"), dict):
            fragment = delta["toolUse"].get("input")
            open_index = self._open
            if (
                same_block
                and open_index is not None
                and self._open_kind == "tool_call"
                and isinstance(fragment, str)
                and fragment
            ):
                out.append(ToolArgsDelta(open_index, fragment))
        elif isinstance(delta.get("reasoningContent"), dict):
            self._reasoning_delta(upstream, delta["reasoningContent"], same_block, out)

    def _reasoning_delta(
        self, upstream: Any, reasoning: dict[str, Any], same_block: bool, out: list[StreamEvent]
    ) -> None:
        redacted = reasoning.get("redactedContent")
        kind: BlockKind = "redacted_thinking" if isinstance(redacted, str) else "thinking"
        if not (same_block and self._open_kind == kind):
            if same_block:
                return
            self._open_block(upstream, kind, out)
        index = self._open
        assert index is not None
        if kind == "redacted_thinking":
            if self._redacted is not None and isinstance(redacted, str):
                self._redacted.append(redacted)
            return
        text, signature = reasoning.get("text"), reasoning.get("signature")
        if isinstance(text, str) and text:
            out.append(ThinkingDelta(index, text))
        if isinstance(signature, str) and signature:
            out.append(SignatureDelta(index, signature))

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is None:
            return
        if self._open_kind == "redacted_thinking":
            out.append(BlockStart(self._open, "redacted_thinking", data="".join(self._redacted or [])))
            self._redacted = None
        out.append(BlockStop(self._open))
        self._open, self._open_kind, self._open_upstream = None, None, None


def _payload(payload: bytes) -> dict[str, Any]:
    """An event's JSON object; ``ValueError`` for anything else, which the stream loop that feeds
    this decoder (``providers.streaming``) reports as an upstream that sent an invalid stream."""
    if not payload:
        return {}
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise ValueError("an event payload that is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("an event payload that is not an object")
    return data
