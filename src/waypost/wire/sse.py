"""Server-sent events: an incremental parser for upstream streams and an encoder for clients."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEParser:
    """Feed raw bytes as they arrive; get complete events back. Tolerates CRLF and LF."""

    __slots__ = ("_buf", "_data", "_event", "max_buffer")

    def __init__(self, max_buffer: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self._event: str | None = None
        self._data: list[str] = []
        self.max_buffer = max_buffer

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        out: list[SSEEvent] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line, out)
        self._buf = buf[start:]
        if len(self._buf) > self.max_buffer:
            raise ValueError("server-sent event line exceeds the buffer limit")
        return out

    def close(self) -> list[SSEEvent]:
        """Flush a final event that was not followed by a blank line."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf.rstrip(b"\r"), out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._data or self._event is not None:
                out.append(SSEEvent(self._event, "\n".join(self._data)))
            self._event = None
            self._data = []
            return
        if line[:1] == b":":
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        field = name.decode("utf-8", "replace")
        if field == "data":
            self._data.append(value.decode("utf-8", "replace"))
        elif field == "event":
            self._event = value.decode("utf-8", "replace")


def encode_sse(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
