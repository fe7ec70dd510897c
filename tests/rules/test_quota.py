"""Quota conditions: the caller's cost, tokens or requests over a rolling window, counted from its
successful requests in the state backend (this process's memory, or Redis shared by gateways),
with real concurrent requests; a quota block answers 429 with Retry-After and its values."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.control.client import Control, control
from tests.fakes import OpenAIUpstream, Reply
from tests.rules.conftest import add_rule, chat, gateway_settings

MESSAGE = (
    "You used {{ quota.requests.value }} of {{ quota.requests.threshold }} requests in "
    "{{ quota.requests.window }}s; room in {{ quota.requests.next_free }}s."
)


def requests_quota(limit: int, window: int = 3600, **fields: Any) -> dict[str, Any]:
    return {
        "type": "quota",
        "metric": "requests",
        "window": window,
        "operator": "gte",
        "value": limit,
        **fields,
    }


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """The ``state`` section of each backend (Redis under a key prefix of its own)."""
    if request.param == "memory":
        yield {"backend": "memory"}
        return
    need_redis()
    prefix = unique_prefix()
    try:
        yield {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix, "socket_timeout": 2.0}
    finally:
        await forget_prefix(prefix)


async def test_concurrent_requests_are_all_counted_and_the_next_is_refused_with_429(
    upstream: OpenAIUpstream, database: dict[str, Any], state: dict[str, Any]
) -> None:
    # Each answer takes a while, so that the requests are in flight together.
    upstream.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50, latency_s=0.2)
    config = gateway_settings(upstream, database=database, state=state)
    async with control(config) as api:
        await add_rule(
            api, name="hourly", conditions=[requests_quota(20)], action={"type": "block", "message": MESSAGE}
        )
        answers = await asyncio.gather(*(chat(api) for _ in range(20)))
        assert [a.status_code for a in answers] == [200] * 20
        assert upstream.hits == 20

        refused = await chat(api)

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "blocked_by_rule"
    assert error["message"].startswith("You used 20 of 20 requests in 3600s; room in ")
    next_free = int(error["message"].split("room in ")[1].rstrip("s."))
    assert 3500 < next_free <= 3600
    assert int(refused.headers["retry-after"]) == next_free
    assert refused.headers["x-waypost-applied-rules"] == "hourly"
    assert upstream.hits == 20


async def test_two_gateways_sharing_redis_count_one_quota(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    need_redis()
    prefix = unique_prefix()
    upstream.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50, latency_s=0.1)
    state = {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix, "socket_timeout": 2.0}
    config = gateway_settings(upstream, database=database, state=state)
    try:
        async with AsyncExitStack() as stack:
            first = await stack.enter_async_context(control(config))
            second = await stack.enter_async_context(control(config))
            await add_rule(
                first,
                name="shared",
                conditions=[requests_quota(16)],
                action={"type": "block", "message": MESSAGE},
            )
            await second.container.rules.load()  # not waiting for its cache_ttl (tested elsewhere)
            answers = await asyncio.gather(*(chat(gw) for gw in (first, second) for _ in range(8)))
            assert [a.status_code for a in answers] == [200] * 16

            refused = [await chat(first), await chat(second)]
    finally:
        await forget_prefix(prefix)

    assert [r.status_code for r in refused] == [429, 429]
    assert all(r.json()["error"]["message"].startswith("You used 16 of 16") for r in refused)
    assert upstream.hits == 16


async def test_a_cost_quota_counts_what_requests_cost_and_only_successful_ones(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await add_rule(
        api,
        conditions=[{"type": "quota", "metric": "cost", "window": 60, "operator": "gt", "value": 0.003}],
        action={
            "type": "block",
            "message": "${{ quota.cost.value }} spent (over ${{ quota.cost.threshold }}).",
        },
    )
    upstream.enqueue(Reply(status=500, error_message="boom"))
    assert (await chat(api)).status_code == 502  # failed: not counted
    assert (await chat(api)).status_code == 200  # $0.002
    assert (await chat(api)).status_code == 200  # $0.004

    refused = await chat(api)

    assert refused.status_code == 429
    assert refused.json()["error"]["message"] == "$0.004 spent (over $0.003)."
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_a_token_quota_per_model_counts_each_model_apart(api: Control) -> None:
    await add_rule(
        api,
        conditions=[
            {
                "type": "quota",
                "metric": "tokens",
                "window": 600,
                "per": ["model"],
                "operator": "gte",
                "value": 150,
            }
        ],
        action={
            "type": "block",
            "message": "{{ quota.tokens.value }} tokens on {{ request.model }}",
            "status": 403,
        },
    )
    assert (await chat(api, "gpt")).status_code == 200  # 150 tokens on gpt

    on_gpt = await chat(api, "gpt")
    on_mini = await chat(api, "mini")

    assert on_gpt.status_code == 403 and on_gpt.json()["error"]["message"] == "150 tokens on gpt"
    assert "retry-after" not in on_gpt.headers  # only 429 and 503 answers carry it
    assert on_mini.status_code == 200


async def test_each_user_has_a_quota_of_their_own(api: Control) -> None:
    from tests.rules.conftest import user_token

    await add_rule(api, conditions=[requests_quota(1)])
    token = await user_token(api, "carol@example.com")
    assert (await chat(api)).status_code == 200

    mine = await chat(api)
    carols = await api.post(
        "/v1/chat/completions", {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}, token=token
    )

    assert mine.status_code == 429 and carols.status_code == 200


async def test_when_redis_does_not_answer_quota_conditions_hold_for_nobody_and_nothing_hangs(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    state = {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0", "socket_timeout": 0.5}
    async with control(gateway_settings(upstream, database=database, state=state)) as api:
        await add_rule(api, name="q", conditions=[requests_quota(0)])
        await add_rule(api, name="plain", weight=-1, conditions=[
            {"type": "header", "header": "x-team", "operator": "exact", "value": "red"}
        ])  # fmt: skip

        served = await chat(api)
        blocked = await chat(api, headers={"x-team": "red"})

    assert served.status_code == 200  # the quota rule could not be evaluated: it does not hold
    assert blocked.status_code == 403 and blocked.headers["x-waypost-applied-rules"] == "plain"
