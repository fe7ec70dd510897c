"""The bound budgets hold under concurrency (docs/metering.md, "Budgets"): 100 concurrent requests
against a $1 budget, through real gateways in front of a loopback upstream.

Prices: $1 per million input tokens, $100 per million output tokens (a cent per 100 output
tokens); ``reservation_cap_tokens`` 1000, so a request holds its prompt estimate plus $0.10.

* Answers that stay within the reservation (800 output tokens, $0.08): the budget is never
  passed, whatever the concurrency.
* Streams that go past it (``max_tokens: 64000`` as agents send, 3,000 output tokens reported as
  they are produced, $0.30 each) with ``cut_off_streams``: each stream holds more as it runs,
  and is ended before it spends past what it holds once the budget has no more room: 0 over.

In one process (memory counters) and across two server processes sharing Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from cryptography.fernet import Fernet

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.budgets.metered_upstream import MeteredUpstream
from tests.dbs import fresh_database
from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, running, settings
from tests.server.test_process import environment, free_port, wait_until_live
from waypost.pipeline.budget_book import live_budget
from waypost.settings import BudgetSettings, DatabaseSettings
from waypost.state.redis_backend import RedisCounters
from waypost.store import Store, tables

LIMIT = 1_000_000  # $1 in micro-dollars
CAP = 1000  # reservation_cap_tokens
PROMPT = "Tell me about budgets. " * 20  # ~115 tokens estimated; the upstream bills 50
INPUT_TOKENS = 50
REQUESTS = 100
PRICES = {"input": 1.0, "output": 100.0}
RESERVATION = 116 * 1 + CAP * 100  # an upper bound of one request's hold (micro-dollars)


def model_entry(name: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "anthropic",
        "base_url": url,
        "api_key": "sk-ant-fake",
        "upstream_model": "claude-test",
        "prices": PRICES,
        "public": True,
        "retry": {"max_retries": 0},
    }


def request_body(model: str, *, stream: bool) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 64000,
        "stream": stream,
        "messages": [{"role": "user", "content": PROMPT}],
    }


@dataclass
class Outcome:
    status: int
    cut: bool  # a stream ended with the budget's error event


async def one(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str | None = GATEWAY_KEY
) -> Outcome:
    headers = {"anthropic-version": "2023-06-01"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    async with client.stream("POST", f"{url}/v1/messages", json=body, headers=headers) as response:
        text = (await response.aread()).decode()
    cut = response.status_code == 200 and "event: error" in text
    if cut:
        assert "budget" in text, text[-500:]
    if response.status_code != 200:
        assert response.status_code == 429 and "Budget" in text, text
    return Outcome(response.status_code, cut)


async def hammer(urls: list[str], body: dict[str, Any], key: str | None = GATEWAY_KEY) -> list[Outcome]:
    """``REQUESTS`` requests at once, spread over the gateways at ``urls``."""
    limits = httpx.Limits(max_connections=REQUESTS * 2, max_keepalive_connections=REQUESTS * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        return list(
            await asyncio.gather(*(one(client, urls[i % len(urls)], body, key) for i in range(REQUESTS)))
        )


async def recorded_spend(store: Store) -> int:
    async with store.engine.connect() as conn:
        return int(
            await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(tables.request_log.c.cost_micros), 0)))
        )


def gateway_config(upstream: MeteredUpstream, *, cut_off: bool) -> Any:
    return settings(
        model_entry("claude", upstream.url),
        budgets={"reservation_cap_tokens": CAP, "cut_off_streams": cut_off},
    )


async def run_in_memory(
    upstream: MeteredUpstream, *, stream: bool, cut_off: bool
) -> tuple[list[Outcome], int, int]:
    """The outcomes, the budget's counted spend and the audit log's total."""
    async with running(gateway_config(upstream, cut_off=cut_off)) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as admin:
            created = await admin.post(
                "/admin/budgets",
                json={"name": "one-dollar", "scope": "global", "limit_usd": "1", "period": "monthly"},
                headers={"authorization": f"Bearer {GATEWAY_KEY}"},
            )
            assert created.status_code == 201, created.text
            outcomes = await hammer([gateway.url], request_body("claude", stream=stream))
            status = (
                await admin.get(
                    "/admin/budgets/one-dollar", headers={"authorization": f"Bearer {GATEWAY_KEY}"}
                )
            ).json()["usage"]
        await gateway.container.audit.flush()
        audited = await recorded_spend(gateway.container.store)
    assert status["reserved_usd"] == 0  # every hold settled or released
    return outcomes, round(status["spent_usd"] * 1_000_000), audited


async def test_concurrent_answers_within_their_reservation_never_pass_the_budget() -> None:
    async with MeteredUpstream(input_tokens=INPUT_TOKENS, output_tokens=800, latency_s=0.2) as upstream:
        outcomes, spent, audited = await run_in_memory(upstream, stream=False, cut_off=False)

    served = sum(o.status == 200 for o in outcomes)
    assert served * (INPUT_TOKENS * 1 + 800 * 100) == spent == audited
    assert spent <= LIMIT  # the bound: $1 (+ one reservation, which these answers never pass)
    assert served >= 9 and sum(o.status == 429 for o in outcomes) == REQUESTS - served


async def test_concurrent_streams_past_their_reservation_are_cut_off_at_the_budget() -> None:
    async with MeteredUpstream(input_tokens=INPUT_TOKENS, output_tokens=3000, chunks=30) as upstream:
        outcomes, spent, audited = await run_in_memory(upstream, stream=True, cut_off=True)

    assert spent == audited
    assert spent <= LIMIT  # 0 over
    assert any(o.cut for o in outcomes)
    assert all(o.status in (200, 429) for o in outcomes)


async def test_streams_whose_upstream_reports_usage_only_at_the_end_are_cut_off_too() -> None:
    """OpenAI-compatible servers send usage once, after the last delta: the stream's spend so far
    is estimated from what it said, and the stream is ended before that passes its hold. A cut
    stream is billed for what it produced (counted), so the total stays within the budget."""
    # 3,000 output tokens' worth of text (4 characters a token), billed as such at the end.
    reply = Reply(
        text=" ".join(["abc"] * 3000),
        input_tokens=INPUT_TOKENS,
        output_tokens=3000,
        chunks=30,
        chunk_delay_s=0.005,
    )
    async with OpenAIUpstream(api_key="sk-fake") as upstream:
        upstream.enqueue(dataclasses.replace(reply, repeat=REQUESTS))
        entry = {**model_entry("gpt", upstream.url + "/v1"), "provider": "openai", "api_key": "sk-fake"}
        config = settings(entry, budgets={"reservation_cap_tokens": CAP, "cut_off_streams": True})
        async with running(config) as gateway:
            async with httpx.AsyncClient(base_url=gateway.url) as admin:
                headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
                created = await admin.post(
                    "/admin/budgets",
                    json={"name": "one-dollar", "scope": "global", "limit_usd": "1", "period": "monthly"},
                    headers=headers,
                )
                assert created.status_code == 201, created.text
                body = {
                    "model": "gpt",
                    "max_tokens": 64000,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": PROMPT}],
                }
                limits = httpx.Limits(max_connections=REQUESTS * 2)
                async with httpx.AsyncClient(timeout=120, limits=limits) as client:

                    async def call() -> tuple[int, str]:
                        async with client.stream(
                            "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=headers
                        ) as response:
                            return response.status_code, (await response.aread()).decode()

                    results = await asyncio.gather(*(call() for _ in range(REQUESTS)))
                usage = (await admin.get("/admin/budgets/one-dollar", headers=headers)).json()["usage"]
            await gateway.container.audit.flush()
            audited = await recorded_spend(gateway.container.store)
    cut = [text for status, text in results if status == 200 and '"error"' in text]
    assert cut, "no stream was cut off"
    assert all("budget" in text.lower() for text in cut)
    assert usage["reserved_usd"] == 0
    assert round(usage["spent_usd"] * 1_000_000) == audited
    assert audited <= LIMIT  # 0 over


async def test_without_cut_off_a_stream_past_its_reservation_runs_to_its_end() -> None:
    async with (
        MeteredUpstream(
            input_tokens=INPUT_TOKENS, output_tokens=3000, chunks=30, chunk_delay_s=0.001
        ) as upstream,
        running(gateway_config(upstream, cut_off=False)) as gateway,
        httpx.AsyncClient(timeout=60) as client,
    ):
        headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
        await client.post(
            f"{gateway.url}/admin/budgets",
            json={"name": "small", "scope": "global", "limit_usd": "0.15"},
            headers=headers,
        )
        outcome = await one(client, gateway.url, request_body("claude", stream=True))
        usage = (await client.get(f"{gateway.url}/admin/budgets/small", headers=headers)).json()["usage"]

    assert (outcome.status, outcome.cut) == (200, False)
    assert usage["spent_usd"] == 0.30005  # past the budget: the overshoot the docs state


# -- two server processes sharing Redis -------------------------------------------------------


@dataclass
class Pair:
    urls: list[str]
    prefix: str
    database: dict[str, Any]


def start_gateway(directory: Path, name: str, doc: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**doc, "server": {**doc.get("server", {}), "port": port}}))
    log = (directory / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "waypost.cli", "serve", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=environment(),
        start_new_session=True,
    )
    try:
        wait_until_live(port, process)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_gateways(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A directory and the config document two ``waypost serve`` processes share (fill in the
    models and the database); the processes are killed afterwards."""
    need_redis()
    doc: dict[str, Any] = {
        "auth": {"jwt_secret": "s" * 40, "open": True},
        "security": {"encryption_keys": [Fernet.generate_key().decode()], "allow_private_targets": True},
        "logging": {"level": "warning"},
        "state": {
            "backend": "redis",
            "redis_url": REDIS_URL,
            "key_prefix": unique_prefix(),
            "socket_timeout": 2.0,
        },
        "budgets": {"reservation_cap_tokens": CAP, "refresh_interval": 0.5},
        "audit": {"flush_interval": 0.05},
    }
    yield tmp_path, doc
    asyncio.run(forget_prefix(doc["state"]["key_prefix"]))


