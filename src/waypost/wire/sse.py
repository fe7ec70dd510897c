"""Server-sent events: an incremental parser for upstream streams and an encoder for clients."""

from __future__ import annotations

from dataclasses import dataclass

Frame = tuple[bytes | None, bytes]  # (event name, data) of one complete event

MAX_EVENT_BYTES = 16 * 1024 * 1024  # an event still incomplete past this is not an event


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEParser:
    """Feed raw bytes as they arrive; get complete events back.

    Works on whole events (split at blank lines) rather than line by line: the common event is
    one ``data:`` line, which takes a fast path. CRLF and CR line endings are normalised to LF.

    An event still incomplete after ``max_buffer`` bytes raises ``ValueError``. The bytes of an
    incomplete event are kept as a list of pieces and joined once, when the event completes, so a
    huge event costs time in proportion to its size rather than to its square.
    """

    __slots__ = ("_cr", "_parts", "_size", "max_buffer")

    def __init__(self, max_buffer: int = MAX_EVENT_BYTES) -> None:
        self._parts: list[bytes] = []  # the incomplete trailing event, LF-normalised
        self._size = 0
        self._cr = False  # the last chunk ended in CR, held back: it may be half of a CRLF
        self.max_buffer = max_buffer

    def feed_frames(self, chunk: bytes) -> tuple[list[Frame], bytes]:
        """The events that ``chunk`` completes, and the raw bytes they came in (LF-normalised).
        An incomplete trailing event stays buffered."""
        if self._cr or b"\r" in chunk:
            chunk = self._lf(chunk)
        if not chunk:
            return [], b""
        end = chunk.rfind(b"\n\n")
        if self._parts:
            # The blank line may straddle the previous piece and this one.
            if end < 0 and not (chunk[:1] == b"\n" and self._parts[-1][-1:] == b"\n"):
                return self._keep(chunk)
            self._parts.append(chunk)
            buf = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            end = buf.rfind(b"\n\n")
        elif end < 0:
            return self._keep(chunk)
        else:
            buf = chunk
        complete = buf[: end + 2]
        if end + 2 < len(buf):
            rest = buf[end + 2 :]
            self._parts.append(rest)
            self._size = len(rest)
        return _frames(complete), complete

    def end_frames(self) -> list[Frame]:
        """At the end of the body: no more events. An event cut off before its blank line is
        dropped, as the SSE specification says; the stream's missing end marker reports it."""
        self._parts.clear()
        self._size = 0
        self._cr = False
        return []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return [_event(f) for f in self.feed_frames(chunk)[0]]

    def close(self) -> list[SSEEvent]:
        """Flush a final event that was not followed by a blank line."""
        rest = b"".join(self._parts).rstrip(b"\n")
        self.end_frames()
        return [_event(f) for f in _frames(rest + b"\n\n")] if rest else []

    def _lf(self, chunk: bytes) -> bytes:
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._cr = True
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _keep(self, chunk: bytes) -> tuple[list[Frame], bytes]:
        self._size += len(chunk)
        if self._size > self.max_buffer:
            self.end_frames()
            raise ValueError(f"a server-sent event is longer than {self.max_buffer} bytes")
        self._parts.append(chunk)
        return [], b""


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


def encode_frame(frame: Frame) -> bytes:
    """A parsed frame written back as one SSE event (multi-line data keeps its lines)."""
    event, data = frame
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event + b"\ndata: " + data + b"\n\n"


def encode_sse(data: bytes, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
