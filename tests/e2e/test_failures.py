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


def upstream_of(
    kind: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> FakeUpstream:
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


def openai_text(raw: Raw, *, stream: bool) -> str:
    """The answer text of an OpenAI-format response, whole or streamed."""
    if not stream:
        return str(json.loads(raw.body)["choices"][0]["message"]["content"])
    chunks = [c for c in sse_data(raw.body) if c != "[DONE]" and c["choices"]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def assert_ends_with_error_event(fmt: str, raw: bytes) -> dict[str, Any]:
    """The stream began, then its last frame is an error in the caller's format and it never ends
    cleanly; returns the error object."""
    if fmt == "openai":
        frames = sse_data(raw)
        assert "[DONE]" not in frames
        assert len(frames) >= 2 and "choices" in frames[0], "the answer never began"
        last = frames[-1]
        assert isinstance(last, dict) and set(last) == {"error"}, last
        error: dict[str, Any] = last["error"]
        assert error["message"] and error["type"]
        return error
    names = sse_event_names(raw)
    assert names[0] == "message_start", "the answer never began"
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
        async with (
            anthropic_sdk(url) as ant,
            ant.messages.stream(model=name, max_tokens=64, messages=USER) as s,
        ):
            async for _ in s:
                pass


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- retries ---------------------------------------------------------------------------------------


async def test_retryable_failure_is_retried_and_the_attempts_are_reported(
    openai_upstream: OpenAIUpstream,
) -> None:
    openai_upstream.enqueue(Reply(status=500), Reply(text="second time lucky"))
    config = settings(entry("a", openai_upstream, retry={"max_retries": 1, **FAST_RETRY}))
    async with serve(config) as url, openai_sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="a", messages=USER)
    assert raw.status_code == 200
    assert raw.parse().choices[0].message.content == "second time lucky"
    assert openai_upstream.hits == 2
    assert raw.headers["x-waypost-attempts"] == "2"


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_invalid_request_is_neither_retried_nor_sent_to_a_fallback(
    status: int, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=status, error_message="messages are malformed", repeat=5))
    config = settings(
        entry("a", openai_upstream, retry={"max_retries": 2, **FAST_RETRY}, fallbacks=["b"]),
        entry("b", anthropic_upstream),
    )
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="a", messages=USER)
    assert 400 <= err.value.status_code < 500
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


async def test_status_outside_retry_status_codes_is_not_retried(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=500, repeat=5))
    config = settings(
        entry("a", openai_upstream, retry={"max_retries": 2, "status_codes": [503], **FAST_RETRY})
    )
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="a", messages=USER)
    assert openai_upstream.hits == 1


async def test_backoff_waits_at_least_half_the_initial_delay(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=500), Reply(text="patience"))
    config = settings(
        entry("a", openai_upstream, retry={"max_retries": 1, "initial_delay": 0.4, "max_delay": 1})
    )
    async with serve(config) as url, openai_sdk(url) as client:
        started = time.perf_counter()
        await client.chat.completions.create(model="a", messages=USER)
        elapsed = time.perf_counter() - started
    assert openai_upstream.hits == 2
    assert elapsed >= 0.2


async def test_timeouts_are_retried(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(latency_s=1.5, repeat=2))
    config = settings(
        entry("slow", openai_upstream, timeouts={"first_byte": 0.2}, retry={"max_retries": 1, **FAST_RETRY})
    )
    async with serve(config) as url:
        raw = await post(url, "openai", "slow", stream=False)
    assert raw.status == 504
    assert openai_upstream.hits == 2


async def test_attempts_are_capped_at_sixteen_overall(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=500, repeat=40))
    anthropic_upstream.enqueue(Reply(status=500, repeat=40))
    retry = {"max_retries": 10, "initial_delay": 0.001, "max_delay": 0.002}
    config = settings(
        entry("a", openai_upstream, retry=retry, fallbacks=["b", "c"]),
        entry("b", anthropic_upstream, retry=retry),
        entry("c", openai_upstream, retry=retry),
    )
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="a", messages=USER)
    assert openai_upstream.hits + anthropic_upstream.hits == 16
    assert (openai_upstream.hits, anthropic_upstream.hits) == (11, 5)


