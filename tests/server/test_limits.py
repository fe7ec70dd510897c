"""Requests are bounded at the server: deadlines for headers and bodies (408), header limits (431),
JSON for what the HTTP parser rejects (400), and an access-log line for every refusal."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.harness import GATEWAY_KEY, model, serve, settings
from tests.server.raw_http import CHAT, RawConnection, request_head

JSON_HEAD = ("Content-Type: application/json",)


@asynccontextmanager
async def gateway(api_keys: list[str] | None = None, **server: Any) -> AsyncIterator[str]:
    """A gateway with the echo model, open unless ``api_keys`` is None, access log on."""
    config = settings(model("echo", "mock"), api_keys=api_keys, server=server, logging={"level": "info"})
    async with serve(config) as url:
        yield url


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """Default limits and deadlines."""
    async with gateway([]) as base:
        yield base


@pytest.fixture
async def slow_body_url() -> AsyncIterator[str]:
    async with gateway([], body_timeout=1) as base:
        yield base


@pytest.fixture
async def slow_headers_url() -> AsyncIterator[str]:
    async with gateway([], header_timeout=1) as base:
        yield base


async def refused(url: str, data: bytes, *, then_closed: bool = True) -> tuple[int, Any, bool]:
    """Send ``data`` and stop: the status and JSON body of the answer, and (``then_closed``)
    whether the server then closed the connection."""
    conn = await RawConnection.open(url)
    try:
        await conn.send(data)
        response = await conn.response()
        assert response.headers["content-type"] == "application/json"
        return response.status, response.json(), then_closed and await conn.closed_by_server()
    finally:
        conn.close()


def stopped_body(path: str, *headers: str, length: int = 1000) -> bytes:
    return request_head("POST", path, *JSON_HEAD, *headers, f"Content-Length: {length}") + CHAT[:20]


# -- deadlines ------------------------------------------------------------------------------------


async def test_a_body_shorter_than_its_content_length_is_408_and_the_connection_closed(
    slow_body_url: str,
) -> None:
    status, body, closed = await refused(slow_body_url, stopped_body("/v1/chat/completions"))
    assert status == 408
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "The request body did not arrive within 1 s."
    assert closed


async def test_a_chunked_body_that_stops_is_408(slow_body_url: str) -> None:
    head = request_head("POST", "/v1/embeddings", *JSON_HEAD, "Transfer-Encoding: chunked")
    status, body, closed = await refused(slow_body_url, head + b'a\r\n{"model": \r\n')
    assert (status, closed) == (408, True)
    assert "body did not arrive" in body["error"]["message"]


async def test_the_408_of_an_anthropic_route_is_in_the_anthropic_format(slow_body_url: str) -> None:
    status, body, _ = await refused(slow_body_url, stopped_body("/v1/messages"))
    assert status == 408
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"


async def test_a_control_plane_body_that_stops_is_408(slow_body_url: str) -> None:
    status, body, closed = await refused(slow_body_url, stopped_body("/auth/login"))
    assert (status, closed) == (408, True)
    assert "body did not arrive" in body["error"]["message"]


async def test_headers_that_stop_are_408_and_the_connection_closed(slow_headers_url: str) -> None:
    partial = request_head("POST", "/v1/chat/completions", *JSON_HEAD)[:-2]  # no blank line
    status, body, closed = await refused(slow_headers_url, partial)
    assert (status, closed) == (408, True)
    assert body["error"]["message"] == "The request headers did not arrive within 1 s."


async def test_headers_trickling_in_are_408_at_the_deadline(slow_headers_url: str) -> None:
    conn = await RawConnection.open(slow_headers_url)
    try:
        await conn.send(b"GET /health HTTP/1.1\r\n")
        answer = asyncio.ensure_future(conn.response())
        while not answer.done():  # a header line every 0.2 s: each read is prompt, the whole is not
            await conn.send(b"X-Slow: 1\r\n")
            await asyncio.wait([answer], timeout=0.2)
        assert answer.result().status == 408
    finally:
        conn.close()


async def test_a_connection_that_sends_nothing_is_closed(slow_headers_url: str) -> None:
    conn = await RawConnection.open(slow_headers_url)
    try:
        assert await conn.closed_by_server()
    finally:
        conn.close()


async def test_a_body_still_unsent_after_the_answer_does_not_hold_the_connection() -> None:
    async with gateway(None, body_timeout=1) as base:  # with keys: a wrong one is answered unread
        conn = await RawConnection.open(base)
        try:
            await conn.send(stopped_body("/v1/chat/completions", "Authorization: Bearer wp-wrong-key"))
            assert (await conn.response()).status == 401
            assert await conn.closed_by_server()
        finally:
            conn.close()


async def test_an_idle_connection_is_closed_even_when_its_body_ended_after_the_answer() -> None:
    # uvicorn arms its keep-alive timer when an answer completes, and each read cancels it: a body
    # that ends after its answer left the connection open, idle, for ever.
    async with gateway(None) as base:
        conn = await RawConnection.open(base)
        try:
            await conn.send(stopped_body("/v1/chat/completions", "Authorization: Bearer wp-wrong-key"))
            assert (await conn.response()).status == 401
            await conn.send(b" " * (1000 - 20))  # the rest of the body
            assert await conn.closed_by_server()
        finally:
            conn.close()


async def test_an_idle_connection_stays_open_for_the_keep_alive_timeout_then_closes() -> None:
    # Behind a load balancer that reuses connections the gateway's keep-alive must outlast the
    # balancer's idle timeout (server.keep_alive_timeout; uvicorn's own default is 5 s).
    async with gateway([], keep_alive_timeout=2) as base:
        conn = await RawConnection.open(base)
        try:
            await conn.send(request_head("GET", "/v1/models"))
            assert (await conn.response()).status == 200
            answered = asyncio.get_running_loop().time()
            await asyncio.sleep(0.5)
            await conn.send(request_head("GET", "/v1/models"))  # still open
            assert (await conn.response()).status == 200
            answered = asyncio.get_running_loop().time()
            assert await conn.closed_by_server()
            assert 1.9 <= asyncio.get_running_loop().time() - answered < 4.5  # not uvicorn's 5 s
        finally:
            conn.close()


# -- header limits --------------------------------------------------------------------------------


async def test_more_header_fields_than_the_limit_are_431(url: str) -> None:
    fields = [f"X-Field-{i}: {i}" for i in range(200)]
    status, body, closed = await refused(url, request_head("GET", "/v1/models", *fields))
    assert (status, closed) == (431, True)
    assert body["error"]["message"] == "The request has 201 header fields; the limit is 100."


async def test_a_64_kib_header_is_431(url: str) -> None:
    status, body, _ = await refused(url, request_head("GET", "/v1/models", "X-Big: " + "a" * 65536))
    assert status == 431
    assert "the limit is 32768 bytes" in body["error"]["message"]


async def test_a_header_that_never_ends_is_431(url: str) -> None:
    status, body, closed = await refused(url, b"GET /v1/models HTTP/1.1\r\nX-Endless: " + b"a" * 40000)
    assert (status, closed) == (431, True)
    assert body["error"]["message"] == "The request's headers exceed 32768 bytes."


async def test_the_431_of_an_anthropic_route_is_in_the_anthropic_format(url: str) -> None:
    fields = [f"X-Field-{i}: {i}" for i in range(101)]
    status, body, _ = await refused(url, request_head("POST", "/v1/messages", *fields))
    assert status == 431
    assert body["type"] == "error"


async def test_headers_within_the_limits_are_served(url: str) -> None:
    fields = [f"X-Field-{i}: {i}" for i in range(90)] + ["X-Big: " + "a" * 16384]
    conn = await RawConnection.open(url)
    try:
        await conn.send(request_head("GET", "/health/live", *fields))
        assert (await conn.response()).status == 200
    finally:
        conn.close()


async def test_pipelined_requests_are_each_answered(url: str) -> None:
    conn = await RawConnection.open(url)
    try:
        chat = request_head("POST", "/v1/chat/completions", *JSON_HEAD, f"Content-Length: {len(CHAT)}") + CHAT
        await conn.send(request_head("GET", "/health/live") + chat + request_head("GET", "/v1/models"))
        statuses = [(await conn.response()).status for _ in range(3)]
        assert statuses == [200, 200, 200]
    finally:
        conn.close()


# -- protocol errors ------------------------------------------------------------------------------


async def test_a_malformed_request_line_is_400_in_json(url: str) -> None:
    status, body, closed = await refused(url, b"GET /v1/models HTTP/9.9 extra\r\n\r\n")
    assert (status, closed) == (400, True)
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("Invalid HTTP request: ")


async def test_a_malformed_header_is_400_in_json(url: str) -> None:
    status, body, _ = await refused(url, b"GET /v1/models HTTP/1.1\r\nBad Header: x\r\n\r\n")
    assert status == 400
    assert body["error"]["message"].startswith("Invalid HTTP request: ")


# -- access log -----------------------------------------------------------------------------------


async def test_every_refusal_gets_an_access_log_line(capfd: pytest.CaptureFixture[str]) -> None:
    async with gateway(None, body_timeout=1, max_body_bytes=4096) as base:
        auth = f"Authorization: Bearer {GATEWAY_KEY}"
        head = request_head("POST", "/v1/chat/completions", *JSON_HEAD, auth, "Content-Length: 7")
        sends = {
            401: stopped_body("/v1/chat/completions", "Authorization: Bearer wp-wrong-key"),
            400: head + b"{nope}\n",
            413: stopped_body("/v1/embeddings", auth, length=10_000_000),
            408: stopped_body("/v1/messages", auth),
            431: request_head("GET", "/v1/models", *[f"X-F-{i}: 1" for i in range(150)]),
        }
        for status, data in sends.items():
            assert (await refused(base, data, then_closed=False))[0] == status
        assert (await refused(base, b"NOT HTTP\r\n\r\n", then_closed=False))[0] == 400
        await asyncio.sleep(0)  # the access log writes once per loop turn
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "waypost.access"]
    seen = {(line["status"], line["path"], line["error"]) for line in access}
    assert seen >= {
        (401, "/v1/chat/completions", "Unauthorized"),
        (400, "/v1/chat/completions", "BadRequest"),
        (413, "/v1/embeddings", "PayloadTooLarge"),
        (408, "/v1/messages", "RequestTimeout"),
        (431, "/v1/models", "HeadersTooLarge"),
        (400, "", "BadRequest"),
    }
    assert all(line["request_id"] and line["detail"] for line in access)
