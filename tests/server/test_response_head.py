"""``GatewayCycle`` writes a response head as uvicorn's own cycle does, byte for byte, with the
same state after it and the same refusals; only the way it checks the headers differs
(server_writes.py). Compared on random heads, valid and not."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, cast

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from waypost.server_writes import GatewayCycle, header_block

from .test_server_writes import Recorded

NAMES = [b"content-type", b"x-request-id", b"x-ratelimit-limit-requests", b"x-cache-status", b"etag", b"a"]
ODD_NAMES = [b"X-Upper", b"bad name", b"col:on", b"", b"caf\xc3\xa9", b"tab\t", b"semi;", b"x\ny", b"\n"]
# Names the joined check must find wherever they stand (uvicorn's path acts on them).
SPECIAL_NAMES = [
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"x-content-length",
    b"content-length-x",
]
VALUES = [b"application/json", b"", b"0.123", b"a: b", b"tab\there", b"\xc3\xa9t\xc3\xa9", b"x" * 300]
ODD_VALUES = [b"line\r\nx-injected: 1", b"nul\x00", b"bell\x07", b"del\x7f", b"lf\n"]


def cycle(kind: type[RequestResponseCycle], method: str, keep_alive: bool) -> tuple[Any, Recorded]:
    raw = Recorded()
    transport = cast(asyncio.Transport, raw)
    logger = logging.getLogger("test")
    made = kind(
        scope=cast(Any, {"method": method, "type": "http"}),
        transport=transport,
        flow=FlowControl(transport),
        logger=logger,
        access_logger=logger,
        access_log=False,
        default_headers=[(b"date", b"Sat, 05 Dec 2026 14:00:00 GMT")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    return made, raw


def random_head(rng: random.Random) -> list[tuple[bytes, bytes]]:
    headers = []
    for _ in range(rng.randint(0, 8)):
        name = rng.choice(ODD_NAMES if rng.random() < 0.05 else NAMES)
        value = rng.choice(ODD_VALUES if rng.random() < 0.05 else VALUES)
        headers.append((name, value))
    if rng.random() < 0.6:
        headers.insert(rng.randint(0, len(headers)), (b"content-length", str(rng.randint(0, 999)).encode()))
    if rng.random() < 0.05:
        headers.append((b"content-length", b"7"))
    if rng.random() < 0.1:
        headers.append(rng.choice([(b"transfer-encoding", b"chunked"), (b"connection", b"close")]))
    if rng.random() < 0.15:  # anywhere: before, between or after the others
        name = rng.choice(SPECIAL_NAMES)
        value = rng.choice([b"5", b"chunked", b"close", b"keep-alive"]) if name != b"content-length" else b"5"
        headers.insert(rng.randint(0, len(headers)), (name, value))
    return headers


async def sent(
    kind: type[RequestResponseCycle], message: dict[str, Any], method: str, keep_alive: bool
) -> Any:
    made, raw = cycle(kind, method, keep_alive)
    try:
        await made.send(message)
    except (RuntimeError, ValueError) as exc:
        return ("refused", type(exc), raw.writes)
    state = (made.response_started, made.chunked_encoding, made.expected_content_length, made.keep_alive)
    return raw.writes, state


async def test_heads_are_written_as_uvicorn_writes_them() -> None:
    rng = random.Random(11)
    fast = 0
    for _ in range(3000):
        headers = random_head(rng)
        message = {
            "type": "http.response.start",
            "status": rng.choice([200, 204, 304, 429]),
            "headers": headers,
        }
        method, keep_alive = rng.choice(["POST", "GET", "HEAD"]), rng.random() < 0.8
        ours = await sent(GatewayCycle, message, method, keep_alive)
        theirs = await sent(RequestResponseCycle, message, method, keep_alive)
        assert ours == theirs, headers
        fast += header_block([], headers) is not None
    assert fast > 1500  # most heads took the joined path, not uvicorn's


def test_a_header_that_could_split_the_head_is_left_to_uvicorn() -> None:
    assert header_block([], [(b"x-a", b"1\r\nx-injected: 1")]) is None
    assert header_block([], [(b"X-Upper", b"1")]) is None  # uvicorn lower-cases it
    assert header_block([], [(b"content-length", b"2"), (b"content-length", b"2")]) is None
    assert header_block([(b"date", b"d")], [(b"content-length", b"2"), (b"x-a", b"b: c")]) == (
        b"date: d\r\ncontent-length: 2\r\nx-a: b: c\r\n",
        2,
    )


async def test_the_body_follows_as_uvicorn_sends_it() -> None:
    made, raw = cycle(GatewayCycle, "POST", True)
    await made.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await made.send({"type": "http.response.body", "body": b"{}"})
    assert made.response_complete
    assert raw.writes[-1] == b"{}"
    with pytest.raises(RuntimeError):
        await made.send({"type": "http.response.body", "body": b"more"})


class Connection(Recorded):
    """A transport as the server's protocol asks one: addresses, and reading paused or resumed."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_the_servers_protocol_writes_each_answer_with_this_cycle() -> None:
    from uvicorn.server import ServerState

    from waypost.observability.access import AccessLog
    from waypost.server import GatewayConfig, GatewayProtocol, ServerLimits

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    config = GatewayConfig(
        app,
        limits=ServerLimits(5, 5, 100, 65536),
        refusals=AccessLog(enabled=False, json_format=True),
        lifespan="off",
        log_config=None,
    )
    config.load()
    protocol = GatewayProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    connection = Connection()
    protocol.connection_made(cast(asyncio.Transport, connection))
    for _ in range(2):  # each request on the connection gets its own cycle, of this class
        protocol.data_received(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
        assert type(protocol.cycle) is GatewayCycle
        for _ in range(20):
            await asyncio.sleep(0)
    protocol.connection_lost(None)
    assert connection.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"] * 2
