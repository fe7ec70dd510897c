"""The retry budget: retries in flight at once are at most a share of the requests being routed
(or a minimum), so an outage is not multiplied by the retries it causes."""

from __future__ import annotations

import asyncio

from tests.api.client import Response
from tests.fakes import OpenAIUpstream, Reply
from tests.harness import running, settings
from tests.routing.pools import chat, pooled

RETRIES = {"max_retries": 2, "initial_delay": 0.0, "max_delay": 0.0}
NO_EJECTION = {"enabled": False}


async def test_without_budget_a_failing_request_makes_one_attempt(database: dict) -> None:
    async with OpenAIUpstream() as a, OpenAIUpstream() as b:
        a.default_reply = b.default_reply = Reply(status=500)
        routing = {"ejection": NO_EJECTION, "retry_budget": {"ratio": 0, "min_retries": 0}}
        config = settings(pooled("pool", a, b, retry=RETRIES), routing=routing, database=database)
        async with running(config) as gw:
            assert (await chat(gw.url)).status == 502
    assert a.hits + b.hits == 1


async def test_within_budget_a_failing_request_retries_then_falls_over(database: dict) -> None:
    async with OpenAIUpstream() as a, OpenAIUpstream() as b:
        a.default_reply = b.default_reply = Reply(status=500)
        config = settings(
            pooled("pool", a, b, retry=RETRIES, strategy="ordered"),
            routing={"ejection": NO_EJECTION},
            database=database,
        )
        async with running(config) as gw:
            assert (await chat(gw.url)).status == 502
    assert (a.hits, b.hits) == (3, 3)


async def test_during_an_outage_concurrent_retries_are_capped(database: dict) -> None:
    """Ten requests fail on the first deployment; their retry is the second one, which holds
    every call until it stops. The budget (ratio 0, at least two) lets two retries be in flight:
    the eight other requests get their error without a retry."""
    async with OpenAIUpstream() as down, OpenAIUpstream() as stuck:
        down.default_reply = Reply(status=500)
        stuck.default_reply = Reply(stall_after_chunks=0)
        routing = {"ejection": NO_EJECTION, "retry_budget": {"ratio": 0, "min_retries": 2}}
        config = settings(pooled("pool", down, stuck, strategy="ordered"), routing=routing, database=database)
        async with running(config) as gw:
            calls = [asyncio.create_task(chat(gw.url)) for _ in range(10)]
            done: set[asyncio.Task[Response]] = set()
            while len(done) < 8:
                finished, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
                done |= finished
                calls = [c for c in calls if c not in finished]
            while stuck.hits < 2:  # the two retries the budget let through reach the upstream
                await asyncio.sleep(0.01)
            assert all(c.result().status == 502 for c in done)
            assert (down.hits, stuck.hits, len(calls)) == (10, 2, 2)
            for call in calls:
                call.cancel()
