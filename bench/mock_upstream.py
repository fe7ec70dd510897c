"""A fast OpenAI-compatible mock upstream: raw asyncio protocol, precomputed answers. It serves
chat completions and the Responses API (``…/responses``, bench/mock_responses.py).

It speaks just enough HTTP/1.1 for the clients the benchmark puts in front of it (keep-alive,
Content-Length or chunked request bodies). Everything it sends is built once per model name, so
answering costs a header scan, one small JSON parse and a few socket writes.

Run: python -m bench.mock_upstream --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import cast

import orjson

from bench import mock_responses
from bench.event_loop import run_event_loop

STREAM_CHUNKS = 20
PROMPT_TOKENS = 8

_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found"
_BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nbad request"
)
_HEALTH = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}'
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_MAX_HEAD = 64 * 1024


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": STREAM_CHUNKS,
        "total_tokens": PROMPT_TOKENS + STREAM_CHUNKS,
    }


def completion_body(model: str) -> bytes:
    """The full non-streamed answer: a fixed text with usage."""
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "word " * STREAM_CHUNKS},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(),
    }
    return orjson.dumps(body)


def stream_events(model: str) -> list[bytes]:
    """SSE events: STREAM_CHUNKS content chunks (the last one carries finish_reason), usage, [DONE]."""
    events: list[bytes] = []
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    for i in range(STREAM_CHUNKS):
        delta: dict[str, str] = {"content": "word "}
        if i == 0:
            delta["role"] = "assistant"
        last = i == STREAM_CHUNKS - 1
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}]}
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    usage_chunk = {**base, "choices": [], "usage": _usage()}
    events.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Answers:
    """Wire bytes per (API, model name), built on first use."""

    def __init__(self) -> None:
        self._plain: dict[tuple[bool, str], bytes] = {}
        self._stream: dict[tuple[bool, str], list[bytes]] = {}

    def plain(self, model: str, responses: bool = False) -> bytes:
        found = self._plain.get((responses, model))
        if found is None:
            if responses:
                body = mock_responses.response_body(model, STREAM_CHUNKS, PROMPT_TOKENS)
            else:
                body = completion_body(model)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
                body
            )
            found = self._plain[(responses, model)] = head + body
        return found

    def stream(self, model: str, responses: bool = False) -> list[bytes]:
        found = self._stream.get((responses, model))
        if found is None:
            if responses:
                events = mock_responses.stream_events(model, STREAM_CHUNKS, PROMPT_TOKENS)
            else:
                events = stream_events(model)
            frames = [_http_chunk(event) for event in events]
            frames[0] = _STREAM_HEAD + frames[0]
            frames[-1] += b"0\r\n\r\n"
            found = self._stream[(responses, model)] = frames
        return found


def _dechunk(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """Decode a chunked body beginning at start; None while incomplete."""
    parts: list[bytes] = []
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)
            return (b"".join(parts), end + 4) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class MockProtocol(asyncio.Protocol):
    """One connection. Requests are answered in order; a stream pauses reading until it ends."""

    def __init__(self, answers: _Answers) -> None:
        self._answers = answers
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only compatible with it.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._streaming:
            self._drain()

    def _drain(self) -> None:
        transport = self._transport
        while transport is not None and not transport.is_closing():
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD:
                    transport.write(_BAD_REQUEST)
                    transport.close()
                return
            lines = bytes(self._buf[:end]).split(b"\r\n")
            request_line = lines[0].split(b" ")
            if len(request_line) != 3:
                transport.write(_BAD_REQUEST)
                transport.close()
                return
            method, path, version = request_line
            length = 0
            chunked = False
            keep_alive = version == b"HTTP/1.1"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    keep_alive = value.strip().lower() == b"keep-alive"
            if chunked:
                decoded = _dechunk(self._buf, end + 4)
                if decoded is None:
                    return
                body, consumed = decoded
            else:
                consumed = end + 4 + length
                if len(self._buf) < consumed:
                    return
                body = bytes(self._buf[end + 4 : consumed])
            del self._buf[:consumed]
            if self._answer(transport, method, path.split(b"?", 1)[0], body, keep_alive):
                return

    def _answer(
        self, transport: asyncio.Transport, method: bytes, path: bytes, body: bytes, keep: bool
    ) -> bool:
        """Write the answer; True when the connection is busy (streaming) or closed."""
        responses = path.endswith(b"/responses")
        if method == b"GET" and path == b"/health":
            transport.write(_HEALTH)
        elif method == b"POST" and (responses or path.endswith(b"/chat/completions")):
            try:
                request = orjson.loads(body)
                model = str(request.get("model", "mock"))
                stream = bool(request.get("stream"))
            except (ValueError, AttributeError):
                transport.write(_BAD_REQUEST)
                transport.close()
                return True
            if stream:
                self._streaming = True
                asyncio.get_running_loop().create_task(self._stream(transport, model, keep, responses))
                return True
            transport.write(self._answers.plain(model, responses))
        else:
            transport.write(_NOT_FOUND)
        if not keep:
            transport.close()
            return True
        return False

    async def _stream(self, transport: asyncio.Transport, model: str, keep: bool, responses: bool) -> None:
        # One write per event with a loop turn between them, so a reader that keeps up sees
        # separate chunks (as from a real model) while a busy one may find several at once.
        for frame in self._answers.stream(model, responses):
            if transport.is_closing():
                return
            transport.write(frame)
            await asyncio.sleep(0)
        self._streaming = False
        if not keep:
            transport.close()
        elif self._buf:
            self._drain()


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    answers = _Answers()
    server = await loop.create_server(lambda: MockProtocol(answers), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(serve(args.host, args.port))


if __name__ == "__main__":
    main()
