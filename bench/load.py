"""The load driver: N keep-alive connections in a closed loop, each sending the next request as soon
as the previous answer has fully arrived.

It speaks HTTP/1.1 over raw asyncio streams rather than through a client library, because on a
2-core machine every microsecond the driver spends is taken from the server being measured.

Protocol with the runner (one JSON object per stdout line):
  warm up for --warmup seconds, print {"event": "ready"}; with --wait-go, wait for a line on stdin;
  measure for --duration seconds; print {"event": "result", ...}. Connections stay open between the
  two phases, so connection set-up is never measured.

Run alone: python -m bench.load --url http://127.0.0.1:9000/v1/chat/completions -c 16 --stream
(``--api responses`` with a …/v1/responses URL: an OpenAI Responses API client instead.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from bench.event_loop import run_event_loop

REQUEST_TIMEOUT_S = 30.0
_MAX_ERROR_SAMPLES = 3


UNIQUE_MARK = b"000000000000"  # --unique: replaced by a counter of the same width in each request
# Started from the clock in microseconds: a later driver process (the next run against the same
# server, whose cache holds the earlier runs' answers) never repeats an earlier one's texts.
_sent = itertools.count(time.time_ns() // 1000 % 10**12)


@dataclass(slots=True)
class Target:
    host: str
    port: int
    request: bytes
    stream: bool
    unique: bool = False  # each request's text differs (a response cache's miss path)
    end_marker: bytes = b"[DONE]"  # what a complete stream carries: chat's [DONE], or response.completed

    def next_request(self) -> bytes:
        if not self.unique:
            return self.request
        return self.request.replace(UNIQUE_MARK, b"%012d" % next(_sent), 1)


@dataclass(slots=True)
class Tally:
    """What one phase (warm-up or measurement) observed."""

    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    last_done: float = 0.0

    def error(self, description: str) -> None:
        self.errors += 1
        if len(self.error_samples) < _MAX_ERROR_SAMPLES and description not in self.error_samples:
            self.error_samples.append(description)


def build_target(
    url: str, stream: bool, headers: list[str], model: str, unique: bool = False, api: str = "chat"
) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise SystemExit(f"only http:// URLs are supported, got {url!r}")
    port = parts.port or 80
    text = f"hello {UNIQUE_MARK.decode()}" if unique else "hello"
    if api == "responses":
        # What the openai SDK's responses.create sends for one user turn (store off: nothing kept).
        request = {"model": model, "input": text, "store": False, "stream": stream}
    else:
        request = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    body = orjson.dumps(request)
    lines = [
        f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *headers,
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    marker = b"response.completed" if api == "responses" else b"[DONE]"
    return Target(parts.hostname, port, head + body, stream, unique, marker)


class Connection:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def exchange(self, tally: Tally) -> None:
        """Send one request, read the whole answer, record latency (and time to first chunk)."""
        target = self._target
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(target.host, target.port)
        reader = self._reader
        assert reader is not None
        started = time.perf_counter()
        self._writer.write(target.next_request())
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked = False
        keep_alive = True
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                keep_alive = value.strip().lower() != b"close"
        first: float | None = None
        tail = b""
        # The end marker is looked for across chunk boundaries: the Responses API's last event is
        # the whole response object, so its type is far from the end of the body.
        ended = False
        marker = target.end_marker
        if length >= 0:
            body = await reader.readexactly(length)
            first = time.perf_counter()
            ended = marker in body
            tail = body[-64:]
        elif chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                data = await reader.readexactly(size + 2)
                if first is None:
                    first = time.perf_counter()
                window = tail + data[:-2]
                ended = ended or marker in window
                tail = window[-64:]
        else:
            keep_alive = False
            while data := await reader.read(65536):
                if first is None:
                    first = time.perf_counter()
                window = tail + data
                ended = ended or marker in window
                tail = window[-64:]
        done = time.perf_counter()
        if not keep_alive:
            await self.close()
        if status != 200:
            tally.error(f"HTTP {status}: {tail.decode('utf-8', 'replace')}")
        elif target.stream and not ended:
            tally.error(f"stream ended without {marker.decode()}: ...{tail.decode('utf-8', 'replace')}")
        else:
            tally.latencies.append(done - started)
            if target.stream and first is not None:
                tally.ttfts.append(first - started)
        tally.last_done = done


async def _worker(connection: Connection, tally: Tally, deadline: float) -> None:
    while time.perf_counter() < deadline:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                await connection.exchange(tally)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            TimeoutError,
        ) as exc:
            tally.error(f"{type(exc).__name__}: {exc}")
            tally.last_done = time.perf_counter()
            await connection.close()


async def run_phase(connections: list[Connection], seconds: float) -> tuple[Tally, float]:
    """All connections in a closed loop for `seconds`; returns the tally and the elapsed time."""
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(_worker(c, tally, deadline) for c in connections))
    return tally, max(tally.last_done, started + 1e-9) - started


def _emit(payload: dict[str, object]) -> None:
    sys.stdout.buffer.write(orjson.dumps(payload) + b"\n")
    sys.stdout.flush()


async def drive(args: argparse.Namespace) -> None:
    target = build_target(args.url, args.stream, args.header, args.model, args.unique, args.api)
    connections = [Connection(target) for _ in range(args.concurrency)]
    try:
        warm, _ = await run_phase(connections, args.warmup)
        _emit({"event": "ready", "warmup_requests": len(warm.latencies), "warmup_errors": warm.errors})
        if args.wait_go:
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu_before = time.process_time()
        tally, elapsed = await run_phase(connections, args.duration)
        _emit(
            {
                "event": "result",
                "requests": len(tally.latencies),
                "errors": tally.errors,
                "error_samples": tally.error_samples,
                "elapsed_s": elapsed,
                "driver_cpu_s": time.process_time() - cpu_before,
                "latencies_s": tally.latencies,
                "ttfts_s": tally.ttfts,
            }
        )
    finally:
        await asyncio.gather(*(c.close() for c in connections))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    parser.add_argument(
        "--unique", action="store_true", help="a different message text in every request (cache misses)"
    )
    parser.add_argument(
        "--api", choices=["chat", "responses"], default="chat", help="the request body's API (default chat)"
    )
    parser.add_argument("--wait-go", action="store_true", help="wait for a stdin line between the phases")
    return parser.parse_args(argv)


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(drive(parse_args()))


if __name__ == "__main__":
    main()
