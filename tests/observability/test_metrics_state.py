"""Metrics of the gateway's state: budgets (remaining, time to reset, refusals), the response
cache, the audit writer, deployment states, streams in flight; and the recorder's own
bookkeeping (a tally of observations adds up as ``observe()`` would)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tests.control.client import Control, control
from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, running, settings
from tests.observability.metrics_scrape import parse, scrape
from waypost.observability.metrics import Series, observe_into
from waypost.observability.metrics_catalog import DURATION

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
PRICES = {"input": 10.0, "output": 20.0}  # USD per million tokens: a call costs $0.002
CHAT = "/v1/chat/completions"


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50)
        yield fake


async def test_budgets_show_what_remains_and_when_they_reset(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = settings(
        model("gpt", "openai", upstream.url, "sk-x", prices=PRICES, public=True), database=database
    )
    api: Control
    async with control(config) as api:
        for name, limit in (("roomy", "1"), ("tiny", "0.000001")):
            body = {"name": name, "scope": "global", "period": "daily", "limit_usd": limit}
            assert (await api.post("/admin/budgets", body)).status_code == 201
        answers = [await api.post(CHAT, chat()) for _ in range(2)]
        got = parse((await api.get("/metrics")).text)
    assert [a.status_code for a in answers] == [429, 429]  # the tiny one refuses them
    assert got.value("waypost_rejections_total", reason="budget", model="gpt") == 2
    assert got.value("waypost_budget_limit_usd", budget="roomy", scope="global") == 1.0
    assert got.value("waypost_budget_remaining_usd", budget="roomy", scope="global") == 1.0
    assert got.value("waypost_budget_remaining_usd", budget="tiny") == pytest.approx(0.000001)
    assert 0 < got.value("waypost_budget_reset_seconds", budget="roomy") <= 86_400 + 3600


async def test_spend_lowers_what_remains_of_a_budget(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = settings(
        model("gpt", "openai", upstream.url, "sk-x", prices=PRICES, public=True), database=database
    )
    async with control(config) as api:
        body = {"name": "b", "scope": "global", "period": "monthly", "limit_usd": "1"}
        assert (await api.post("/admin/budgets", body)).status_code == 201
        for _ in range(3):
            assert (await api.post(CHAT, chat())).status_code == 200
        got = parse((await api.get("/metrics")).text)
    assert got.value("waypost_budget_remaining_usd", budget="b") == pytest.approx(1 - 3 * 0.002)
    assert got.value("waypost_cost_usd_total", model="gpt") == pytest.approx(3 * 0.002)


async def test_cache_hits_and_misses_are_counted(upstream: OpenAIUpstream) -> None:
    config = settings(model("gpt", "openai", upstream.url, "sk-x", public=True), cache={"enabled": True})
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        for _ in range(3):
            assert (await client.post(CHAT, json=chat(temperature=0))).status_code == 200
        got = await scrape(client, gw.url)
    assert got.value("waypost_cache_requests_total", model="gpt", result="miss") == 1
    assert got.value("waypost_cache_requests_total", model="gpt", result="hit") == 2
    assert got.value("waypost_upstream_attempts_total", model="gpt") == 1


async def test_audit_rows_written_are_counted_with_their_flush_time(upstream: OpenAIUpstream) -> None:
    config = settings(
        model("gpt", "openai", upstream.url, "sk-x", public=True), audit={"flush_interval": 0.05}
    )
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        for _ in range(2):
            assert (await client.post(CHAT, json=chat())).status_code == 200
        for _ in range(200):  # the writer's next turn writes them
            got = await scrape(client, gw.url)
            if got.value("waypost_audit_requests_total", outcome="written") == 2:
                break
            await asyncio.sleep(0.05)
    assert got.value("waypost_audit_requests_total", outcome="written") == 2
    assert got.value("waypost_audit_flush_seconds_count") >= 1
    assert got.value("waypost_audit_queue_depth") == 0
    assert got.value("waypost_audit_spool_bytes") == 0


async def test_deployments_show_their_state_healthy_cooling_down_or_missing_credentials(
    upstream: OpenAIUpstream,
) -> None:
    config = settings(
        model("gpt", "openai", upstream.url, "sk-x", public=True),
        {"name": "remote", "provider": "openai"},  # no credentials
    )
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        before = await scrape(client, gw.url)
        upstream.enqueue(Reply(status=429, retry_after="600"))  # cools "gpt" down for that long
        assert (await client.post(CHAT, json=chat())).status_code == 429
        after = await scrape(client, gw.url)
    gpt = {"model": "gpt", "deployment": "default", "provider": "openai"}
    assert before.value("waypost_deployment_up", **gpt) == 1
    assert before.value("waypost_deployment_up", model="remote") == 0
    assert before.value("waypost_deployment_state", model="remote", state="missing_credentials") == 1
    assert before.value("waypost_deployment_state", model="remote", state="healthy") == 0
    assert after.value("waypost_deployment_up", **gpt) == 0
    assert after.value("waypost_deployment_state", state="cooling_down", **gpt) == 1
    assert after.value("waypost_deployment_state", state="healthy", **gpt) == 0
    # An upstream's 429 is not a refusal by the gateway's own rate limits.
    assert after.value("waypost_rejections_total") == 0


async def test_a_stream_in_flight_is_counted_until_it_ends(upstream: OpenAIUpstream) -> None:
    upstream.enqueue(Reply(text="one two three", chunks=3, chunk_delay_s=0.5))
    config = settings(model("gpt", "openai", upstream.url, "sk-x", public=True))
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        async with client.stream("POST", CHAT, json=chat(stream=True)) as resp:
            chunks = resp.aiter_bytes()
            await anext(chunks)  # the stream has begun
            during = await scrape(client, gw.url)
            async for _ in chunks:  # to its end
                pass
        after = await scrape(client, gw.url)
    assert during.value("waypost_in_flight_requests") == 1 and during.value("waypost_in_flight_streams") == 1
    assert after.value("waypost_in_flight_requests") == 0 and after.value("waypost_in_flight_streams") == 0


def test_a_tally_of_observations_exports_what_observe_would() -> None:
    values = [0.01, 0.05, 0.07, 0.3, 2.0, 2.5, 7.0, 299.0, 301.0, 1000.0]
    spec = DURATION
    expected, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram(spec.name, spec.help, spec.labels, registry=expected, buckets=spec.buckets)
    series = Series(spec, Histogram(spec.name, spec.help, spec.labels, registry=ours, buckets=spec.buckets))
    for value in values:
        reference.labels("/r", "m").observe(value)
        observe_into(series.pending, ("/r", "m"), value, spec.buckets)
    series.flush()
    assert series.pending == {}

    def samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
        return [s for s in parse(generate_latest(registry).decode()).samples if not s[0].endswith("_created")]

    assert samples(ours) == samples(expected)
