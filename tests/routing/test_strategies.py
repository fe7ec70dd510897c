"""How a model with several deployments picks one per request: by weight, fewest in flight,
lowest latency, or in order. Each deployment is a real fake upstream on loopback."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import running, settings
from tests.routing.pools import chat, pooled


@pytest.mark.parametrize(("weights", "shares"), [([3, 1], (6, 2)), (None, (4, 4))])
async def test_weighted_sends_each_deployment_its_share_of_requests(
    database: dict, weights: list[int] | None, shares: tuple[int, int]
) -> None:
    """Weighted is the default strategy; equal weights (the default weight) alternate."""
    async with OpenAIUpstream() as a, OpenAIUpstream() as b:
        config = settings(pooled("pool", a, b, weights=weights), database=database)
        async with running(config) as gw:
            for _ in range(8):
                assert (await chat(gw.url)).status == 200
    assert (a.hits, b.hits) == shares


async def test_least_busy_avoids_the_deployment_with_a_request_in_flight(database: dict) -> None:
    async with OpenAIUpstream() as a, OpenAIUpstream() as b:
        a.enqueue(Reply(stall_after_chunks=0))  # holds the first request until the fake stops
        config = settings(pooled("pool", a, b, strategy="least-busy"), database=database)
        async with running(config) as gw:
            held = asyncio.create_task(chat(gw.url))
            while a.hits == 0:  # the first request reached its deployment (ties: the first listed)
                await asyncio.sleep(0.01)
            for _ in range(3):
                assert (await chat(gw.url)).status == 200
            held.cancel()
    assert (a.hits, b.hits) == (1, 3)


async def test_lowest_latency_prefers_the_faster_deployment_once_both_are_measured(database: dict) -> None:
    async with OpenAIUpstream() as slow, OpenAIUpstream() as fast:
        slow.default_reply = Reply(latency_s=0.3)
        config = settings(pooled("pool", slow, fast, strategy="lowest-latency"), database=database)
        async with running(config) as gw:
            for _ in range(6):
                assert (await chat(gw.url)).status == 200
    # Each is measured once (the unmeasured go first), then every request goes to the faster.
    assert (slow.hits, fast.hits) == (1, 5)


async def test_ordered_uses_the_first_and_the_next_only_when_it_fails(database: dict) -> None:
    async with OpenAIUpstream() as first, OpenAIUpstream() as spare:
        first.enqueue(Reply(status=500))
        config = settings(pooled("pool", first, spare, strategy="ordered"), database=database)
        async with running(config) as gw:
            for _ in range(3):
                assert (await chat(gw.url)).status == 200
    assert (first.hits, spare.hits) == (3, 1)


async def test_lowest_latency_puts_a_failing_deployment_after_the_measured_ones(database: dict) -> None:
    """A deployment whose attempts fail is never measured: it does not stay first for that."""
    async with OpenAIUpstream() as bad, OpenAIUpstream() as good:
        bad.default_reply = Reply(status=500)
        config = settings(
            pooled("pool", bad, good, strategy="lowest-latency"),
            routing={"ejection": {"enabled": False}},
            database=database,
        )
        async with running(config) as gw:
            for _ in range(4):
                assert (await chat(gw.url)).status == 200
    assert (bad.hits, good.hits) == (1, 4)
