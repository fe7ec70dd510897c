"""How the gateway behaves when upstreams fail: retries, Retry-After, unreachable upstreams, timeouts,
broken streams and callers that hang up. Specified by docs/configuration.md ("Retries and
fallbacks") and docs/errors.md; every test runs a real gateway in front of real fake upstreams."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.fakes import AnthropicUpstream, FakeUpstream, OpenAIUpstream, Reply
from tests.fakes.raw_client import sse_data, sse_event_names
from tests.harness import GATEWAY_KEY, model, serve, settings

FORMATS = ["openai", "anthropic"]
USER: Any = [{"role": "user", "content": "hi"}]
FAST_RETRY = {"initial_delay": 0.01, "max_delay": 0.05}
LONG_TEXT = " ".join(f"w{i}" for i in range(60))  # one SSE frame per word: a long stream


# -- helpers ---------------------------------------------------------------------------------------


def upstream_of(kind: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream) -> FakeUpstream:
    return openai_upstream if kind == "openai" else anthropic_upstream


def entry(name: str, fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """A models entry pointing at ``fake`` with its own key."""
    kind = "openai" if isinstance(fake, OpenAIUpstream) else "anthropic"
    return model(name, kind, fake.url, fake.api_key, **extra)


@asynccontextmanager
async def openai_sdk(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@asynccontextmanager
async def anthropic_sdk(url: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def path_for(fmt: str) -> str:
    return "/v1/chat/completions" if fmt == "openai" else "/v1/messages"


def body_for(fmt: str, name: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": name, "messages": USER, "stream": stream}
    if fmt == "anthropic":
        body["max_tokens"] = 64
    return body


HEADERS = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}


@dataclass
class Raw:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


async def post(url: str, fmt: str, name: str, *, stream: bool) -> Raw:
    """One call in the client format ``fmt``, read to the end, bytes as they came."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path_for(fmt), json=body_for(fmt, name, stream=stream), headers=HEADERS) as resp,
    ):
        return Raw(resp.status, resp.headers, await resp.read())


def assert_ends_with_error_event(fmt: str, raw: bytes) -> dict[str, Any]:
    """The stream's last frame is an error in the caller's format and it never ends cleanly;
    returns the error object."""
    if fmt == "openai":
        frames = sse_data(raw)
        assert "[DONE]" not in frames
        assert frames, "the stream sent nothing at all"
        last = frames[-1]
        assert isinstance(last, dict) and set(last) == {"error"}, last
        error: dict[str, Any] = last["error"]
        assert error["message"] and error["type"]
        return error
    names = sse_event_names(raw)
    assert "message_stop" not in names
    assert names[-1] == "error", names
    last = sse_data(raw)[-1]
    assert last["type"] == "error"
    assert last["error"]["message"] and last["error"]["type"]
    return dict(last["error"])


async def stream_with_sdk(url: str, fmt: str, name: str) -> None:
    """Consume a stream with the official SDK of ``fmt``."""
    if fmt == "openai":
        async with openai_sdk(url) as oai:
            stream = await oai.chat.completions.create(model=name, messages=USER, stream=True)
            async for _ in stream:
                pass
    else:
        async with anthropic_sdk(url) as ant, ant.messages.stream(model=name, max_tokens=64, messages=USER) as s:
            async for _ in s:
                pass


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- retries ---------------------------------------------------------------------------------------


async def test_retryable_failure_is_retried_and_the_attempts_are_reported(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=500), Reply(text="second time lucky"))
    config = settings(entry("a", openai_upstream, retry={"max_retries": 1, **FAST_RETRY}))
    async with serve(config) as url, openai_sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="a", messages=USER)
    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content == "second time lucky"
    assert openai_upstream.hits == 2
    assert raw.headers["x-waypost-attempts"] == "2"


async def test_invalid_request_is_neither_retried_nor_sent_to_a_fallback(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=400, error_message="messages are malformed", repeat=5))
    config = settings(
        entry("a", openai_upstream, retry={"max_retries": 2, **FAST_RETRY}, fallbacks=["b"]),
        entry("b", anthropic_upstream),
    )
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(model="a", messages=USER)
    assert "messages are malformed" in err.value.message
    assert openai_upstream.hits == 1
    assert anthropic_upstream.hits == 0


async def test_retries_are_bounded_by_max_retries(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=500, repeat=10))
    config = settings(entry("a", openai_upstream, retry={"max_retries": 2, **FAST_RETRY}))
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="a", messages=USER)
    assert err.value.status_code == 502
    assert openai_upstream.hits == 3


