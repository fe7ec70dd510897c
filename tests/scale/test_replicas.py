"""Three Waypost replicas (``waypost serve`` processes, two workers each) on loopback, sharing one
PostgreSQL database and one Redis: what holds on one holds across all of them.

* started together on an empty database, they migrate it once and all become ready;
* a rate limit lets exactly its allowance through, whichever replica each request reaches;
* an answer cached through one replica is a hit on the others;
* a rule created and a token revoked through one replica apply on the others within the caches'
  TTL;
* killing one replica (SIGKILL) loses no audit row of the others, and of its own at most what
  it answered within its last flush interval.

The load runs in a thread with its own event loop: the fake upstream answers in the test's loop.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.fernet import Fernet

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.dbs import fresh_database
from tests.fakes import OpenAIUpstream
from tests.harness import ADMIN_EMAIL, ADMIN_PASSWORD, FAST_HASHING, model
from tests.server.test_process import START_TIMEOUT, environment, free_port
from waypost.settings import DatabaseSettings
from waypost.store import Store

REPLICAS = 3
TTL = 1.0  # seconds: the token, rules and limits caches of every replica
SETTLE = 8.0  # seconds allowed for a change to reach the other replicas (TTL plus start-up slack)
RPM = 60  # the shared rate limit's allowance
FLUSH = 0.2  # seconds: the audit writer's flush interval


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def shared_config(upstream: str, database: dict[str, Any], prefix: str, workers: int) -> dict[str, Any]:
    return {
        "auth": {
            "jwt_secret": "r" * 40,
            "admin_password": ADMIN_PASSWORD,
            "password_hashing": FAST_HASHING,
            "cache_ttl": TTL,
        },
        "security": {"encryption_keys": [Fernet.generate_key().decode()], "allow_private_targets": True},
        "logging": {"level": "warning"},
        "server": {"workers": workers},
        "database": database,
        "state": {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix, "socket_timeout": 2.0},
        "rules": {"cache_ttl": TTL},
        "rate_limits": {
            "cache_ttl": TTL,
            "limits": [
                {
                    "name": "shared",
                    "scope": "model",
                    "target": "limited",
                    "windows": [{"per": "day", "requests": RPM}],
                }
            ],
        },
        "cache": {"enabled": True},
        "audit": {"flush_interval": FLUSH},
        "models": [
            model("open", "openai", upstream, public=True),
            model("limited", "openai", upstream, public=True),
            model("cached", "openai", upstream, public=True),
        ],
    }


def _live(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _every_worker_live(url: str, connections: int = 20) -> bool:
    """Ready on that many new connections in a row. A replica's workers each turn ready on their
    own: one that found the schema not yet at head (another replica was migrating it) looks again
    a second later, and until then its requests get 503. Each new connection goes to whichever
    worker accepts it first, so a worker still waiting answers one of them, almost surely."""
    return all(_live(url) for _ in range(connections))


@contextmanager
def started(directory: Path, doc: dict[str, Any], count: int = REPLICAS) -> Iterator[list[Replica]]:
    """``count`` replicas of one config, started at the same moment (they meet an empty database
    together), each in its own process group; all stopped (SIGTERM, then SIGKILL) afterwards."""
    replicas: list[Replica] = []
    try:
        for i in range(count):
            port = free_port()
            path = directory / f"replica-{i}.yaml"
            path.write_text(yaml.safe_dump({**doc, "server": {**doc["server"], "port": port}}))
            log = directory / f"replica-{i}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "waypost.cli", "serve", "--config", str(path)],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                env=environment(),
                start_new_session=True,
            )
            replicas.append(Replica(process, f"http://127.0.0.1:{port}", log))
        deadline = time.monotonic() + START_TIMEOUT * 2
        for replica in replicas:
            while not _every_worker_live(replica.url):
                if replica.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"{replica.url} did not become ready (exit status {replica.process.poll()}):\n"
                        + replica.log.read_text()[-3000:]
                    )
                time.sleep(0.1)
        yield replicas
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                os.killpg(replica.process.pid, signal.SIGTERM)
        for replica in replicas:
            try:
                replica.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(replica.process.pid, signal.SIGKILL)
                replica.process.wait(10)


@asynccontextmanager
async def cluster(
    directory: Path, upstream: OpenAIUpstream, workers: int
) -> AsyncIterator[tuple[list[Replica], dict[str, Any]]]:
    need_redis()
    prefix = unique_prefix()
    async with fresh_database("postgresql") as database:
        doc = shared_config(upstream.url, database, prefix, workers)
        try:
            with started(directory, doc) as replicas:
                yield replicas, database
        finally:
            await forget_prefix(prefix)


def in_thread(coro_fn: Any, *args: Any) -> Any:
    """Run ``coro_fn(*args)`` in a thread with its own loop (the test's loop serves the fake)."""
    return asyncio.to_thread(lambda: asyncio.run(coro_fn(*args)))


def chat(model_name: str, text: str, temperature: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model_name, "messages": [{"role": "user", "content": text}]}
    if temperature is not None:
        body["temperature"] = temperature
    return body


async def admin_token(url: str) -> tuple[int, str]:
    """An API token of the administrator, made through ``url``: (its id, its plaintext)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        login = await client.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        jwt = login.json()["access_token"]
        made = await client.post(
            "/me/tokens", json={"name": "replicas"}, headers={"Authorization": f"Bearer {jwt}"}
        )
        assert made.status_code == 201, made.text
        return made.json()["id"], made.json()["token"]


async def spread(urls: list[str], bodies: list[dict[str, Any]], key: str, at_once: int = 30) -> list[int]:
    """Send ``bodies`` round-robin over ``urls``, ``at_once`` in flight; their statuses."""
    gate = asyncio.Semaphore(at_once)
    limits = httpx.Limits(max_connections=at_once * len(urls))
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(i: int, body: dict[str, Any]) -> int:
            async with gate:
                url = urls[i % len(urls)]
                r = await client.post(
                    f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                )
                return r.status_code

        return list(await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies))))


async def until(url: str, key: str, body: dict[str, Any], expected: int, what: str) -> float:
    """Seconds until a chat request to ``url`` answers ``expected``; fails past ``SETTLE``."""
    began = time.monotonic()
    while await in_thread(status_of, url, key, body) != expected:
        if time.monotonic() - began > SETTLE:
            raise AssertionError(f"not within {SETTLE}s: {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - began


async def status_of(url: str, key: str, body: dict[str, Any]) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(
            f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
        return r.status_code


async def test_limits_cache_rules_and_tokens_hold_across_three_replicas(tmp_path: Path) -> None:
    async with OpenAIUpstream() as upstream, cluster(tmp_path, upstream, workers=2) as (replicas, _):
        urls = [r.url for r in replicas]
        token_id, key = await admin_token(urls[0])

        # The rate limit: 150 requests over the three replicas, 30 in flight: exactly RPM pass.
        statuses = await in_thread(spread, urls, [chat("limited", f"limit {i}") for i in range(150)], key)
        limited_hits = sum(1 for r in upstream.requests if r.json.get("model") == "limited")
        assert statuses.count(200) == RPM == limited_hits
        assert statuses.count(429) == 150 - RPM

        # The cache: stored through one replica, a hit on the two others (the upstream sees one).
        body = chat("cached", "cache me", temperature=0)
        seen = []
        async with httpx.AsyncClient(timeout=10) as client:
            for url in urls:
                r = await client.post(
                    f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                )
                assert r.status_code == 200, r.text
                seen.append(r.headers.get("x-cache-status"))
        assert seen == ["MISS", "HIT", "HIT"]
        assert sum(1 for r in upstream.requests if r.json.get("model") == "cached") == 1

        # A rule created through replica 0 applies on the others.
        open_body = chat("open", "hello")
        assert await in_thread(status_of, urls[2], key, open_body) == 200
        async with httpx.AsyncClient(base_url=urls[0], timeout=10) as client:
            made = await client.post(
                "/admin/rules",
                json={
                    "name": "close-open",
                    "weight": 10,
                    "conditions": [
                        {"type": "parameter", "parameter": "model", "operator": "exact", "value": "open"}
                    ],
                    "action": {"type": "block", "message": "closed"},
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert made.status_code == 201, made.text
        for url in urls[1:]:
            await until(url, key, open_body, 403, f"the rule on {url}")

        # A token revoked through replica 0 is refused by the others.
        async with httpx.AsyncClient(base_url=urls[0], timeout=10) as client:
            gone = await client.delete(f"/me/tokens/{token_id}", headers={"Authorization": f"Bearer {key}"})
            assert gone.status_code == 204, gone.text
        for url in urls[1:]:
            await until(url, key, open_body, 401, f"the revocation on {url}")


@dataclass
class Answered:
    replica: int
    request_id: str
    at: float  # time.monotonic() when the answer was complete


async def keep_sending(
    urls: dict[int, str], done: Callable[[], bool], key: str | None, out: list[Answered]
) -> int:
    """Chat requests to every replica in ``urls`` (which the caller may shrink) until ``done()``;
    each 200's request id is appended to ``out``. Returns how many calls failed to connect."""
    failures = 0
    async with httpx.AsyncClient(timeout=10) as client:

        async def worker(n: int) -> None:
            nonlocal failures
            i = n
            while not done():
                live = sorted(urls)
                if not live:
                    return
                index = live[i % len(live)]
                i += 1
                try:
                    r = await client.post(
                        f"{urls[index]}/v1/chat/completions", json=chat("open", f"row {n} {i}")
                    )
                except httpx.HTTPError:
                    failures += 1
                    continue
                if r.status_code == 200:
                    out.append(Answered(index, r.headers["x-request-id"], time.monotonic()))

        await asyncio.gather(*(worker(n) for n in range(12)))
    return failures


async def test_killing_one_replica_loses_no_audit_row_of_the_others(tmp_path: Path) -> None:
    async with OpenAIUpstream() as upstream:
        need_redis()
        prefix = unique_prefix()
        async with fresh_database("postgresql") as database:
            # Migrated first: starting together on an empty database is the other test's subject.
            store = Store.from_settings(DatabaseSettings.model_validate(database))
            await store.upgrade()
            await store.close()
            doc = shared_config(upstream.url, database, prefix, workers=1)
            doc["auth"]["open"] = True  # no token: the load is the point here
            answered: list[Answered] = []
            try:
                with started(tmp_path, doc) as replicas:
                    urls = {i: r.url for i, r in enumerate(replicas)}
                    # Counted, not timed: a loaded machine answers slowly, and the test needs
                    # answers from every replica before and after the kill.
                    deadline = time.monotonic() + 120
                    killed_at = math.inf

                    def enough() -> bool:
                        after = sum(1 for a in answered if a.replica != 2 and a.at > killed_at)
                        return after >= 40 or time.monotonic() > deadline

                    load = asyncio.create_task(in_thread(keep_sending, urls, enough, None, answered))
                    while sum(1 for a in answered if a.replica == 2) < 15 and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    # Killed once it has written some of its rows (a flush every FLUSH seconds): a
                    # fast replica answers 15 requests well within its first flush interval.
                    while time.monotonic() < deadline and not await _written(
                        database, {a.request_id for a in answered if a.replica == 2}
                    ):
                        await asyncio.sleep(0.05)
                    victim = replicas[2]
                    os.killpg(victim.process.pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                    urls.pop(2)  # the clients move to the survivors, as a load balancer would
                    await load
                    for replica in replicas[:2]:
                        os.killpg(replica.process.pid, signal.SIGTERM)
                    for replica in replicas[:2]:
                        assert replica.process.wait(30) == 0
            finally:
                await forget_prefix(prefix)
            store = Store.from_settings(DatabaseSettings.model_validate(database))
            try:
                recorded = await _request_ids(store)
            finally:
                await store.close()

    survivors = [a for a in answered if a.replica != 2]
    victims = [a for a in answered if a.replica == 2]
    assert len(survivors) > 50 and len(victims) > 10  # the load reached every replica
    assert {a.request_id for a in survivors} <= recorded  # nothing of the survivors lost
    lost = [a for a in victims if a.request_id not in recorded]
    # Of the killed replica's answers, only those of its last flush interval may be missing
    # (the flush interval plus scheduling slack on a loaded two-core machine).
    assert all(a.at >= killed_at - FLUSH - 1.0 for a in lost), [killed_at - a.at for a in lost]
    assert len(lost) < len(victims)


async def _written(database: dict[str, Any], request_ids: set[str]) -> bool:
    """Whether any of ``request_ids`` is in the audit log."""
    store = Store.from_settings(DatabaseSettings.model_validate(database))
    try:
        return bool(await _request_ids(store) & request_ids)
    finally:
        await store.close()


async def _request_ids(store: Store) -> set[str]:
    import sqlalchemy as sa

    from waypost.store import tables

    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.select(tables.request_log.c.request_id))
        return {row.request_id for row in rows}