async def test_refused_upstream_credentials_are_a_502_that_does_not_echo_the_provider(
    openai_upstream: OpenAIUpstream,
) -> None:
    config = settings(model("a", "openai", openai_upstream.url, "sk-wrong-key-wxyz"))
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="a", messages=USER)
    assert err.value.status_code == 502
    assert "wxyz" not in err.value.response.text
    assert "Incorrect API key" not in err.value.response.text
    assert openai_upstream.hits == 1


# -- Retry-After -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wait", [{"retry-after": "0.2"}, {"retry-after-ms": "200"}], ids=["retry-after", "retry-after-ms"]
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_retry_waits_as_long_as_the_providers_retry_after(
    wait: dict[str, str], stream: bool, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=429, headers=wait), Reply(text="after the wait"))
    config = settings(
        entry("a", openai_upstream, retry={"max_retries": 1, "initial_delay": 0.01, "max_delay": 1})
    )
    async with serve(config) as url:
        started = time.perf_counter()
        raw = await post(url, "openai", "a", stream=stream)
        elapsed = time.perf_counter() - started
    assert raw.status == 200
    assert openai_text(raw, stream=stream) == "after the wait"
    assert openai_upstream.hits == 2
    assert elapsed >= 0.2


async def test_retry_after_longer_than_max_delay_is_not_waited_for(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=429, retry_after="30", repeat=5))
    config = settings(
        entry("a", openai_upstream, retry={"max_retries": 2, "initial_delay": 0.01, "max_delay": 1})
    )
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.RateLimitError) as err:
            await client.chat.completions.create(model="a", messages=USER)
    assert err.value.response.headers["retry-after"] == "30"
    assert openai_upstream.hits == 1


async def test_retry_after_too_long_to_wait_moves_on_to_the_fallback(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=429, retry_after="30", repeat=5))
    anthropic_upstream.enqueue(Reply(text="from the fallback"))
    config = settings(
        entry(
            "a",
            openai_upstream,
            retry={"max_retries": 2, "initial_delay": 0.01, "max_delay": 1},
            fallbacks=["b"],
        ),
        entry("b", anthropic_upstream),
    )
    async with serve(config) as url, openai_sdk(url) as client:
        completion = await client.chat.completions.create(model="a", messages=USER)
    assert completion.choices[0].message.content == "from the fallback"
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


async def test_connect_errors_are_retried(anthropic_upstream: AnthropicUpstream) -> None:
    config = settings(
        model(
            "dead-end",
            "openai",
            f"http://127.0.0.1:{closed_port()}",
            fallbacks=["backup"],
            retry={"max_retries": 1, **FAST_RETRY},
        ),
        entry("backup", anthropic_upstream),
    )
    async with serve(config) as url, openai_sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="dead-end", messages=USER)
    assert raw.headers["x-waypost-attempts"] == "3"  # two on the dead end, one on the fallback


# -- garbage from upstream -------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_answer_that_is_not_json_is_a_502(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(raw_body=b"<html>upstream proxy error</html>"))
    async with serve(settings(entry("m", fake))) as url:
        raw = await post(url, "anthropic", "m", stream=False)
    assert raw.status == 502
    assert json.loads(raw.body)["error"]["type"] == "api_error"


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_empty_stream_is_a_502_not_a_clean_empty_answer(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(raw_body=b""))
    async with serve(settings(entry("m", fake))) as url:
        raw = await post(url, "openai", "m", stream=True)
    assert raw.status == 502


# A stream cut short by a clean EOF: the first frame of a real answer, then nothing.
TRUNCATED = {
    "openai": b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n',
    "anthropic": b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":1,"output_tokens":1}}}\n\n',
}


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f"from-{f}" for f in FORMATS])
async def test_stream_ending_without_its_terminator_ends_with_an_error_event(
    fmt: str, upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(raw_body=TRUNCATED[upstream]))
    async with serve(settings(entry("m", fake))) as url:
        raw = await post(url, fmt, "m", stream=True)
    assert raw.status == 200
    assert_ends_with_error_event(fmt, raw.body)


