"""``HeadWithBody``: an answer's head and body leave in one write; nothing is reordered, lost, or
held past the end of the event loop's turn (server_writes.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from waypost.server_writes import HeadWithBody

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recorded:
    """A transport that records what is written to it, and in what calls."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def _wrapped() -> tuple[HeadWithBody, Recorded]:
    raw = Recorded()
    return HeadWithBody(cast(asyncio.Transport, raw), asyncio.get_running_loop()), raw


async def test_a_head_and_its_body_leave_in_one_write() -> None:
    transport, raw = _wrapped()
    transport.write(HEAD)
    assert raw.writes == []  # held
    transport.write(memoryview(b"{}"))  # any bytes-like
    assert raw.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert raw.writes == [HEAD + b"{}"]  # nothing left to flush


async def test_a_head_alone_leaves_at_the_end_of_the_loops_turn() -> None:
    transport, raw = _wrapped()
    transport.write(HEAD)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert raw.writes == [HEAD]
    transport.write(b"chunk")  # a stream's chunks go straight out
    assert raw.writes == [HEAD, b"chunk"]


async def test_other_writes_are_not_held_and_order_is_kept() -> None:
    transport, raw = _wrapped()
    transport.write(b"body of an earlier answer")
    transport.writelines([HEAD, b"{", b"}"])  # a head with its body: held like any head
    transport.write(b"next")
    assert raw.writes == [b"body of an earlier answer", HEAD + b"{}next"]


async def test_closing_writes_what_is_held_first_and_aborting_drops_it() -> None:
    transport, raw = _wrapped()
    transport.write(HEAD)
    transport.close()
    assert raw.writes == [HEAD] and raw.closed
    await asyncio.sleep(0)
    assert raw.writes == [HEAD]  # the end-of-turn flush finds nothing (and a closed transport)

    transport, raw = _wrapped()
    transport.write(HEAD)
    transport.write_eof()
    assert raw.writes == [HEAD] and raw.eof


async def test_everything_else_is_the_wrapped_transports() -> None:
    transport, _ = _wrapped()
    assert transport.get_extra_info("peername") == "extra peername"
