"""Anthropic Messages streams: upstream SSE -> canonical events, and canonical events -> SSE.

The Anthropic stream is ``message_start``, then per content block ``content_block_start``,
``content_block_delta``* and ``content_block_stop``, then ``message_delta`` (stop reason and
cumulative usage) and ``message_stop``; ``ping`` may come anywhere and ``error`` ends it badly.
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
from waypost.core.types import FinishReason, Usage
from waypost.wire.anthropic.mapping import (
    UsageCounts,
    client_tool_id,
    error_body,
    finish_from_stop_reason,
    message_id,
    stop_reason_for,
    stream_error_from_event,
    usage_to_anthropic,
)
from waypost.wire.conventions import compact_json
from waypost.wire.sse import encode_sse

_BLOCK_KINDS: dict[str, BlockKind] = {
    "text": "text",
    "tool_use": "tool_call",
    "thinking": "thinking",
    "redacted_thinking": "redacted_thinking",
}


class StreamDecoder:
    """Feed each upstream SSE event (name and parsed data); get canonical events back.

    Block types we do not model (server tool use and results) are skipped and the remaining
    blocks renumbered from 0, so the canonical stream has no gaps.
    """

    __slots__ = (
        "_ended",
        "_got_fragment",
        "_index_map",
        "_next_index",
        "_open",
        "_open_kind",
        "_pending_input",
        "_started",
        "_stop_reason",
        "_stop_sequence",
        "_usage",
    )

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._usage = UsageCounts()
        self._stop_reason: Any = None
        self._stop_sequence: str | None = None
        self._index_map: dict[int, int] = {}
        self._next_index = 0
        self._open: int | None = None  # canonical index of the open block
        self._open_kind: BlockKind | None = None
        self._pending_input: str | None = None  # a tool input given whole in content_block_start
        self._got_fragment = False

    def feed(self, event: str | None, data: dict[str, Any]) -> list[StreamEvent]:
        if not isinstance(data, dict):
            return []
        etype = data.get("type")
        if not isinstance(etype, str):
            etype = event
        if etype == "error":
            raise stream_error_from_event(data)
        if self._ended or etype == "ping":
            return []
        out: list[StreamEvent] = []
        if etype == "message_start":
            message = data.get("message")
            if not isinstance(message, dict):
                message = {}
            self._usage.update(message.get("usage"))
            if not self._started:
                self._started = True
                msg_id, model = message.get("id"), message.get("model")
                out.append(
                    MessageStart(
                        id=msg_id if isinstance(msg_id, str) else "",
                        model=model if isinstance(model, str) else "",
                        usage=self._usage.canonical(),
                    )
                )
            return out
        self._ensure_started(out)
        if etype == "content_block_start":
            self._block_start(data, out)
        elif etype == "content_block_delta":
            self._block_delta(data, out)
        elif etype == "content_block_stop":
            index = data.get("index")
            if isinstance(index, int) and self._index_map.get(index) == self._open:
                self._close(out)
        elif etype == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                if delta.get("stop_reason") is not None:
                    self._stop_reason = delta["stop_reason"]
                stop_sequence = delta.get("stop_sequence")
                if isinstance(stop_sequence, str):
                    self._stop_sequence = stop_sequence
            if isinstance(data.get("usage"), dict):
                self._usage.update(data["usage"])
                out.append(UsageUpdate(self._usage.canonical()))
        elif etype == "message_stop":
            self._close(out)
            reason = finish_from_stop_reason(self._stop_reason) or FinishReason.STOP
            out.append(Finish(reason, self._stop_sequence))
            out.append(MessageEnd())
            self._ended = True
        return out

    def finish(self) -> list[StreamEvent]:
        """Call when the upstream stream ends; an end before ``message_stop`` is a failure."""
        if not self._ended:
            raise StreamInterrupted("upstream stream ended early", provider="anthropic")
        return []

    def _ensure_started(self, out: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            out.append(MessageStart(id="", model=""))

    def _block_start(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        index = data.get("index")
        block = data.get("content_block")
        if not isinstance(index, int) or not isinstance(block, dict):
            return
        btype = block.get("type")
        kind = _BLOCK_KINDS.get(btype) if isinstance(btype, str) else None
        if kind is None:
            return  # a server tool block or a newer type: its deltas find no mapping and are ignored
        self._close(out)
        ours = self._next_index
        self._next_index += 1
        self._index_map[index] = ours
        self._open, self._open_kind = ours, kind
        self._pending_input, self._got_fragment = None, False
        if kind == "tool_call":
            tool_id, name = block.get("id"), block.get("name")
            out.append(
                BlockStart(
                    ours,
                    kind,
                    tool_call_id=tool_id if isinstance(tool_id, str) else "",
                    tool_name=name if isinstance(name, str) else "",
                )
            )
            given = block.get("input")
            if given:
                self._pending_input = compact_json(given)
        elif kind == "redacted_thinking":
            payload = block.get("data")
            out.append(BlockStart(ours, kind, data=payload if isinstance(payload, str) else None))
        else:
            out.append(BlockStart(ours, kind))
            initial = block.get("text" if kind == "text" else "thinking")
            if isinstance(initial, str) and initial:
                out.append(TextDelta(ours, initial) if kind == "text" else ThinkingDelta(ours, initial))
            signature = block.get("signature")
            if kind == "thinking" and isinstance(signature, str) and signature:
                out.append(SignatureDelta(ours, signature))

    def _block_delta(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        index = data.get("index")
        delta = data.get("delta")
        if not isinstance(index, int) or not isinstance(delta, dict):
            return
        ours = self._index_map.get(index)
        if ours is None or ours != self._open:
            return
        dtype = delta.get("type")
        kind = self._open_kind
        if dtype == "text_delta" and kind == "text":
            text = delta.get("text")
            if isinstance(text, str) and text:
                out.append(TextDelta(ours, text))
        elif dtype == "input_json_delta" and kind == "tool_call":
            fragment = delta.get("partial_json")
            if isinstance(fragment, str) and fragment:
                self._got_fragment = True
                out.append(ToolArgsDelta(ours, fragment))
        elif dtype == "thinking_delta" and kind == "thinking":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                out.append(ThinkingDelta(ours, text))
        elif dtype == "signature_delta" and kind == "thinking":
            signature = delta.get("signature")
            if isinstance(signature, str) and signature:
                out.append(SignatureDelta(ours, signature))

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is None:
            return
        if self._pending_input is not None and not self._got_fragment:
            # Some Anthropic-compatible servers put the whole input in content_block_start.
            out.append(ToolArgsDelta(self._open, self._pending_input))
        out.append(BlockStop(self._open))
        self._open, self._open_kind, self._pending_input = None, None, None


class StreamEncoder:
    """Canonical events -> the Anthropic SSE bytes a client reads.

    Guarantees the client sees a well-formed stream: ``message_start`` first (synthesised if the
    upstream gave none), blocks opened and closed in order, exactly one ``message_delta`` carrying
    the stop reason and the final usage, then ``message_stop``. Empty text blocks are never sent
    (clients replay them and the API rejects them); a tool block's input always arrives as
    ``input_json_delta`` fragments, and a call with no fragments gets one ``"{}"`` fragment. (The
    Anthropic API itself sends ``""`` for a call without arguments; ``"{}"`` yields the same input
    in SDK accumulators and also parses for clients that ``JSON.parse`` the concatenation.)
    """

    __slots__ = (
        "_ended",
        "_fallback_id",
        "_finish",
        "_got_fragment",
        "_input_hint",
        "_message_id",
        "_model",
        "_next_index",
        "_open",
        "_open_kind",
        "_open_out",
        "_saw_tool_call",
        "_started",
        "_stop_sequence",
        "_usage",
    )

    def __init__(
        self,
        model: str,
        *,
        message_id: str | None = None,
        fallback_id: str = "",
        input_tokens_hint: int = 0,
    ) -> None:
        """``fallback_id``: the message id when the upstream gave none (a fresh one from the caller)."""
        self._model = model
        self._message_id = message_id
        self._fallback_id = fallback_id
        self._input_hint = input_tokens_hint
        self._started = False
        self._ended = False
        self._usage = Usage()
        self._finish: FinishReason | None = None
        self._stop_sequence: str | None = None
        self._next_index = 0
        self._open: int | None = None  # the canonical index of the open block
        self._open_kind: BlockKind | None = None
        self._open_out: int | None = None  # its output index; None while a text block is deferred
        self._got_fragment = False
        self._saw_tool_call = False

    def feed(self, ev: StreamEvent) -> bytes:
        if self._ended:
            return b""
        out: list[bytes] = []
        if isinstance(ev, MessageStart):
            self._usage.merge(ev.usage)
            if self._message_id is None and ev.id:
                self._message_id = message_id(ev.id, self._fallback_id)
            self._start(out)
            return b"".join(out)
        self._start(out)
        if isinstance(ev, BlockStart):
            self._block_start(ev, out)
        elif isinstance(ev, TextDelta):
            if ev.index == self._open and self._open_kind == "text" and ev.text:
                if self._open_out is None:
                    self._open_out = self._emit_start(out, {"type": "text", "text": ""})
                self._delta(out, {"type": "text_delta", "text": ev.text})
        elif isinstance(ev, ToolArgsDelta):
            if ev.index == self._open and self._open_kind == "tool_call" and ev.fragment:
                self._got_fragment = True
                self._delta(out, {"type": "input_json_delta", "partial_json": ev.fragment})
        elif isinstance(ev, ThinkingDelta):
            if ev.index == self._open and self._open_kind == "thinking" and ev.text:
                self._delta(out, {"type": "thinking_delta", "thinking": ev.text})
        elif isinstance(ev, SignatureDelta):
            if ev.index == self._open and self._open_kind == "thinking" and ev.signature:
                self._delta(out, {"type": "signature_delta", "signature": ev.signature})
        elif isinstance(ev, BlockStop):
            if ev.index == self._open:
                self._close(out)
        elif isinstance(ev, UsageUpdate):
            self._usage.merge(ev.usage)
        elif isinstance(ev, Finish):
            self._finish, self._stop_sequence = ev.reason, ev.stop_sequence
        elif isinstance(ev, MessageEnd):
            self._end(out)
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        """An ``event: error`` frame; the stream is over after it."""
        self._ended = True
        return _frame("error", error_body(err))

    def _msg_id(self) -> str:
        if self._message_id is None:
            self._message_id = message_id("", self._fallback_id)
        return self._message_id

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        usage = usage_to_anthropic(self._usage)
        if self._usage.input_tokens == 0:
            usage["input_tokens"] = self._input_hint
        message: dict[str, Any] = {
            "id": self._msg_id(),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(_frame("message_start", {"type": "message_start", "message": message}))

    def _block_start(self, ev: BlockStart, out: list[bytes]) -> None:
        self._close(out)
        self._open, self._open_kind, self._open_out = ev.index, ev.kind, None
        self._got_fragment = False
        if ev.kind == "text":
            return  # deferred until the first non-empty text
        block: dict[str, Any]
        if ev.kind == "tool_call":
            self._saw_tool_call = True
            tool_id = client_tool_id(ev.tool_call_id or "", self._msg_id(), self._next_index)
            block = {"type": "tool_use", "id": tool_id, "name": ev.tool_name or "", "input": {}}
        elif ev.kind == "redacted_thinking":
            block = {"type": "redacted_thinking", "data": ev.data or ""}
        else:
            block = {"type": "thinking", "thinking": "", "signature": ""}
        self._open_out = self._emit_start(out, block)

    def _emit_start(self, out: list[bytes], block: dict[str, Any]) -> int:
        index = self._next_index
        self._next_index += 1
        out.append(
            _frame(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return index

    def _delta(self, out: list[bytes], delta: dict[str, Any]) -> None:
        out.append(
            _frame(
                "content_block_delta",
                {"type": "content_block_delta", "index": self._open_out, "delta": delta},
            )
        )

    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        if self._open_out is not None:
            if self._open_kind == "tool_call" and not self._got_fragment:
                self._delta(out, {"type": "input_json_delta", "partial_json": "{}"})
            out.append(_frame("content_block_stop", {"type": "content_block_stop", "index": self._open_out}))
        self._open, self._open_kind, self._open_out = None, None, None

    def _end(self, out: list[bytes]) -> None:
        self._close(out)
        stop_reason = stop_reason_for(self._finish, has_tool_calls=self._saw_tool_call)
        # The Messages API puts the ``cache_creation`` breakdown in ``message_start`` only; a
        # translated stream learns its usage at the end, so the breakdown of its writes comes here.
        usage = usage_to_anthropic(self._usage, breakdown=self._usage.cache_write_tokens > 0)
        if self._usage.input_tokens == 0:
            usage["input_tokens"] = self._input_hint
        delta = {
            "stop_reason": stop_reason,
            "stop_sequence": self._stop_sequence if stop_reason == "stop_sequence" else None,
        }
        out.append(_frame("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(_frame("message_stop", {"type": "message_stop"}))
        self._ended = True


def _frame(event: str, payload: dict[str, Any]) -> bytes:
    return encode_sse(orjson.dumps(payload), event)