async def redis_spend(doc: dict[str, Any], store: Store, name: str) -> tuple[int, int]:
    """A budget's (spent, held) micro-dollars in Redis."""
    record = await store.budgets.by_name(name)
    assert record is not None
    budget = live_budget(record, BudgetSettings(), {})
    counters = RedisCounters(REDIS_URL, prefix=doc["state"]["key_prefix"])
    try:
        [tally] = await counters.tally([budget.window(time.time())], now=time.time())
    finally:
        await counters.close()
    return tally.spent_micros, tally.held_micros


async def test_across_two_server_processes_sharing_redis_the_bound_holds(
    two_gateways: tuple[Path, dict[str, Any]],
) -> None:
    directory, doc = two_gateways
    async with (
        MeteredUpstream(input_tokens=INPUT_TOKENS, output_tokens=800, latency_s=0.2) as answers,
        MeteredUpstream(input_tokens=INPUT_TOKENS, output_tokens=3000, chunks=30) as streams,
        fresh_database(migrated=True) as database,
    ):
        store = Store.from_settings(DatabaseSettings.model_validate(database))
        try:
            await store.upgrade()  # a PostgreSQL schema starts empty (a SQLite copy is migrated)
            for name, cut_off in (("answers", False), ("streams", True)):
                await store.budgets.create(
                    name=name,
                    scope="model",
                    target=name,
                    limit_micros=LIMIT,
                    limit_tokens=None,
                    period="monthly",
                    config={"cut_off_streams": cut_off},
                )
            doc = {
                **doc,
                "database": database,
                "models": [model_entry("answers", answers.url), model_entry("streams", streams.url)],
            }
            processes = [start_gateway(directory, f"gateway-{i}", doc) for i in range(2)]
            try:
                urls = [url for _, url in processes]
                non_streamed = await asyncio.to_thread(
                    lambda: asyncio.run(hammer(urls, request_body("answers", stream=False), None))
                )
                streamed = await asyncio.to_thread(
                    lambda: asyncio.run(hammer(urls, request_body("streams", stream=True), None))
                )
            finally:
                for process, _ in processes:
                    process.send_signal(signal.SIGTERM)
                for process, _ in processes:
                    process.wait(30)
            answers_spent, answers_held = await redis_spend(doc, store, "answers")
            streams_spent, streams_held = await redis_spend(doc, store, "streams")
            audited_answers, audited_streams = await spend_by_model(store)
        finally:
            await store.close()

    served = sum(o.status == 200 for o in non_streamed)
    assert served >= 9  # nine reservations fit in $1 (each process alone would have let 9 through)
    assert answers_spent == served * (INPUT_TOKENS + 800 * 100) == audited_answers
    assert answers_spent <= LIMIT + RESERVATION and answers_spent <= LIMIT
    assert streams_spent == audited_streams and streams_spent <= LIMIT  # 0 over, across processes
    assert any(o.cut for o in streamed)
    assert answers_held == streams_held == 0


async def spend_by_model(store: Store) -> tuple[int, int]:
    log = tables.request_log
    async with store.engine.connect() as conn:
        rows = dict(
            (
                await conn.execute(
                    sa.select(log.c.model, sa.func.sum(log.c.cost_micros)).group_by(log.c.model)
                )
            ).all()
        )
    return int(rows.get("answers") or 0), int(rows.get("streams") or 0)
