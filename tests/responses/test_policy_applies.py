"""Everything the chat endpoints have applies to ``/v1/responses`` unchanged: metering (the audit
row and the cost in the usage), budgets, rate limits, rules and the response cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.responses.conftest import create, events, gateway_settings, via
from tests.rules.conftest import add_rule, audit_row

BILLED = Reply(text="ok", input_tokens=100, output_tokens=50, repeat=10)  # $0.002 a call


def turn(**fields: Any) -> dict[str, Any]:
    return {"model": via("openai"), "input": "hello", "max_output_tokens": 100, **fields}


@pytest.fixture
async def billed(openai_upstream: OpenAIUpstream) -> OpenAIUpstream:
    openai_upstream.enqueue(BILLED)
    return openai_upstream


@pytest.fixture
async def limited(
    billed: OpenAIUpstream, anthropic_upstream: AnthropicUpstream, database: dict[str, Any]
) -> AsyncIterator[Control]:
    """One request a minute for everyone."""
    window = {"name": "everyone", "scope": "default", "windows": [{"per": "minute", "requests": 1}]}
    config = gateway_settings(billed, anthropic_upstream, database=database, rate_limits={"limits": [window]})
    async with control(config) as client:
        yield client


@pytest.fixture
async def cached(
    billed: OpenAIUpstream, anthropic_upstream: AnthropicUpstream, database: dict[str, Any]
) -> AsyncIterator[Control]:
    config = gateway_settings(billed, anthropic_upstream, database=database, cache={"enabled": True})
    async with control(config) as client:
        yield client


async def test_a_response_is_metered_with_its_cost_in_the_usage_and_its_audit_row(
    api: Control, billed: OpenAIUpstream
) -> None:
    answer = await create(api, turn(), headers={"x-request-id": "metered-1"})
    streamed = await create(api, turn(stream=True), headers={"x-request-id": "metered-2"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["cost_usd"] == 0.002
    assert answer.headers["x-waypost-cost-usd"] == "0.002000"
    assert events(streamed)[-1]["response"]["usage"]["cost_usd"] == 0.002
    for rid, stream in (("metered-1", False), ("metered-2", True)):
        row = await audit_row(api, rid)
        assert (row["endpoint"], row["client_format"], row["stream"]) == (
            "responses",
            "openai_responses",
            stream,
        )
        assert (row["input_tokens"], row["output_tokens"], row["cost_micros"]) == (100, 50, 2000)
        assert (row["requested_model"], row["status"]) == (via("openai"), 200)


async def test_a_budget_without_room_refuses_a_response(api: Control, billed: OpenAIUpstream) -> None:
    made = await api.post(
        "/admin/budgets", {"name": "cap", "scope": "global", "period": "daily", "limit_usd": "0.003"}
    )
    assert made.status_code == 201, made.text
    assert (await create(api, turn())).status_code == 200

    refused = await create(api, turn())

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert "'cap'" in error["message"]
    assert billed.hits == 1


async def test_a_rate_limit_counts_responses(limited: Control, billed: OpenAIUpstream) -> None:
    first = await create(limited, turn())
    second = await create(limited, turn())

    assert first.status_code == 200, first.text
    assert (first.headers["x-ratelimit-limit-requests"], first.headers["x-ratelimit-remaining-requests"]) == (
        "1",
        "0",
    )
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert int(second.headers["retry-after"]) > 0
    assert billed.hits == 1


async def test_a_rule_blocks_a_response(api: Control, billed: OpenAIUpstream) -> None:
    await add_rule(
        api,
        name="no-red",
        conditions=[{"type": "header", "header": "x-team", "operator": "exact", "value": "red"}],
        action={"type": "block", "message": "Team red is paused.", "status": 451},
    )

    refused = await create(api, turn(), headers={"x-team": "red"})
    served = await create(api, turn(), headers={"x-team": "blue"})

    assert refused.status_code == 451
    assert refused.json()["error"]["message"] == "Team red is paused."
    assert refused.headers["x-waypost-applied-rules"] == "no-red"
    assert served.status_code == 200
    assert billed.hits == 1


async def test_a_repeated_response_is_served_from_the_cache(cached: Control, billed: OpenAIUpstream) -> None:
    first = await create(cached, turn(temperature=0))
    second = await create(cached, turn(temperature=0))
    streamed = await create(cached, turn(temperature=0, stream=True))

    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert streamed.headers["x-cache-status"] == "HIT"
    assert billed.hits == 1
    assert second.json()["output"][0]["content"][0]["text"] == "ok"
    assert second.json()["id"] != first.json()["id"]  # a new response, kept on its own
    assert (await cached.get(f"/v1/responses/{second.json()['id']}")).status_code == 200
    assert events(streamed)[-1]["type"] == "response.completed"
