"""``GET /metrics`` after real requests through a gateway in front of a loopback OpenAI fake
(docs/operations.md, "Metrics"): each request counted once with its route, model, provider,
status and format; latency, time to first token and the gateway's overhead; tokens and cost;
upstream retries, fallbacks and errors by class; refusals by policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, running, settings
from tests.observability.metrics_scrape import scrape

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
PRICES = {"input": 1.0, "output": 4.0}  # USD per million tokens
CHAT = "/v1/chat/completions"


def chat_body(model_name: str = "gpt", **extra: Any) -> dict[str, Any]:
    return {"model": model_name, "messages": [{"role": "user", "content": "hello"}], **extra}


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = Reply(text="hi there", input_tokens=12, output_tokens=5)
        yield fake


async def test_each_request_is_counted_once_with_its_labels_tokens_and_cost(upstream: OpenAIUpstream) -> None:
    config = settings(model("gpt", "openai", upstream.url, "sk-fake", prices=PRICES, public=True))
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        for _ in range(3):
            assert (await client.post(CHAT, json=chat_body())).status_code == 200
        streamed = await client.post(
            CHAT, json=chat_body(stream=True, stream_options={"include_usage": True})
        )
        assert streamed.status_code == 200
        got = await scrape(client, gw.url)

    labels = {"route": CHAT, "model": "gpt", "provider": "openai", "client_format": "openai"}
    assert got.value("waypost_requests_total", status="200", **labels) == 4
    assert got.value("waypost_request_duration_seconds_count", route=CHAT, model="gpt") == 4
    assert got.value("waypost_time_to_first_token_seconds_count", route=CHAT, model="gpt") == 1
    assert got.value("waypost_overhead_seconds_count", route=CHAT) == 4
    assert got.value("waypost_upstream_attempts_total", model="gpt", provider="openai") == 4
    assert got.value("waypost_tokens_total", model="gpt", type="input") == 4 * 12
    assert got.value("waypost_tokens_total", model="gpt", type="output") == 4 * 5
    assert got.value("waypost_group_tokens_total", group="none", type="output") == 4 * 5
    cost = 4 * (12 * 1.0 + 5 * 4.0) / 1_000_000
    assert got.value("waypost_cost_usd_total", model="gpt", provider="openai") == pytest.approx(cost)
    assert got.value("waypost_group_cost_usd_total", group="none") == pytest.approx(cost)
    assert got.value("waypost_in_flight_requests") == 0
    assert got.value("waypost_in_flight_streams") == 0
    assert got.value("waypost_request_errors_total") == 0


async def test_every_answer_says_the_gateways_own_time_in_x_waypost_overhead_ms(
    upstream: OpenAIUpstream,
) -> None:
    upstream.enqueue(Reply(text="slow", input_tokens=3, output_tokens=1, latency_s=0.3))
    config = settings(model("gpt", "openai", upstream.url, "sk-fake", public=True))
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        slow = await client.post(CHAT, json=chat_body())
        streamed = await client.post(CHAT, json=chat_body(stream=True))
        refused = await client.post(CHAT, json=chat_body("no-such-model"))
        unauthenticated = await client.post(CHAT, json=chat_body(), headers={"authorization": "Bearer wrong"})
    for resp in (slow, streamed, refused, unauthenticated):
        assert float(resp.headers["x-waypost-overhead-ms"]) >= 0, resp.headers
    # The upstream's 300 ms are not the gateway's: the overhead is the total less the attempt.
    assert float(slow.headers["x-waypost-overhead-ms"]) < slow.elapsed.total_seconds() * 1000 - 300


async def test_retries_fallbacks_and_upstream_errors_are_counted_by_class(upstream: OpenAIUpstream) -> None:
    retry = {"max_retries": 1, "initial_delay": 0.01, "max_delay": 0.02}
    config = settings(
        model("gpt", "openai", upstream.url, "sk-fake", public=True, retry=retry, fallbacks=["backup"]),
        model("backup", "openai", upstream.url, "sk-fake", public=True),
    )
    upstream.enqueue(
        Reply(status=503), Reply(status=500), Reply(text="saved", input_tokens=2, output_tokens=1)
    )
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        resp = await client.post(CHAT, json=chat_body())
        assert resp.status_code == 200 and resp.headers["x-waypost-attempts"] == "3"
        got = await scrape(client, gw.url)

    assert got.value("waypost_upstream_attempts_total", model="gpt") == 2
    assert got.value("waypost_upstream_attempts_total", model="backup") == 1
    assert got.value("waypost_upstream_retries_total", model="gpt") == 1
    assert got.value("waypost_upstream_fallbacks_total", model="gpt", fallback="backup") == 1
    assert got.value("waypost_upstream_errors_total", model="gpt", error_class="Overloaded") == 1
    assert got.value("waypost_upstream_errors_total", model="gpt", error_class="UpstreamError") == 1
    assert got.value("waypost_requests_total", model="backup", status="200") == 1


async def test_errors_and_refusals_by_policy_are_counted_by_class_and_reason(
    upstream: OpenAIUpstream,
) -> None:
    limit = {"name": "two", "scope": "model", "target": "gpt", "windows": [{"per": "minute", "requests": 2}]}
    rule = {
        "name": "no-red",
        "conditions": [{"type": "header", "header": "X-Team", "operator": "exact", "value": "red"}],
        "action": {"type": "block", "message": "paused"},
    }
    config = settings(
        model("gpt", "openai", upstream.url, "sk-fake", public=True),
        rate_limits={"limits": [limit]},
        rules={"rules": [rule]},
    )
    async with running(config) as gw, httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client:
        statuses = [(await client.post(CHAT, json=chat_body())).status_code for _ in range(3)]
        blocked = await client.post(CHAT, json=chat_body(), headers={"x-team": "red"})
        missing = await client.post(CHAT, json=chat_body("no-such-model"))
        got = await scrape(client, gw.url)

    assert statuses == [200, 200, 429] and blocked.status_code == 403 and missing.status_code == 404
    assert got.value("waypost_rejections_total", reason="rate_limit", model="gpt") == 1
    assert got.value("waypost_rejections_total", reason="rule", model="gpt") == 1
    assert got.value("waypost_request_errors_total", error_class="RateLimited") == 1
    assert got.value("waypost_request_errors_total", error_class="RuleBlocked") == 1
    # A name that is no model entry is not a label: the request counts under "none".
    assert got.value("waypost_request_errors_total", model="none", error_class="ModelNotFound") == 1
    assert "no-such-model" not in got.text
    assert got.value("waypost_requests_total", status="429") == 1
