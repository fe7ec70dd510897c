"""An incremental reader of the AWS event stream (``application/vnd.amazon.eventstream``) on top
of botocore's own decoder.

Each message on the wire is::

    total length (uint32) | headers length (uint32) | prelude CRC32 (uint32)
    headers (name length uint8, name, type uint8, typed value)*
    payload
    message CRC32 (uint32, over everything before it)

botocore (``botocore.eventstream.EventStreamBuffer``) checks the checksums and the length limits
and decodes the typed headers; this module only decides when to hand it bytes. It gives botocore
each message's prelude as soon as it arrives, so a corrupt prelude or an impossible length fails
at once, then the rest of the message in one piece: botocore appends to one ``bytes`` buffer,
which would cost the square of a large message's size if it were fed every network read.

Anything botocore refuses (``ChecksumMismatch``, ``InvalidHeadersLength``,
``InvalidPayloadLength``, ``DuplicateHeader``, an unknown header type, a truncated header) is
raised as ``ValueError`` from the iterator at the message where it is found, so the messages
before it are still delivered; the reader stays failed afterwards. botocore is imported with
this module, which only the Bedrock provider loads.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from botocore.eventstream import ChecksumMismatch, EventStreamBuffer, ParserError

from waypost.core.errors import StreamInterrupted

PRELUDE_LENGTH = 12
MIN_MESSAGE_LENGTH = PRELUDE_LENGTH + 4

HeaderValue = bool | int | bytes | str  # botocore gives timestamps as int, UUIDs as 16 bytes

_LENGTHS = struct.Struct(">II")


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

    __slots__ = ("_buffer", "_failed", "_inside", "_parts", "_provider", "_size", "_wanted")

    def __init__(self, provider: str = "bedrock") -> None:
        self._buffer = EventStreamBuffer()
        self._parts: list[bytes] = []  # bytes not yet given to botocore
        self._size = 0
        self._wanted = PRELUDE_LENGTH  # what botocore needs next: a prelude, or the rest of a message
        self._inside = False  # botocore holds a checked prelude and waits for the rest
        self._failed = False
        self._provider = provider

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete message."""
        return self._size + (PRELUDE_LENGTH if self._inside else 0)

    def feed_frames(self, data: bytes) -> tuple[Iterator[EventMessage], bytes]:
        """The messages ``data`` completes, in order, and no raw bytes (an event stream is never
        relayed as it came). Corruption raises ``ValueError`` from the iterator."""
        return self._messages(data), b""

    def end_frames(self) -> list[EventMessage]:
        """At the end of the body: a message cut off part-way is a broken stream."""
        if self.pending and not self._failed:
            raise StreamInterrupted(
                f"{self._provider} upstream stream ended inside an event", provider=self._provider
            )
        return []

    def feed(self, data: bytes) -> Iterator[EventMessage]:
        """Add ``data`` and iterate the messages now complete, in order."""
        return self._messages(data)

    def _messages(self, data: bytes) -> Iterator[EventMessage]:
        if self._failed:
            raise ValueError("the event stream was already corrupt")
        if data:
            self._parts.append(data)
            self._size += len(data)
        if self._size < self._wanted:
            return
        buf = b"".join(self._parts)
        self._parts.clear()
        pos = 0
        try:
            while len(buf) - pos >= self._wanted:
                piece = buf[pos : pos + self._wanted]
                pos += self._wanted
                message = self._decode(piece)
                if message is None:  # a valid prelude: now the rest of its message
                    total, _ = _LENGTHS.unpack_from(piece)
                    self._inside = True
                    self._wanted = total - PRELUDE_LENGTH
                else:
                    self._inside = False
                    self._wanted = PRELUDE_LENGTH
                    yield message
        finally:  # also when the reader stops early (after the end marker)
            if not self._failed:
                if pos < len(buf):
                    self._parts.append(buf[pos:])
                self._size = len(buf) - pos

    def _decode(self, piece: bytes) -> EventMessage | None:
        """Give botocore the next piece; the message it completes, if any."""
        if not self._inside:
            total, headers_length = _LENGTHS.unpack_from(piece)
            # botocore lets these through and then reads garbage (or nothing) as a message.
            if total < MIN_MESSAGE_LENGTH or headers_length > total - MIN_MESSAGE_LENGTH:
                raise self._fail(f"an event-stream message has an impossible length ({total} bytes)")
        self._buffer.add_data(piece)
        try:
            message = next(self._buffer)
        except StopIteration:
            return None
        except (ParserError, struct.error, KeyError, IndexError, ValueError) as exc:
            raise self._fail(self._reason(exc)) from None
        return EventMessage(message.headers, message.payload)

    def _reason(self, exc: Exception) -> str:
        if isinstance(exc, ChecksumMismatch):
            where = "message" if self._inside else "prelude"
            return f"an event-stream {where} checksum does not match"
        if isinstance(exc, ParserError):  # header or payload too long, a duplicate header
            return f"an event-stream message is invalid: {exc}"
        if isinstance(exc, KeyError):
            return "an event-stream header has an unknown type"
        # struct.error, IndexError: a truncated header; ValueError: a name or value not UTF-8.
        return "an event-stream message has malformed headers"

    def _fail(self, reason: str) -> ValueError:
        self._failed = True
        self._parts.clear()
        self._size = 0
        self._inside = False
        return ValueError(reason)
