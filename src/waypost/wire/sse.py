"""Server-sent events: an incremental parser for upstream streams and an encoder for clients."""

from __future__ import annotations

from dataclasses import dataclass

Frame = tuple[bytes | None, bytes]  # (event name, data) of one complete event


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEParser:
    """Feed raw bytes as they arrive; get complete events back.

    Works on whole events (split at blank lines) rather than line by line: the common event is
    one ``data:`` line, which takes a fast path. CRLF line endings are normalised to LF.
    """

    __slots__ = ("_buf", "max_buffer")

    def __init__(self, max_buffer: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self.max_buffer = max_buffer

    def feed_frames(self, chunk: bytes) -> tuple[list[Frame], bytes]:
        """The complete events in the stream so far, and the raw bytes they came in
        (LF-normalised). An incomplete trailing event stays buffered."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
            tail = b"\r" if buf.endswith(b"\r") else b""
            buf = buf[: len(buf) - len(tail)].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        end = buf.rfind(b"\n\n")
        if end < 0:
            if len(buf) > self.max_buffer:
                raise ValueError("a server-sent event exceeds the buffer limit")
            self._buf = buf
            return [], b""
        complete = buf[: end + 2]
        self._buf = buf[end + 2 :]
        return _frames(complete), complete

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return [_event(f) for f in self.feed_frames(chunk)[0]]

    def close(self) -> list[SSEEvent]:
        """Flush a final event that was not followed by a blank line."""
        rest, self._buf = self._buf, b""
        rest = rest.rstrip(b"\r\n")
        return [_event(f) for f in _frames(rest + b"\n\n")] if rest else []


def _frames(complete: bytes) -> list[Frame]:
    out: list[Frame] = []
    for block in complete.split(b"\n\n"):
        if not block:
            continue
        if block[:6] == b"data: " and b"\n" not in block:
            out.append((None, block[6:]))
            continue
        event: bytes | None = None
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if not line or line[:1] == b":":
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value
        if data or event is not None:
            out.append((event, b"\n".join(data)))
    return out


def _event(frame: Frame) -> SSEEvent:
    event, data = frame
    return SSEEvent(
        event.decode("utf-8", "replace") if event is not None else None, data.decode("utf-8", "replace")
    )


def encode_sse(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