# -- timeouts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f"from-{f}" for f in FORMATS])
async def test_first_byte_timeout_is_504_in_the_callers_format(
    fmt: str,
    upstream: str,
    stream: bool,
    openai_upstream: OpenAIUpstream,
    anthropic_upstream: AnthropicUpstream,
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


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_total_timeout_bounds_the_wait_for_the_first_byte(
    stream: bool, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(latency_s=1.0))
    config = settings(entry("slow", openai_upstream, timeouts={"total": 0.2}))
    async with serve(config) as url:
        raw = await post(url, "openai", "slow", stream=stream)
    assert raw.status == 504
    assert json.loads(raw.body)["error"]["type"] == "timeout"


async def test_stream_longer_than_the_total_timeout_ends_with_a_timeout_error_event(
    openai_upstream: OpenAIUpstream,
) -> None:
    openai_upstream.enqueue(Reply(text=LONG_TEXT, chunk_delay_s=0.05))  # 3 s of stream
    config = settings(entry("long", openai_upstream, timeouts={"total": 0.5}))
    async with serve(config) as url:
        raw = await post(url, "anthropic", "long", stream=True)
    assert raw.status == 200
    assert assert_ends_with_error_event("anthropic", raw.body)["type"] == "timeout_error"


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_stream_stalled_before_its_first_chunk_is_a_504(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(Reply(stall_after_chunks=0))
    config = settings(entry("stalls", fake, timeouts={"first_byte": 0.3, "idle": 0.3}))
    async with serve(config) as url:
        raw = await post(url, "openai", "stalls", stream=True)
    assert raw.status == 504
    assert json.loads(raw.body)["error"]["type"] == "timeout"


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
    fmt: str,
    upstream: str,
    fault: str,
    openai_upstream: OpenAIUpstream,
    anthropic_upstream: AnthropicUpstream,
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


EARLY_BREAKS = {"reset": Reply(reset_after_chunks=0), "error-event": Reply(error_event_after_chunks=0)}


@pytest.mark.parametrize("fault", list(EARLY_BREAKS))
@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_stream_that_failed_before_its_first_byte_is_retried(
    upstream: str, fault: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    fake.enqueue(EARLY_BREAKS[fault], Reply(text="clean on retry"))
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
                # A write that failed on the closed connection can end the handler between polls.
                if self._gone(request):
                    self._note_disconnect()

        return watched

    @staticmethod
    def _gone(request: web.Request) -> bool:
        return request.transport is None or request.transport.is_closing()

    def _note_disconnect(self) -> None:
        if not self.disconnected.is_set():
            self.disconnected_at = time.perf_counter()
            self.disconnected.set()

    async def _watch(self, request: web.Request) -> None:
        while not self._gone(request):
            await asyncio.sleep(0.005)
        self._note_disconnect()


class WatchedOpenAI(DisconnectWatch, OpenAIUpstream):
    pass


class WatchedAnthropic(DisconnectWatch, AnthropicUpstream):
    pass


@asynccontextmanager
async def watched_upstream(kind: str) -> AsyncIterator[DisconnectWatch]:
    fake: DisconnectWatch = (
        WatchedOpenAI(api_key="sk-watched") if kind == "openai" else WatchedAnthropic(api_key="sk-watched")
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


# A stream that would take 12 s, and one whose upstream goes silent (a model thinking at length):
# the gateway has nothing to write in the second, so only listening for the hang-up can notice it.
LONG_STREAMS = {
    "slow": Reply(text=LONG_TEXT, chunk_delay_s=0.2),
    "silent": Reply(text=LONG_TEXT, stall_after_chunks=3),
}


@pytest.mark.parametrize("upstream_pace", list(LONG_STREAMS))
@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_client_hanging_up_mid_stream_closes_the_upstream_connection(
    upstream: str, upstream_pace: str
) -> None:
    async with watched_upstream(upstream) as fake:
        fake.enqueue(LONG_STREAMS[upstream_pace])
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
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_client_hanging_up_before_the_answer_closes_the_upstream_connection(
    upstream: str, stream: bool
) -> None:
    async with watched_upstream(upstream) as fake:
        fake.enqueue(Reply(latency_s=5))
        async with serve(settings(entry("slow", fake))) as url:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(TimeoutError):
                    await session.post(
                        url + path_for("openai"),
                        json=body_for("openai", "slow", stream=stream),
                        headers=HEADERS,
                        timeout=aiohttp.ClientTimeout(total=0.2),
                    )
                hung_up_at = time.perf_counter()
            await asyncio.wait_for(fake.disconnected.wait(), 2.0)
    assert fake.disconnected_at - hung_up_at < 1.0
    assert fake.hits == 1
