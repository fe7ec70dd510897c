"""The incremental SSE parser: whole events whatever the chunking, raw bytes for relaying."""

from __future__ import annotations

import pytest

from waypost.wire.sse import SSEParser, encode_frame, encode_sse

STREAM = b'event: message_start\ndata: {"a":1}\n\n: keep-alive comment\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'


def parse_in_pieces(data: bytes, size: int) -> list[tuple[str | None, str]]:
    parser = SSEParser()
    out = []
    for i in range(0, len(data), size):
        out += [(e.event, e.data) for e in parser.feed(data[i : i + size])]
    return out + [(e.event, e.data) for e in parser.close()]


def test_events_are_the_same_whatever_the_chunk_size() -> None:
    expected = [("message_start", '{"a":1}'), (None, '{"b":2}'), (None, "[DONE]")]
    for size in (1, 2, 3, 7, 64, len(STREAM)):
        assert parse_in_pieces(STREAM, size) == expected


def test_crlf_line_endings_split_across_chunks() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    for size in (1, 5, len(crlf)):
        assert parse_in_pieces(crlf, size)[0] == ("message_start", '{"a":1}')
        assert len(parse_in_pieces(crlf, size)) == 3


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert parse_in_pieces(b"data: one\ndata: two\n\n", 100) == [(None, "one\ntwo")]


def test_data_without_a_space_after_the_colon() -> None:
    assert parse_in_pieces(b"data:{}\n\n", 100) == [(None, "{}")]


def test_incomplete_event_waits_for_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"x":') == []
    assert [e.data for e in parser.feed(b"1}\n\n")] == ['{"x":1}']


def test_close_flushes_an_unterminated_last_event() -> None:
    parser = SSEParser()
    parser.feed(b"data: tail")
    assert [e.data for e in parser.close()] == ["tail"]


def test_feed_frames_returns_the_raw_bytes_of_complete_events_only() -> None:
    parser = SSEParser()
    frames, raw = parser.feed_frames(b'data: {"a":1}\n\ndata: {"b"')
    assert frames == [(None, b'{"a":1}')]
    assert raw == b'data: {"a":1}\n\n'
    frames, raw = parser.feed_frames(b":2}\n\n")
    assert frames == [(None, b'{"b":2}')]
    assert raw == b'data: {"b":2}\n\n'


def test_encode_sse_round_trips() -> None:
    raw = encode_sse(b'{"k":"v"}', "ping") + encode_sse(b"[DONE]")
    assert parse_in_pieces(raw, 3) == [("ping", '{"k":"v"}'), (None, "[DONE]")]


def test_an_event_longer_than_the_limit_is_refused() -> None:
    parser = SSEParser(max_buffer=100)
    assert parser.feed_frames(b"data: " + b"x" * 60) == ([], b"")
    with pytest.raises(ValueError, match="longer than 100 bytes"):
        parser.feed_frames(b"x" * 60)


def test_a_huge_event_in_many_pieces_comes_out_whole() -> None:
    parser = SSEParser()
    payload = b"y" * 300_000
    raw = b"data: " + payload + b"\n\n"
    pieces = [raw[i : i + 1000] for i in range(0, len(raw), 1000)]
    out = [parser.feed_frames(piece) for piece in pieces]
    assert out[:-1] == [([], b"")] * (len(pieces) - 1)
    assert out[-1] == ([(None, payload)], raw)


def test_a_blank_line_split_between_two_reads_ends_the_event() -> None:
    parser = SSEParser()
    assert parser.feed_frames(b"data: a\n") == ([], b"")
    assert parser.feed_frames(b"\ndata: b") == ([(None, b"a")], b"data: a\n\n")
    assert parser.feed_frames(b"\n\n") == ([(None, b"b")], b"data: b\n\n")


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed_frames(b"data: a\r\n\r") == ([], b"")
    assert parser.feed_frames(b"\n") == ([(None, b"a")], b"data: a\n\n")


def test_an_unterminated_event_at_the_end_of_the_body_is_dropped() -> None:
    parser = SSEParser()
    parser.feed_frames(b"data: cut")
    assert parser.end_frames() == []
    assert parser.feed_frames(b"data: next\n\n")[0] == [(None, b"next")]


def test_encode_frame_writes_a_parsed_frame_back() -> None:
    raw = b"event: x\ndata: one\ndata: two\n\ndata: {}\n\n"
    frames, _ = SSEParser().feed_frames(raw)
    assert b"".join(encode_frame(f) for f in frames) == raw
