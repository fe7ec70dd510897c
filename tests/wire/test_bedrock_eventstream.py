"""The event-stream reader on botocore's decoder: messages come out whole however the bytes are
split, typed headers are read, any corruption stops the stream with ``ValueError`` (which the
shared stream loop reports as the upstream sending something invalid), and a stream cut inside a
message is an interruption."""

from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from tests.fakes.eventstream_encoder import Typed, encode_message, event

from waypost.core.errors import StreamInterrupted
from waypost.wire.eventstream import EventMessage, EventStreamDecoder

FRAME = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})


def decode(*chunks: bytes) -> list[EventMessage]:
    decoder = EventStreamDecoder()
    return [message for chunk in chunks for message in decoder.feed(chunk)]


def test_a_whole_message_decodes_to_its_headers_and_payload() -> None:
    (message,) = decode(FRAME)
    assert message.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert message.payload == b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}'
    assert message.header(":event-type") == "contentBlockDelta"


def test_a_message_split_at_every_byte_decodes_the_same() -> None:
    for cut in range(1, len(FRAME)):
        assert decode(FRAME[:cut], FRAME[cut:]) == decode(FRAME), cut


def test_a_message_fed_one_byte_at_a_time_decodes_once_it_is_complete() -> None:
    decoder = EventStreamDecoder()
    seen: list[EventMessage] = []
    for i in range(len(FRAME)):
        seen += decoder.feed(FRAME[i : i + 1])
        assert len(seen) == (1 if i == len(FRAME) - 1 else 0)
    assert decoder.pending == 0


def test_several_messages_in_one_chunk_come_out_in_order() -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        FRAME,
        event("messageStop", {"stopReason": "end_turn"}),
    ]
    messages = decode(b"".join(frames))
    assert [m.header(":event-type") for m in messages] == ["messageStart", "contentBlockDelta", "messageStop"]


def test_a_partial_message_waits_for_the_rest() -> None:
    decoder = EventStreamDecoder()
    assert list(decoder.feed(FRAME + FRAME[:10])) == decode(FRAME)
    assert decoder.pending == 10


def test_every_header_type_is_read() -> None:
    marker = uuid.UUID("12345678-1234-5678-1234-567812345678")
    frame = encode_message(
        {
            "yes": True,
            "no": False,
            "b": Typed("byte", -5),
            "s": Typed("short", 300),
            "i": 70000,
            "l": Typed("long", 2**40),
            "raw": b"\x00\xff",
            "str": "héllo",
            "ts": Typed("timestamp", 1700000000000),
            "id": marker,
        }
    )
    (message,) = decode(frame)
    assert message.headers == {
        "yes": True,
        "no": False,
        "b": -5,
        "s": 300,
        "i": 70000,
        "l": 2**40,
        "raw": b"\x00\xff",
        "str": "héllo",
        "ts": 1700000000000,
        "id": marker.bytes,  # botocore gives a UUID as its 16 bytes
    }
    assert message.payload == b""
    assert message.header("i") is None  # not a string header


def test_a_broken_message_checksum_is_refused() -> None:
    broken = FRAME[:-1] + bytes([FRAME[-1] ^ 1])
    with pytest.raises(ValueError, match="message checksum does not match"):
        decode(broken)


def test_a_broken_prelude_checksum_is_refused_before_waiting_for_the_body() -> None:
    broken = FRAME[:11] + bytes([FRAME[11] ^ 1])
    with pytest.raises(ValueError, match="prelude checksum does not match"):
        decode(broken)


def test_a_flipped_payload_byte_is_caught_by_the_message_checksum() -> None:
    at = len(FRAME) - 10
    with pytest.raises(ValueError):
        decode(FRAME[:at] + bytes([FRAME[at] ^ 0x20]) + FRAME[at + 1 :])


def test_messages_before_a_corrupt_one_are_still_delivered() -> None:
    decoder = EventStreamDecoder()
    seen: list[EventMessage] = []
    with pytest.raises(ValueError):
        for message in decoder.feed(FRAME + FRAME[:-1] + b"\x00"):
            seen.append(message)
    assert len(seen) == 1


def test_an_impossible_length_is_refused_without_buffering_it() -> None:
    prelude = struct.pack(">II", 2**31, 0)
    with pytest.raises(ValueError, match="length"):
        decode(prelude + struct.pack(">I", zlib.crc32(prelude)))


def test_a_length_shorter_than_the_prelude_and_checksum_is_refused() -> None:
    prelude = struct.pack(">II", 8, 0)
    with pytest.raises(ValueError):
        decode(prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8)


def test_malformed_headers_with_valid_checksums_are_refused() -> None:
    headers = b"\x05:type\x63"  # unknown header type 0x63
    total = 12 + len(headers) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers
    with pytest.raises(ValueError, match="unknown type"):
        decode(body + struct.pack(">I", zlib.crc32(body)))


def test_a_decoder_stays_failed_after_corruption() -> None:
    decoder = EventStreamDecoder()
    with pytest.raises(ValueError):
        list(decoder.feed(FRAME[:-1] + b"\x00"))
    with pytest.raises(ValueError):
        list(decoder.feed(FRAME))


def test_a_payload_over_botocores_limit_is_refused_from_its_prelude() -> None:
    prelude = struct.pack(">II", 16 + 25 * 1024 * 1024, 0)
    decoder = EventStreamDecoder()
    with pytest.raises(ValueError, match="Payload length"):
        list(decoder.feed(prelude + struct.pack(">I", zlib.crc32(prelude))))


def test_a_duplicate_header_is_refused() -> None:
    headers = b"\x01a\x07\x00\x01x" * 2
    total = 12 + len(headers) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers
    with pytest.raises(ValueError, match="Duplicate header"):
        decode(body + struct.pack(">I", zlib.crc32(body)))


def test_a_header_name_that_is_not_utf8_is_refused() -> None:
    headers = b"\x01\xff\x00"
    total = 12 + len(headers) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers
    with pytest.raises(ValueError, match="malformed headers"):
        decode(body + struct.pack(">I", zlib.crc32(body)))


def test_a_big_message_in_many_small_pieces_is_decoded_once_whole() -> None:
    big = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "z" * 200_000}})
    decoder = EventStreamDecoder()
    seen: list[EventMessage] = []
    for i in range(0, len(big), 512):
        seen += decoder.feed(big[i : i + 512])
    assert len(seen) == 1
    assert seen[0].payload.endswith(b'"}}')
    assert decoder.pending == 0


def test_the_end_of_the_body_inside_a_message_is_an_interruption() -> None:
    decoder = EventStreamDecoder()
    assert [m.header(":event-type") for m in decoder.feed(FRAME + FRAME[:5])] == ["contentBlockDelta"]
    with pytest.raises(StreamInterrupted, match="ended inside an event"):
        decoder.end_frames()


def test_the_end_of_the_body_between_messages_is_clean() -> None:
    decoder = EventStreamDecoder()
    list(decoder.feed(FRAME))
    assert decoder.end_frames() == []
