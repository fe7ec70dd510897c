"""The audit log across a shutdown of a real ``waypost serve`` process (docs/metering.md, "Audit
log"), in front of a loopback OpenAI fake, on a SQLite file read back afterwards:

* SIGTERM while 50 streams run, on one worker and on two: readiness turns 503 at once, every stream ends normally (all its
  deltas, the usage chunk, ``[DONE]``), the process exits 0, and ``request_log`` holds exactly one
  row per request, with its attempt row.
* A stream still running when ``audit.shutdown_grace`` ends is cut, and keeps its row (written,
  or spooled and written at the next start).
* SIGKILL: the bound. Requests that finished well over a flush interval before the kill are all
  in the database; a request in flight at the kill has no row, or a whole one (row and attempt).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from tests.budgets.test_concurrency import start_gateway
from tests.fakes import OpenAIUpstream, Reply
from waypost.settings import DatabaseSettings
from waypost.store import Store, tables

STREAMS = 50
WORDS = [f"word{i}" for i in range(10)]
TEXT = " ".join(WORDS)
INPUT_TOKENS, OUTPUT_TOKENS = 12, 10
# Ten deltas 0.15 s apart: each stream lasts about 1.5 s, long enough for SIGTERM to land in it.
SLOW = Reply(
    text=TEXT, chunks=len(WORDS), chunk_delay_s=0.15, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS
)
WAIT = 60.0  # seconds a test waits for something that should happen long before


@dataclass
class Stream:
    request_id: str
    status: int = 0
    text: str = ""  # the body as received
    failed: str | None = None  # the client's error, when the connection broke


@pytest.fixture
def gateway_doc(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The config of a ``waypost serve`` on a SQLite file in ``tmp_path`` (fill in the models)."""
    yield {
        "auth": {"jwt_secret": "s" * 40, "open": True},
        "security": {"encryption_keys": [Fernet.generate_key().decode()], "allow_private_targets": True},
        "logging": {"level": "warning"},
        "database": {"url": f"sqlite:///{tmp_path}/waypost.db"},
    }


def model_entry(url: str) -> dict[str, Any]:
    return {
        "name": "gpt",
        "provider": "openai",
        "base_url": url + "/v1",
        "api_key": "sk-fake",
        "upstream_model": "gpt-4o-mini",
        "prices": {"input": 1.0, "output": 4.0},
        "public": True,
        "retry": {"max_retries": 0},
    }


async def stream_one(client: httpx.AsyncClient, url: str, stream: Stream, begun: asyncio.Queue[str]) -> None:
    """Run one streamed chat completion to its end; ``begun`` hears of its first bytes."""
    body = {
        "model": "gpt",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "count to ten"}],
    }
    headers = {"x-request-id": stream.request_id}
    try:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
            stream.status = resp.status_code
            parts: list[bytes] = []
            async for chunk in resp.aiter_raw():
                if not parts:
                    begun.put_nowait(stream.request_id)
                parts.append(chunk)
            stream.text = b"".join(parts).decode()
    except httpx.HTTPError as exc:
        stream.failed = f"{type(exc).__name__}: {exc}"
        begun.put_nowait(stream.request_id)  # never blocks the test waiting for it


async def all_begun(begun: asyncio.Queue[str], n: int) -> None:
    async with asyncio.timeout(WAIT):
        for _ in range(n):
            await begun.get()