# -- Retry-After -----------------------------------------------------------------------------------


async def test_retry_waits_as_long_as_the_providers_retry_after(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=429, retry_after="0.2"), Reply(text="after the wait"))
    config = settings(entry("a", openai_upstream, retry={"max_retries": 1, "initial_delay": 0.01, "max_delay": 1}))
    async with serve(config) as url, openai_sdk(url) as client:
        started = time.perf_counter()
        completion = await client.chat.completions.create(model="a", messages=USER)
        elapsed = time.perf_counter() - started
    assert completion.choices[0].message.content == "after the wait"
    assert openai_upstream.hits == 2
    assert elapsed >= 0.2


async def test_retry_after_longer_than_max_delay_is_not_waited_for(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=429, retry_after="30", repeat=5))
    config = settings(entry("a", openai_upstream, retry={"max_retries": 2, "initial_delay": 0.01, "max_delay": 1}))
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.RateLimitError) as err:
            await client.chat.completions.create(model="a", messages=USER)
    assert err.value.response.headers["retry-after"] == "30"
    assert openai_upstream.hits == 1


# -- unreachable upstreams -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_unreachable_upstream_is_502_naming_the_model(fmt: str) -> None:
    config = settings(model("dead-end", "openai", f"http://127.0.0.1:{closed_port()}"))
    async with serve(config) as url:
        raw = await post(url, fmt, "dead-end", stream=False)
    assert raw.status == 502
    body = json.loads(raw.body)
    assert "dead-end" in body["error"]["message"]


async def test_unreachable_upstream_falls_back(anthropic_upstream: AnthropicUpstream) -> None:
    anthropic_upstream.enqueue(Reply(text="from the fallback"))
    config = settings(
        model("dead-end", "openai", f"http://127.0.0.1:{closed_port()}", fallbacks=["backup"]),
        entry("backup", anthropic_upstream),
    )
    async with serve(config) as url, openai_sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="dead-end", messages=USER)
    assert raw.parse().choices[0].message.content == "from the fallback"
    assert raw.headers["x-waypost-deployment"] == "backup"


# -- timeouts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f"from-{f}" for f in FORMATS])
async def test_first_byte_timeout_is_504_in_the_callers_format(
    fmt: str, upstream: str, stream: bool, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(latency_s=1.5))
    config = settings(entry("slow", fake, timeouts={"first_byte": 0.2}))
    async with serve(config) as url:
        raw = await post(url, fmt, "slow", stream=stream)
    assert raw.status == 504
    body = json.loads(raw.body)
    if fmt == "openai":
        assert body["error"]["type"] == "timeout"
    else:
        assert body["type"] == "error"
        assert body["error"]["type"] == "timeout_error"
    assert fake.hits == 1


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f"from-{f}" for f in FORMATS])
async def test_stalled_stream_ends_with_a_timeout_error_event(
    fmt: str, upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(text=LONG_TEXT, stall_after_chunks=4))
    config = settings(entry("stalls", fake, timeouts={"idle": 0.3}))
    async with serve(config) as url:
        raw = await post(url, fmt, "stalls", stream=True)
    assert raw.status == 200
    error = assert_ends_with_error_event(fmt, raw.body)
    assert error["type"] == ("timeout" if fmt == "openai" else "timeout_error")


@pytest.mark.parametrize("fmt", FORMATS)
async def test_stalled_stream_makes_the_sdk_raise(fmt: str, openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(text=LONG_TEXT, stall_after_chunks=4))
    config = settings(entry("stalls", openai_upstream, timeouts={"idle": 0.3}))
    async with serve(config) as url:
        with pytest.raises(openai.APIError if fmt == "openai" else anthropic.APIError):
            await stream_with_sdk(url, fmt, "stalls")


# -- streams that break after they began -----------------------------------------------------------

BREAKS = {
    "reset": Reply(text=LONG_TEXT, reset_after_chunks=4),
    "error-event": Reply(text=LONG_TEXT, error_event_after_chunks=4),
}


