"""Shared machinery of the fake upstream providers: a loopback aiohttp server, a reply script, a request log.

The fakes never import waypost: they are written against the providers' public wire formats so that
the end-to-end tests catch translation bugs in the gateway instead of sharing them.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

ToolCallSpec = tuple[str, str, Mapping[str, Any]]
"""(id, name, arguments) of one tool call the fake model makes."""

_MAX_BODY = 64 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """What the fake model answers to one or more requests.

    Usage numbers go on the wire exactly as given, in each provider's own convention: ``input_tokens`` is
    OpenAI's ``prompt_tokens``, Gemini's ``promptTokenCount`` and Ollama's ``prompt_eval_count`` (which
    include cached tokens) or Anthropic's ``input_tokens`` and Bedrock's ``inputTokens`` (which exclude
    cache reads and writes). ``None`` means a deterministic estimate from the request/answer.

    Faults count SSE frames (one ``data:`` line for OpenAI, one ``event:`` frame for Anthropic, pings
    and ``[DONE]`` included): ``reset_after_chunks=2`` sends two frames, then drops the TCP connection.
    On a non-streamed request ``reset_after_chunks`` drops the connection before any response and
    ``stall_after_chunks`` hangs before the headers; ``error_event_after_chunks`` applies to streams only.
    """

    text: str | None = None
    """Answer text; ``None`` echoes the last user message as ``"echo: <text>"`` unless tool calls are set."""
    tool_calls: Sequence[ToolCallSpec] = ()
    thinking: tuple[str, str] | None = None
    """(thinking text, signature); the OpenAI fake sends it as ``reasoning_content`` like DeepSeek/vLLM."""
    finish_reason: str | None = None
    """Provider-native override: an OpenAI ``finish_reason`` or an Anthropic ``stop_reason``."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """Of ``cache_write_tokens``, those written for an hour: Anthropic's
    ``cache_creation.ephemeral_1h_input_tokens``, Bedrock's ``cacheDetails`` entry with ``ttl: 1h``."""
    reasoning_tokens: int = 0
    """Of the output: OpenAI's ``reasoning_tokens``, Anthropic's ``output_tokens_details.thinking_tokens``,
    Gemini's ``thoughtsTokenCount`` (which Gemini counts apart from ``candidatesTokenCount``)."""
    status: int = 200
    """An error status answers with the provider's real error JSON instead of a completion."""
    error_message: str | None = None
    error_type: str | None = None
    retry_after: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    latency_s: float = 0.0
    """Delay before the response headers."""
    chunk_delay_s: float = 0.0
    chunks: int | None = None
    """Split the text into this many deltas; ``None`` sends one delta per word."""
    reset_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    error_event_after_chunks: int | None = None
    repeat: int = 1
    """How many requests this reply serves before the next one in the queue takes over."""
    model: str | None = None
    """Model name in the answer; defaults to the requested one."""
    raw_body: bytes | None = None
    """Sent verbatim with ``status`` (``text/event-stream`` when streaming), to test malformed upstreams."""
    garbage: bytes | None = None
    """What no parser should accept (a 20 MB line, bytes that are not JSON or not UTF-8, a corrupt
    event-stream message): a stream sends it after ``garbage_after_chunks`` frames, then ends; a
    non-streamed answer is it alone, with status 200 and no ``Content-Length`` (chunked)."""
    garbage_after_chunks: int = 0


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case header names."""
    body: bytes
    json: Any
    """The parsed JSON body, or ``None`` when there was none or it was not JSON."""


_RECORD_KEY = web.RequestKey("fake_upstream.recorded", Recorded)


class _ConnectionDropped(Exception):
    """Raised inside a handler to drop the client's TCP connection without a complete response."""


