"""An incremental decoder of the AWS event stream (``application/vnd.amazon.eventstream``).

Each message on the wire is::

    total length (uint32) | headers length (uint32) | prelude CRC32 (uint32)
    headers (name length uint8, name, type uint8, typed value)*
    payload
    message CRC32 (uint32, over everything before it)

All integers are big-endian. Bytes arrive in arbitrary pieces, so ``feed`` keeps what it cannot
yet decode. A bad checksum or an impossible length means the stream cannot be trusted from that
point on: the decoder raises ``StreamInterrupted`` and stays failed.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from waypost.core.errors import StreamInterrupted

PRELUDE_LENGTH = 12
MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + 4
# The limits the AWS SDKs enforce; anything larger is corruption, not a big event.
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

HeaderValue = bool | int | bytes | str | uuid.UUID

_PRELUDE = struct.Struct(">III")
_FIXED: dict[int, struct.Struct] = {
    2: struct.Struct(">b"),  # byte
    3: struct.Struct(">h"),  # short
    4: struct.Struct(">i"),  # integer
    5: struct.Struct(">q"),  # long
    8: struct.Struct(">q"),  # timestamp, milliseconds since the epoch
}


@dataclass(slots=True)
class EventMessage:
    """One decoded message: its headers (``:event-type``, ``:message-type``...) and raw payload."""

    headers: dict[str, HeaderValue] = field(default_factory=dict)
    payload: bytes = b""

    def header(self, name: str) -> str | None:
        """A string header's value, or None when absent or not a string."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    """Feed raw body chunks; iterate the complete messages they finish."""

    __slots__ = ("_buffer", "_failed", "_provider")

    def __init__(self, provider: str = "bedrock") -> None:
        self._buffer = bytearray()
        self._failed = False
        self._provider = provider

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[EventMessage]:
        """Add ``data`` and yield every message now complete, in order.

        Corruption raises from the iterator at the message where it is found, so the messages
        before it are still delivered.
        """
        if self._failed:
            raise self._error("the event stream was already corrupt")
        self._buffer += data
        return self._drain()

    def _drain(self) -> Iterator[EventMessage]:
        while len(self._buffer) >= PRELUDE_LENGTH:
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(self._buffer)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise self._fail("event stream prelude checksum mismatch")
            if total < MIN_MESSAGE_LENGTH or headers_length > MAX_HEADERS_LENGTH:
                raise self._fail("event stream message has an impossible length")
            payload_length = total - MIN_MESSAGE_LENGTH - headers_length
            if payload_length < 0 or payload_length > MAX_PAYLOAD_LENGTH:
                raise self._fail("event stream message has an impossible length")
            if len(self._buffer) < total:
                return
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[: total - 4]) != message_crc:
                raise self._fail("event stream message checksum mismatch")
            headers_end = PRELUDE_LENGTH + headers_length
            try:
                headers = _parse_headers(frame[PRELUDE_LENGTH:headers_end])
            except (ValueError, struct.error, IndexError, UnicodeDecodeError):
                raise self._fail("event stream message has malformed headers") from None
            yield EventMessage(headers, frame[headers_end : total - 4])

    def _fail(self, message: str) -> StreamInterrupted:
        self._failed = True
        self._buffer.clear()
        return self._error(message)

    def _error(self, message: str) -> StreamInterrupted:
        return StreamInterrupted(f"{self._provider} upstream {message}", provider=self._provider)


def _parse_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos = 0
    end = len(data)
    while pos < end:
        name_length = data[pos]
        pos += 1
        raw_name = data[pos : pos + name_length]
        if name_length == 0 or len(raw_name) != name_length:
            raise ValueError("truncated header name")
        name = raw_name.decode("utf-8")
        pos += name_length
        kind = data[pos]
        pos += 1
        value: HeaderValue
        if kind == 0:
            value = True
        elif kind == 1:
            value = False
        elif kind in _FIXED:
            fixed = _FIXED[kind]
            (value,) = fixed.unpack_from(data, pos)
            pos += fixed.size
        elif kind in (6, 7):
            (length,) = struct.unpack_from(">H", data, pos)
            pos += 2
            raw = data[pos : pos + length]
            if len(raw) != length:
                raise ValueError("truncated header value")
            pos += length
            value = raw if kind == 6 else raw.decode("utf-8")
        elif kind == 9:
            raw = data[pos : pos + 16]
            if len(raw) != 16:
                raise ValueError("truncated uuid header")
            pos += 16
            value = uuid.UUID(bytes=raw)
        else:
            raise ValueError(f"unknown header type {kind}")
        headers[name] = value
    return headers