@pytest.mark.parametrize("fault", list(BREAKS))
@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f"from-{f}" for f in FORMATS])
async def test_stream_broken_midway_ends_with_an_error_event(
    fmt: str, upstream: str, fault: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(BREAKS[fault])
    config = settings(entry("breaks", fake))
    async with serve(config) as url:
        raw = await post(url, fmt, "breaks", stream=True)
    assert raw.status == 200
    assert_ends_with_error_event(fmt, raw.body)


@pytest.mark.parametrize("fault", list(BREAKS))
@pytest.mark.parametrize("fmt", FORMATS)
async def test_stream_broken_midway_makes_the_sdk_raise(
    fmt: str, fault: str, anthropic_upstream: AnthropicUpstream
) -> None:
    anthropic_upstream.enqueue(BREAKS[fault])
    config = settings(entry("breaks", anthropic_upstream))
    async with serve(config) as url:
        with pytest.raises(openai.APIError if fmt == "openai" else anthropic.APIError):
            await stream_with_sdk(url, fmt, "breaks")


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_stream_that_failed_after_its_first_byte_is_not_retried(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(text=LONG_TEXT, reset_after_chunks=4), Reply(text="a retry"))
    config = settings(entry("breaks", fake, retry={"max_retries": 2, **FAST_RETRY}))
    async with serve(config) as url:
        raw = await post(url, "openai", "breaks", stream=True)
    assert_ends_with_error_event("openai", raw.body)
    assert fake.hits == 1


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_stream_that_failed_before_its_first_byte_is_retried(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(reset_after_chunks=0), Reply(text="clean on retry"))
    config = settings(entry("flaky", fake, retry={"max_retries": 1, **FAST_RETRY}))
    async with serve(config) as url, openai_sdk(url) as client:
        stream = await client.chat.completions.create(model="flaky", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "clean on retry"
    assert fake.hits == 2


# -- callers that hang up --------------------------------------------------------------------------


class DisconnectWatch(FakeUpstream):
    """Notes the moment its caller (the gateway) closes the connection of a request in progress.

    aiohttp does not cancel a handler when its client goes away, so the fake alone cannot tell
    a hang-up from a slow reader; watching the request's transport can.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.disconnected = asyncio.Event()
        self.disconnected_at = 0.0

    def routes(self) -> list[web.RouteDef]:
        return [web.route(r.method, r.path, self._watched(r.handler), **r.kwargs) for r in super().routes()]

    def _watched(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def watched(request: web.Request) -> web.StreamResponse:
            watcher = asyncio.create_task(self._watch(request))
            try:
                return await handler(request)
            finally:
                watcher.cancel()

        return watched

    async def _watch(self, request: web.Request) -> None:
        while request.transport is not None and not request.transport.is_closing():
            await asyncio.sleep(0.005)
        self.disconnected_at = time.perf_counter()
        self.disconnected.set()


class WatchedOpenAI(DisconnectWatch, OpenAIUpstream):
    pass


class WatchedAnthropic(DisconnectWatch, AnthropicUpstream):
    pass


@asynccontextmanager
async def watched_upstream(kind: str) -> AsyncIterator[DisconnectWatch]:
    fake: DisconnectWatch = WatchedOpenAI(api_key="sk-watched") if kind == "openai" else WatchedAnthropic(
        api_key="sk-watched"
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_client_hanging_up_mid_stream_closes_the_upstream_connection(upstream: str) -> None:
    async with watched_upstream(upstream) as fake:
        fake.enqueue(Reply(text=LONG_TEXT, chunk_delay_s=0.2))  # 12 s if nobody stops it
        async with serve(settings(entry("slow", fake))) as url:
            async with aiohttp.ClientSession() as session:
                resp = await session.post(
                    url + path_for("openai"), json=body_for("openai", "slow", stream=True), headers=HEADERS
                )
                assert resp.status == 200
                assert b"data: " in await resp.content.readany()
                resp.close()  # drops the connection: the client has hung up
                hung_up_at = time.perf_counter()
            await asyncio.wait_for(fake.disconnected.wait(), 1.5)
    assert fake.disconnected_at - hung_up_at < 1.0
    assert fake.hits == 1


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_client_hanging_up_before_the_answer_closes_the_upstream_connection(upstream: str) -> None:
    async with watched_upstream(upstream) as fake:
        fake.enqueue(Reply(latency_s=5))
        async with serve(settings(entry("slow", fake))) as url:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(TimeoutError):
                    await session.post(
                        url + path_for("openai"),
                        json=body_for("openai", "slow", stream=False),
                        headers=HEADERS,
                        timeout=aiohttp.ClientTimeout(total=0.2),
                    )
                hung_up_at = time.perf_counter()
            await asyncio.wait_for(fake.disconnected.wait(), 2.0)
    assert fake.disconnected_at - hung_up_at < 1.0
    assert fake.hits == 1
