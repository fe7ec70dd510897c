"""Ollama's streamed ``/api/chat`` answer (NDJSON: one JSON object per line) -> canonical events.

Each line carries a piece of ``message.thinking`` or ``message.content``, or whole tool calls
(Ollama sends a call in one piece, arguments as an object); the last line has ``"done": true``
with ``done_reason`` and the token counts. A line ``{"error": "..."}`` is a failure mid-stream.
"""

from __future__ import annotations

from typing import Any

import orjson

from waypost.core.errors import StreamInterrupted
from waypost.core.events import (
    BlockKind,
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
)
from waypost.wire.ollama_response import (
    created_from_ollama,
    error_text,
    finish_from_ollama,
    message_fields,
    tool_call_part,
    usage_from_ollama,
)


class LineSplitter:
    """Feed raw bytes as they arrive; get the complete, non-empty lines back."""

    __slots__ = ("_buf", "max_line")

    def __init__(self, max_line: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self.max_line = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        end = buf.rfind(b"\n")
        if end < 0:
            if len(buf) > self.max_line:
                raise StreamInterrupted("ollama upstream sent a stream line longer than the limit")
            self._buf = buf
            return []
        self._buf = buf[end + 1 :]
        return [line for line in buf[:end].split(b"\n") if line.strip()]

    def rest(self) -> bytes:
        """What is left after the last newline (a final line without one)."""
        rest, self._buf = self._buf, b""
        return rest if rest.strip() else b""


def line_object(line: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise StreamInterrupted(
            "ollama upstream sent a stream line that is not JSON", provider="ollama"
        ) from None
    if not isinstance(obj, dict):
        raise StreamInterrupted("ollama upstream sent a stream line that is not an object", provider="ollama")
    return obj


class StreamDecoder:
    """Parsed stream lines -> canonical events; ``done`` turns true after the final line."""

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.done = False
        self._started = False
        self._next_block = 0
        self._open: tuple[BlockKind, int] | None = None
        self._calls = 0

    def feed(self, obj: dict[str, Any]) -> list[StreamEvent]:
        if self.done:
            return []
        if obj.get("error") is not None:
            raise StreamInterrupted(f"ollama upstream error: {error_text(obj['error'])}", provider="ollama")
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            model = obj.get("model")
            out.append(
                MessageStart(
                    id=self.response_id,
                    model=model if isinstance(model, str) else "",
                    created=created_from_ollama(obj.get("created_at")),
                )
            )
        thinking, content, calls = message_fields(obj)
        if thinking:
            index = self._block("thinking", out)
            out.append(ThinkingDelta(index, thinking))
        if content:
            index = self._block("text", out)
            out.append(TextDelta(index, content))
        for call in calls:
            part = tool_call_part(call, self.response_id, self._calls)
            if part is None:
                continue
            self._close(out)
            index = self._next_block
            self._next_block += 1
            self._calls += 1
            out += [
                BlockStart(index, "tool_call", tool_call_id=part.id, tool_name=part.name),
                ToolArgsDelta(index, part.arguments),
                BlockStop(index),
            ]
        if obj.get("done") is True:
            self.done = True
            self._close(out)
            out.append(UsageUpdate(usage_from_ollama(obj)))
            out.append(Finish(finish_from_ollama(obj.get("done_reason"), has_tool_calls=self._calls > 0)))
            out.append(MessageEnd())
        return out

    def _block(self, kind: BlockKind, out: list[StreamEvent]) -> int:
        """The index of an open block of ``kind``, opening one (and closing another) if needed."""
        if self._open is not None and self._open[0] == kind:
            return self._open[1]
        self._close(out)
        index = self._next_block
        self._next_block += 1
        self._open = (kind, index)
        out.append(BlockStart(index, kind))
        return index

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open[1]))
            self._open = None
