"""An encoder of AWS event-stream messages (``application/vnd.amazon.eventstream``), for the fake
Bedrock. Written from the format's description, independent of the gateway's decoder; tests check
that botocore's own decoder reads what it writes.

A message is: total length (uint32) | headers length (uint32) | CRC32 of those 8 bytes |
headers | payload | CRC32 of everything before it. Integers are big-endian.
"""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Typed:
    """A header value with an explicit wire type (``byte``, ``short``, ``integer``, ``long``, ``timestamp``)."""

    kind: str
    value: int


_TYPED = {
    "byte": (2, ">b"),
    "short": (3, ">h"),
    "integer": (4, ">i"),
    "long": (5, ">q"),
    "timestamp": (8, ">q"),
}


def _header(name: str, value: Any) -> bytes:
    raw_name = name.encode()
    out = struct.pack(">B", len(raw_name)) + raw_name
    if value is True:
        return out + b"\x00"
    if value is False:
        return out + b"\x01"
    if isinstance(value, Typed):
        code, fmt = _TYPED[value.kind]
        return out + struct.pack(">B", code) + struct.pack(fmt, value.value)
    if isinstance(value, int):
        return out + b"\x04" + struct.pack(">i", value)
    if isinstance(value, bytes):
        return out + b"\x06" + struct.pack(">H", len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return out + b"\x07" + struct.pack(">H", len(raw)) + raw
    if isinstance(value, uuid.UUID):
        return out + b"\x09" + value.bytes
    raise TypeError(f"cannot encode header value {value!r}")


def encode_message(headers: Mapping[str, Any], payload: bytes = b"") -> bytes:
    """One complete message with valid checksums."""
    raw_headers = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: Any) -> bytes:
    """A Bedrock event message with a JSON payload."""
    return encode_message(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def exception(exception_type: str, message: str, **extra: Any) -> bytes:
    """A mid-stream exception message, e.g. ``exception("throttlingException", "Too many requests")``."""
    return encode_message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message, **extra}).encode(),
    )