def completed_normally(stream: Stream) -> bool:
    """Every delta, the usage chunk, then ``[DONE]``."""
    if stream.status != 200 or stream.failed is not None:
        return False
    data = [line[6:] for line in stream.text.splitlines() if line.startswith("data: ")]
    if not data or data[-1] != "[DONE]":
        return False
    chunks = [json.loads(d) for d in data[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    usage = chunks[-1].get("usage") if chunks else None
    return (
        content == TEXT
        and not chunks[-1]["choices"]
        and isinstance(usage, dict)
        and usage.get("completion_tokens") == OUTPUT_TOKENS
        and usage.get("prompt_tokens") == INPUT_TOKENS
    )


async def ask_ready(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, until: bool) -> bytes:
    """``GET /health/ready`` on a connection opened earlier; the answer's head, or b"" if the
    connection was closed. ``until``: ask again on the same connection while the answer is 200
    (a multi-worker server passes the signal on to its workers: the first answers may come
    before it reached them)."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                writer.write(b"GET /health/ready HTTP/1.1\r\nHost: gateway\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if not (until and head.startswith(b"HTTP/1.1 200 ")):
                    return head
                await asyncio.sleep(0.005)
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""
    finally:
        writer.close()


async def read_log(database: str) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The rows of ``request_log`` and their attempt rows, by the X-Request-ID the test sent
    (``client_request_id``: the log's own key is the gateway's)."""
    store = Store.from_settings(DatabaseSettings(url=database))
    try:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(sa.select(tables.request_log))).all()
            requests = {r.client_request_id: r for r in rows}
            sent = {r.request_id: r.client_request_id for r in rows}
            attempts: dict[str, list[Any]] = {}
            for row in (await conn.execute(sa.select(tables.request_attempts))).all():
                attempts.setdefault(sent.get(row.request_id, row.request_id), []).append(row)
    finally:
        await store.close()
    return requests, attempts


def server_log(directory: Path) -> str:
    return (directory / "gateway.log").read_text(errors="replace")[-4000:]


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_during_50_concurrent_streams_loses_no_row(
    tmp_path: Path, gateway_doc: dict[str, Any], workers: int
) -> None:
    async with OpenAIUpstream(api_key="sk-fake") as upstream:
        upstream.enqueue(dataclasses.replace(SLOW, repeat=STREAMS))
        doc = {
            **gateway_doc,
            "models": [model_entry(upstream.url)],
            "audit": {"shutdown_grace": WAIT},
            "server": {"workers": workers},
        }
        process, url = await asyncio.to_thread(start_gateway, tmp_path, "gateway", doc)
        try:
            streams = [Stream(f"sigterm-{i:02d}") for i in range(STREAMS)]
            begun: asyncio.Queue[str] = asyncio.Queue()
            limits = httpx.Limits(max_connections=STREAMS * 2)
            async with httpx.AsyncClient(timeout=WAIT, limits=limits) as client:
                tasks = [asyncio.create_task(stream_one(client, url, s, begun)) for s in streams]
                await all_begun(begun, STREAMS)
                # A connection opened before the signal: the listener closes soon after it.
                port = int(url.rsplit(":", 1)[1])
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                process.send_signal(signal.SIGTERM)
                ready = await ask_ready(reader, writer, until=workers > 1)
                # Readiness turned while the streams were still draining, not after.
                draining = sum(not t.done() for t in tasks)
                await asyncio.gather(*tasks)
            returncode = await asyncio.to_thread(process.wait, WAIT)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    log = server_log(tmp_path)
    # Asked after the signal: not ready (or, had shutdown closed the connection first, no answer).
    assert ready == b"" or ready.startswith(b"HTTP/1.1 503 "), ready
    assert draining > 0
    assert [s.request_id for s in streams if not completed_normally(s)] == [], (streams[0], log)
    assert returncode == 0, log

    requests, attempts = await read_log(gateway_doc["database"]["url"])
    assert sorted(requests) == sorted(s.request_id for s in streams)
    for rid, row in requests.items():
        assert (row.status, row.stream, row.output_tokens, row.input_tokens) == (
            200,
            True,
            OUTPUT_TOKENS,
            INPUT_TOKENS,
        )
        assert row.cost_micros > 0
        assert [(a.attempt, a.status, a.output_tokens) for a in attempts.get(rid, [])] == [
            (1, 200, OUTPUT_TOKENS)
        ]


async def test_sigkill_loses_at_most_what_was_recorded_in_the_last_flush_interval(
    tmp_path: Path, gateway_doc: dict[str, Any]
) -> None:
    interval = 0.1
    finished_n, in_flight_n = 20, 10
    async with OpenAIUpstream(api_key="sk-fake") as upstream:
        upstream.enqueue(
            dataclasses.replace(SLOW, chunk_delay_s=0.0, repeat=finished_n),
            dataclasses.replace(SLOW, chunk_delay_s=1.0, repeat=in_flight_n),  # still running at the kill
        )
        doc = {**gateway_doc, "models": [model_entry(upstream.url)], "audit": {"flush_interval": interval}}
        process, url = await asyncio.to_thread(start_gateway, tmp_path, "gateway", doc)
        try:
            finished = [Stream(f"done-{i:02d}") for i in range(finished_n)]
            in_flight = [Stream(f"cut-{i:02d}") for i in range(in_flight_n)]
            begun: asyncio.Queue[str] = asyncio.Queue()
            async with httpx.AsyncClient(timeout=WAIT, limits=httpx.Limits(max_connections=50)) as client:
                await asyncio.gather(*(stream_one(client, url, s, begun) for s in finished))
                # Well over one flush interval (and one write) since the last of them finished.
                await asyncio.sleep(interval * 10)
                begun = asyncio.Queue()
                tasks = [asyncio.create_task(stream_one(client, url, s, begun)) for s in in_flight]
                await all_begun(begun, in_flight_n)
                process.send_signal(signal.SIGKILL)
                await asyncio.gather(*tasks)
            returncode = await asyncio.to_thread(process.wait, WAIT)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    assert returncode == -signal.SIGKILL
    assert all(completed_normally(s) for s in finished), server_log(tmp_path)
    assert all(not completed_normally(s) for s in in_flight)  # the kill cut them
    requests, attempts = await read_log(gateway_doc["database"]["url"])
    # Every request that finished more than a flush interval before the kill is there...
    assert {s.request_id for s in finished} <= set(requests)
    # ...nothing else was invented, and every row is whole: written with its attempt or not at all.
    assert set(requests) <= {s.request_id for s in finished + in_flight}
    for rid in requests:
        assert [a.attempt for a in attempts.get(rid, [])] == [1]
    assert set(attempts) <= set(requests)


async def test_a_stream_still_running_when_the_grace_period_ends_keeps_its_row(
    tmp_path: Path, gateway_doc: dict[str, Any]
) -> None:
    """Past the grace period (set here by its old key, ``audit.shutdown_grace``) the server cuts
    what still runs; each cut request still gets its row (status 503, error class
    ``ShuttingDown``, what the upstream produced so far). When the writer has stopped by then (the
    cut requests end while the app shuts down) the rows go to the spool, and the next start
    writes them."""
    n = 5
    async with OpenAIUpstream(api_key="sk-fake") as upstream:
        upstream.enqueue(dataclasses.replace(SLOW, chunk_delay_s=2.0, repeat=n))  # 20 s: cut at the grace
        doc = {**gateway_doc, "models": [model_entry(upstream.url)], "audit": {"shutdown_grace": 0.5}}
        process, url = await asyncio.to_thread(start_gateway, tmp_path, "gateway", doc)
        try:
            streams = [Stream(f"graceless-{i}") for i in range(n)]
            begun: asyncio.Queue[str] = asyncio.Queue()
            async with httpx.AsyncClient(timeout=WAIT) as client:
                tasks = [asyncio.create_task(stream_one(client, url, s, begun)) for s in streams]
                await all_begun(begun, n)
                process.send_signal(signal.SIGTERM)
                await asyncio.gather(*tasks)
            returncode = await asyncio.to_thread(process.wait, WAIT)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert returncode == 0, server_log(tmp_path)
        assert not any(completed_normally(s) for s in streams)
        spool = tmp_path / ".waypost" / "spool"

        # The next start replays the spool, if anything went there.
        process, url = await asyncio.to_thread(start_gateway, tmp_path, "gateway", doc)
        try:
            async with asyncio.timeout(WAIT):
                while any(spool.glob("batch-*.jsonl")):
                    await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            returncode = await asyncio.to_thread(process.wait, WAIT)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert returncode == 0, server_log(tmp_path)

    requests, attempts = await read_log(gateway_doc["database"]["url"])
    assert sorted(requests) == sorted(s.request_id for s in streams)
    for rid, row in requests.items():
        assert (row.status, row.error_class, row.stream) == (503, "ShuttingDown", True)
        assert [a.attempt for a in attempts.get(rid, [])] == [1]
