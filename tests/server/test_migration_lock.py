"""Replicas starting together on one fresh PostgreSQL database (a database of its own per test):
the migrations run once, under an advisory lock, and every process succeeds; a replica that finds
the schema behind (``auto_migrate`` off, or another replica holding the lock) serves with readiness
503 and the reason until the schema is at head, then turns ready by itself."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.dbs import POSTGRES_URL, postgres_available
from tests.server.test_process import cli, environment, free_port, write_config
from waypost.settings import DatabaseSettings
from waypost.store.engine import create_engine
from waypost.store.migrate import HEAD_REVISION, _lock_key, current_revision, migrate

WAIT = 60.0  # seconds for what should happen long before
DSN = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
async def fresh_postgres() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    if not postgres_available():
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    name = f"waypost_lock_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield DSN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_concurrent_upgrades_with_separate_engines_migrate_once(fresh_postgres: str) -> None:
    engines = [create_engine(DatabaseSettings(url=fresh_postgres, pool_size=1)) for _ in range(5)]
    try:
        results = await asyncio.gather(*(migrate(engine) for engine in engines))
        assert [r.revision for r in results] == [HEAD_REVISION] * 5
        assert sum(r.ran for r in results) == 1
        assert {r.before for r in results if not r.ran} == {HEAD_REVISION}  # found done under the lock
        assert await current_revision(engines[0]) == HEAD_REVISION
    finally:
        for engine in engines:
            await engine.dispose()


def test_db_upgrade_processes_started_together_migrate_once_and_all_succeed(
    tmp_path: Path, fresh_postgres: str
) -> None:
    config = write_config(tmp_path, database={"url": fresh_postgres})
    processes = [
        subprocess.Popen(
            cli("db", "upgrade", "--config", str(config)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=WAIT) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, outputs
    said = sorted(out.strip() for out, _ in outputs)
    assert said == [
        f"Database is up to date (revision {HEAD_REVISION}).",
        f"Database is up to date (revision {HEAD_REVISION}).",
        f"Database is up to date (revision {HEAD_REVISION}).",
        f"Database migrated from an empty database to revision {HEAD_REVISION}.",
    ]


@contextmanager
def replicas(directory: Path, n: int, database: dict[str, Any]) -> Iterator[list[tuple[str, Path]]]:
    """``n`` ``waypost serve`` processes started at once (not waited for); each one's URL and log.
    Stopped with SIGTERM at the end (killed if that does not end them)."""
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for i in range(n):
            port = free_port()
            replica = directory / f"replica-{i}"
            replica.mkdir()
            config = write_config(
                replica,
                server={"port": port},
                auth={"jwt_secret": "s" * 40, "open": True},
                logging={"level": "info", "json": True},
                database=database,
                models=[{"name": "echo", "provider": "mock"}],
            )
            log = replica / "stderr.log"
            with log.open("wb") as stderr:
                process = subprocess.Popen(
                    cli("serve", "--config", str(config)),
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    env=environment(),
                    start_new_session=True,
                )
            started.append((process, f"http://127.0.0.1:{port}", log))
        yield [(url, log) for _, url, log in started]
        for process, _, _ in started:
            process.send_signal(signal.SIGTERM)
        assert [process.wait(WAIT) for process, _, _ in started] == [0] * n
    finally:
        for process, _, _ in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def readiness(client: httpx.AsyncClient, url: str, *, until: int) -> httpx.Response:
    """``GET /health/ready`` until it answers ``until`` (the process may not listen yet)."""
    async with asyncio.timeout(WAIT):
        while True:
            try:
                resp = await client.get(url + "/health/ready")
                if resp.status_code == until:
                    return resp
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)


def migrated_lines(log: Path) -> list[str]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line["msg"] for line in lines if line["msg"].startswith("migrated the database")]


async def test_replicas_starting_together_on_a_fresh_database_migrate_once_and_all_turn_ready(
    tmp_path: Path, fresh_postgres: str
) -> None:
    with replicas(tmp_path, 3, {"url": fresh_postgres}) as started:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            for url, _ in started:
                await readiness(client, url, until=200)
                models = await client.get(url + "/v1/models")
                assert [m["id"] for m in models.json()["data"]] == ["echo"]
    migrations = [line for _, log in started for line in migrated_lines(log)]
    assert migrations == [f"migrated the database from an empty database to revision {HEAD_REVISION}"]


async def test_with_auto_migrate_off_readiness_says_what_it_waits_for_until_the_schema_is_at_head(
    tmp_path: Path, fresh_postgres: str
) -> None:
    with replicas(tmp_path, 1, {"url": fresh_postgres, "auto_migrate": False}) as [(url, _)]:
        async with httpx.AsyncClient(timeout=WAIT) as client:
            waiting = (await readiness(client, url, until=503)).json()
            assert (waiting["status"], waiting["reason"]) == (
                "not ready",
                f"waiting for the database schema {HEAD_REVISION}: the database is empty"
                " (database.auto_migrate is off: run `waypost db upgrade`)",
            )
            assert (await client.get(url + "/health/live")).status_code == 200
            early = await client.post(
                url + "/v1/chat/completions",
                json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert early.status_code == 503
            assert "not ready yet (waiting for the database schema" in early.json()["error"]["message"]
            config = write_config(tmp_path, database={"url": fresh_postgres})
            upgrade = await asyncio.to_thread(
                subprocess.run,
                cli("db", "upgrade", "--config", str(config)),
                capture_output=True,
                env=environment(),
                timeout=WAIT,
            )
            assert upgrade.returncode == 0, upgrade.stderr
            await readiness(client, url, until=200)
            models = await client.get(url + "/v1/models")
            assert [m["id"] for m in models.json()["data"]] == ["echo"]


async def test_a_replica_that_finds_another_migrating_serves_not_ready_then_migrates_once_it_is_free(
    tmp_path: Path, fresh_postgres: str
) -> None:
    holder = await asyncpg.connect(fresh_postgres)  # what a replica migrating the database holds
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", _lock_key(None))
        with replicas(tmp_path, 1, {"url": fresh_postgres}) as [(url, log)]:
            async with httpx.AsyncClient(timeout=WAIT) as client:
                waiting = await readiness(client, url, until=503)
                assert waiting.json()["reason"] == (
                    f"waiting for the database schema {HEAD_REVISION}: another replica is migrating it"
                )
                await holder.execute("SELECT pg_advisory_unlock($1)", _lock_key(None))
                await readiness(client, url, until=200)
                models = await client.get(url + "/v1/models")
                assert [m["id"] for m in models.json()["data"]] == ["echo"]
        assert migrated_lines(log) == [
            f"migrated the database from an empty database to revision {HEAD_REVISION}"
        ]
    finally:
        await holder.close()
