"""Shutdown and the audit log, beside tests/metering/test_audit_shutdown.py (SIGTERM during 50
streams, the grace period, the SIGKILL bound): readiness turns 503 at SIGTERM while a stream in
flight goes on, and rows spooled during a database outage (PostgreSQL behind a severed loopback
proxy) survive a SIGKILL of ``waypost serve`` and are written exactly once by the next start."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.dbs import fresh_database
from tests.harness import model, settings, with_secrets_file
from tests.server.test_process import START_TIMEOUT, cli, environment, free_port, write_config
from tests.tcp_proxy import tcp_proxy
from waypost.app import create_app
from waypost.server import GatewayServer, server_config
from waypost.settings import DatabaseSettings
from waypost.store import Store, tables

WAIT = 60.0  # seconds for what should happen long before
WORDS = ["one", "two", "three", "four", "five", "six"]
CHAT = "/v1/chat/completions"


def stream_body(model_name: str = "slow") -> dict[str, Any]:
    return {"model": model_name, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@asynccontextmanager
async def serve_process(
    directory: Path, port: int, database: dict[str, Any], **sections: Any
) -> AsyncIterator[Any]:
    """``waypost serve`` in a process of its own; killed at the end if still running."""
    config = write_config(
        directory,
        server={"port": port},
        auth={"jwt_secret": "s" * 40, "open": True, "cache_ttl": 3600},
        logging={"level": "warning", "json": True},
        database=database,
        **sections,
    )
    stderr = (directory / "stderr.log").open("ab")
    process = subprocess.Popen(
        cli("serve", "--config", str(config)),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        env=environment(),
        start_new_session=True,
    )
    try:
        await wait_until_live(port, process, directory)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        await asyncio.to_thread(process.wait, 30)
        stderr.close()


async def wait_until_live(port: int, process: subprocess.Popen[bytes], directory: Path) -> None:
    """Without blocking the event loop (a proxy in this loop may carry the server's database)."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health/live")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.poll() is not None or asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the server did not start: {(directory / 'stderr.log').read_text()}")
            await asyncio.sleep(0.05)


async def exit_code(process: subprocess.Popen[bytes]) -> int:
    return await asyncio.to_thread(process.wait, WAIT)


async def rows(database: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """The request_log rows whose X-Request-ID (``client_request_id``) starts with ``prefix``."""
    store = Store.from_settings(DatabaseSettings.model_validate(database))
    try:
        log = tables.request_log
        async with store.engine.connect() as conn:
            query = sa.select(log).where(log.c.client_request_id.like(f"{prefix}%"))
            return [dict(r) for r in (await conn.execute(query)).mappings()]
    finally:
        await store.close()


def words(stream: str) -> list[str]:
    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in stream.splitlines()
        if line.startswith("data: {") and '"choices":[{' in line.replace(" ", "")
    ]
    return "".join(pieces).split()


async def test_readiness_turns_503_at_sigterm_while_a_stream_in_flight_goes_on() -> None:
    mock = {"reply": " ".join(WORDS), "chunks": len(WORDS), "chunk_delay_ms": 100}
    async with fresh_database(migrated=True) as section:
        config = with_secrets_file(settings(model("slow", "mock", mock=mock), api_keys=[], database=section))
        app = create_app(config, configure_logs=False)
        uvicorn_config = server_config(app, config)
        uvicorn_config.load()
        server = GatewayServer(uvicorn_config)
        server.lifespan = uvicorn_config.lifespan_class(uvicorn_config)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await server.startup(sockets=[sock])
        try:
            async with httpx.AsyncClient(timeout=WAIT) as client:
                assert (await client.get(url + "/health/ready")).status_code == 200
                async with client.stream("POST", url + CHAT, json=stream_body()) as resp:
                    lines = resp.aiter_lines()
                    first = await anext(lines)
                    server.handle_exit(signal.SIGTERM, None)  # what the signal calls
                    async with httpx.AsyncClient(timeout=WAIT) as other:
                        ready = await other.get(url + "/health/ready")
                    rest = [line async for line in lines]
        finally:
            await server.shutdown(sockets=[sock])
    assert ready.status_code == 503
    assert (ready.json()["status"], ready.json()["reason"]) == ("not ready", "draining")
    assert server.should_exit
    assert words("\n".join([first, *rest])) == WORDS


async def test_rows_spooled_during_an_outage_survive_a_sigkill_and_the_next_start_writes_them_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    spool = tmp_path / "spool"
    ids = [f"killed-{i:02d}" for i in range(10)]
    async with fresh_database("postgresql") as section:
        direct = Store.from_settings(DatabaseSettings.model_validate(section))
        await direct.upgrade()
        await direct.close()
        url = make_url(section["url"])
        async with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = {**section, "url": url.set(port=proxy.port).render_as_string(hide_password=False)}
            audit = {"flush_interval": 0.05, "spool_dir": str(spool)}
            models = [{"name": "echo", "provider": "mock"}]
            async with serve_process(tmp_path, port, proxied, audit=audit, models=models) as process:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
                    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
                    warm = await client.post(CHAT, json=body, headers={"x-request-id": "killed-warm"})
                    assert warm.status_code == 200, warm.text
                    await eventually(lambda: rows(section, "killed-warm"), "the first row written")
                    proxy.sever()
                    for rid in ids:
                        resp = await client.post(CHAT, json=body, headers={"x-request-id": rid})
                        assert resp.status_code == 200, resp.text
                await eventually(lambda: _spooled(spool, 10), "10 requests spooled")
                process.kill()  # SIGKILL: no shutdown, no flush
                assert await exit_code(process) == -signal.SIGKILL
            proxy.restore()
            async with serve_process(tmp_path, port, proxied, audit=audit, models=models) as process:
                await eventually(lambda: _written(section, 11), "the spool replayed by the next start")
                process.send_signal(signal.SIGTERM)
                assert await exit_code(process) == 0
        found = await rows(section, "killed-")
    assert sorted(r["client_request_id"] for r in found) == sorted([*ids, "killed-warm"])
    assert not list(spool.glob("batch-*"))


async def eventually(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT:g} s: {what}")
        await asyncio.sleep(0.05)


async def _spooled(spool: Path, n: int) -> bool:
    lines = (
        sum(len(p.read_bytes().splitlines()) for p in spool.glob("batch-*.jsonl")) if spool.exists() else 0
    )
    return lines >= n


async def _written(database: dict[str, Any], n: int) -> bool:
    return len(await rows(database, "killed-")) >= n
