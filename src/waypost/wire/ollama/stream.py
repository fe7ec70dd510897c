"""Ollama's streamed ``/api/chat`` answer (NDJSON: one JSON object per line) -> canonical events.

Each line carries a piece of ``message.thinking`` or ``message.content``, or whole tool calls
(Ollama sends a call in one piece, arguments as an object); the last line has ``"done": true``
with ``done_reason`` and the token counts. A line ``{"error": "..."}`` is a failure mid-stream.
"""

from __future__ import annotations

from typing import Any

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
from waypost.wire.ollama.mapping import (
    created_from_ollama,
    error_text,
    finish_from_ollama,
    message_fields,
    tool_call_part,
    usage_from_ollama,
)

MAX_LINE_BYTES = 16 * 1024 * 1024  # a line still without its newline past this is not a line


class LineSplitter:
    """Feed raw bytes as they arrive; get the complete, non-empty lines back.

    A line still incomplete after ``max_line`` bytes raises ``ValueError``. Its pieces are kept
    in a list and joined once, when the newline arrives, so a long line costs linear time.
    """

    __slots__ = ("_parts", "_size", "max_line")

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self.max_line = max_line

    def feed_frames(self, chunk: bytes) -> tuple[list[bytes], bytes]:
        """The lines ``chunk`` completes (blank lines dropped) and no raw bytes: NDJSON is never
        relayed as it came, no client speaks it."""
        end = chunk.rfind(b"\n")
        if end < 0:
            self._size += len(chunk)
            if self._size > self.max_line:
                self._parts.clear()
                raise ValueError(f"a stream line is longer than {self.max_line} bytes")
            if chunk:
                self._parts.append(chunk)
            return [], b""
        if self._parts:
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts.clear()
            end = chunk.rfind(b"\n")
        rest = chunk[end + 1 :]
        self._size = len(rest)
        if rest:
            self._parts.append(rest)
        return [line for line in chunk[:end].split(b"\n") if line.strip()], b""

    def end_frames(self) -> list[bytes]:
        """At the end of the body: a last line without its newline still counts."""
        rest = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return [rest] if rest.strip() else []


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