def split_text(text: str, parts: int | None) -> list[str]:
    """Split ``text`` into ``parts`` near-equal pieces, or into words (with their trailing space)."""
    if not text:
        return []
    if parts is None:
        return re.findall(r"\s*\S+\s*", text) or [text]
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces: list[str] = []
    start = 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def estimate_tokens(*values: Any) -> int:
    """A deterministic token estimate: a quarter of the characters of every string inside ``values``."""
    chars = 0
    stack: list[Any] = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return max(1, (chars + 3) // 4)


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


class LoopbackServer:
    """An aiohttp application on a free loopback port, started and stopped with the test."""

    _runner: web.AppRunner | None = None
    _base_url: str | None = None

    async def _listen(self, app: web.Application) -> str:
        # A short shutdown grace: stalled handlers are woken by their server, nothing else runs long.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self._base_url

    async def start(self) -> str:
        raise NotImplementedError

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self._base_url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL of the running server (``http://127.0.0.1:PORT``)."""
        if self._base_url is None:
            raise RuntimeError(f"the {type(self).__name__} server is not running")
        return self._base_url


class FakeUpstream(LoopbackServer):
    """A real HTTP server on 127.0.0.1 that plays a model provider, driven by a queue of ``Reply``.

    Every request is recorded (``requests``, ``last``, ``hits``) before it is validated; requests the
    fake rejects (bad key, invalid body) do not consume the reply queue.
    """

    stream_content_type = "text/event-stream; charset=utf-8"
    """What a streamed answer is sent as (Ollama's fake streams NDJSON)."""

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        """The key clients must present; ``None`` accepts any key."""
        self.requests: list[Recorded] = []
        self.default_reply: Reply = Reply()
        """Served when the script is empty; ``Reply()`` echoes the last user message."""
        self._queue: list[list[Any]] = []
        self._stopping = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on a free loopback port; return the base URL (``http://127.0.0.1:PORT``)."""
        if self._base_url is not None:
            return self._base_url
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._record_middleware], client_max_size=_MAX_BODY)
        app.add_routes(self.routes())
        return await self._listen(app)

    async def stop(self) -> None:
        self._stopping.set()
        await super().stop()

    # -- script and log ----------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the script; each serves ``reply.repeat`` requests in turn."""
        for reply in replies:
            if reply.repeat < 1:
                raise ValueError("Reply.repeat must be at least 1")
            self._queue.append([reply, reply.repeat])

    def take_reply(self) -> Reply:
        if not self._queue:
            return self.default_reply
        head = self._queue[0]
        head[1] -= 1
        if head[1] == 0:
            self._queue.pop(0)
        reply: Reply = head[0]
        return reply

    @property
    def pending_replies(self) -> int:
        """Requests the script still has replies for."""
        return sum(remaining for _, remaining in self._queue)

    @property
    def hits(self) -> int:
        return len(self.requests)

    @property
    def last(self) -> Recorded:
        if not self.requests:
            raise AssertionError("the fake upstream has received no request")
        return self.requests[-1]

    def reset(self) -> None:
        """Forget recorded requests and the remaining script."""
        self.requests.clear()
        self._queue.clear()

    # -- provider hooks ----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def error_response(self, status: int, message: str, *, error_type: str | None = None) -> web.Response:
        """The provider's error JSON for ``status``."""
        raise NotImplementedError

    def scripted_error(self, reply: Reply) -> web.Response:
        response = self.error_response(reply.status, reply.error_message or "", error_type=reply.error_type)
        if reply.retry_after is not None:
            response.headers["retry-after"] = reply.retry_after
        response.headers.update(reply.headers)
        return response

    # -- serving -----------------------------------------------------------------------------------

    @staticmethod
    def recorded(request: web.Request) -> Recorded:
        return request[_RECORD_KEY]

    @web.middleware
    async def _record_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        body = await request.read()
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            json=parsed,
        )
        self.requests.append(rec)
        request[_RECORD_KEY] = rec
        try:
            response: web.StreamResponse = await handler(request)
        except (_ConnectionDropped, ConnectionError):
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        return response

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise _ConnectionDropped

    async def _hang(self) -> None:
        """Wait until the server stops; the connection is then dropped."""
        await self._stopping.wait()
        raise _ConnectionDropped

    async def respond(
        self,
        request: web.Request,
        reply: Reply,
        *,
        stream: bool,
        body: Callable[[], Any],
        frames: Callable[[], list[bytes]],
        error_frame: bytes,
        headers: Mapping[str, str],
    ) -> web.StreamResponse:
        """Serve ``reply``: latency, scripted errors, then a JSON body or SSE frames with injected faults."""
        await self._pause(reply.latency_s)
        all_headers = {**headers, **reply.headers}
        if reply.status >= 400 and reply.raw_body is None:
            return self.scripted_error(reply)
        if reply.raw_body is not None:
            content_type = "text/event-stream" if stream else "application/json"
            return web.Response(
                status=reply.status,
                body=reply.raw_body,
                headers={**all_headers, "content-type": content_type},
            )
        if not stream:
            if reply.reset_after_chunks is not None:
                raise _ConnectionDropped
            if reply.stall_after_chunks is not None:
                await self._hang()
            if reply.garbage is not None:
                return await self.send_garbage(request, reply.garbage, all_headers)
            return web.Response(
                body=compact_json(body()), headers={**all_headers, "content-type": "application/json"}
            )
        return await self._stream(request, reply, frames(), error_frame, all_headers)

    async def _stream(
        self,
        request: web.Request,
        reply: Reply,
        frames: list[bytes],
        error_frame: bytes,
        headers: Mapping[str, str],
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**headers, "content-type": self.stream_content_type, "cache-control": "no-cache"}
        )
        await response.prepare(request)
        for sent in range(len(frames) + 1):
            if sent == reply.reset_after_chunks:
                raise _ConnectionDropped
            if sent == reply.stall_after_chunks:
                await self._hang()
            if sent == reply.error_event_after_chunks:
                await response.write(error_frame)
                break
            if reply.garbage is not None and sent == reply.garbage_after_chunks:
                await write_garbage(response, reply.garbage)
                break
            if sent == len(frames):
                break
            if sent > 0:
                await self._pause(reply.chunk_delay_s)
            await response.write(frames[sent])
        await response.write_eof()
        return response

    async def send_garbage(
        self, request: web.Request, garbage: bytes, headers: Mapping[str, str]
    ) -> web.StreamResponse:
        """``garbage`` as a 200 JSON answer of unannounced length."""
        response = web.StreamResponse(headers={**headers, "content-type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await write_garbage(response, garbage)
        await response.write_eof()
        return response


async def write_garbage(response: web.StreamResponse, garbage: bytes) -> None:
    """Write in 64 KiB pieces, as a real server would, so that the reader sees many chunks."""
    piece = 64 * 1024
    for start in range(0, len(garbage), piece):
        await response.write(garbage[start : start + piece])
