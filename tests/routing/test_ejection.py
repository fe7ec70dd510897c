"""Outlier ejection and 429 cool-downs: a deployment failing N times in a row leaves its model's
rotation for a time that grows with each ejection, never more than a share of the model's
deployments at once; a 429 with Retry-After takes it out that long. The clock of deployment
health is the test's, moved by hand; the upstreams are real fakes on loopback."""

from __future__ import annotations

from typing import Any

from tests.api.client import post
from tests.fakes import OpenAIUpstream, Reply
from tests.harness import running, settings
from tests.routing.pools import Clock, chat, get_json, pooled, states
from waypost.routing.health import DeploymentHealth
from waypost.settings import EjectionSettings, Settings
from waypost.state.health import MemoryHealthStore

EJECTION = {"consecutive_failures": 3, "base_seconds": 30, "max_seconds": 300}


def ordered_pool(database: dict, *fakes: OpenAIUpstream) -> Settings:
    """Settings of a model "pool" on ``fakes``, tried in order, ejected after three failures."""
    return settings(
        pooled("pool", *fakes, strategy="ordered"), routing={"ejection": EJECTION}, database=database
    )


def with_clock(gw: Any, clock: Clock) -> None:
    """Deployment health of ``gw`` on ``clock`` (as configured otherwise)."""
    ejection: EjectionSettings = gw.container.settings.routing.ejection
    gw.container.router.health = DeploymentHealth(ejection, MemoryHealthStore(), clock=clock)


async def test_a_deployment_failing_n_times_in_a_row_is_ejected_then_returns(database: dict) -> None:
    clock = Clock()
    async with OpenAIUpstream() as bad, OpenAIUpstream() as good:
        bad.default_reply = Reply(status=500)
        config = ordered_pool(database, bad, good)
        async with running(config) as gw:
            with_clock(gw, clock)
            for _ in range(3):  # each tries the bad one first, then is served by the good one
                assert (await chat(gw.url)).status == 200
            assert bad.hits == 3
            assert states((await get_json(gw.url + "/health"))[1]) == {"d0": "ejected", "d1": "healthy"}
            assert (await chat(gw.url)).status == 200
            assert bad.hits == 3  # out of rotation: not even tried
            clock.now += 31
            assert states((await get_json(gw.url + "/health"))[1])["d0"] == "healthy"
            bad.default_reply = Reply()  # it has recovered
            assert (await chat(gw.url)).status == 200
            assert (bad.hits, good.hits) == (4, 4)


async def test_each_ejection_lasts_longer_than_the_one_before(database: dict) -> None:
    clock = Clock()
    async with OpenAIUpstream() as bad, OpenAIUpstream() as good:
        bad.default_reply = Reply(status=503)
        config = ordered_pool(database, bad, good)
        async with running(config) as gw:
            with_clock(gw, clock)
            for _ in range(3):
                await chat(gw.url)
            clock.now += 31  # the first ejection (30 s) is over
            for _ in range(3):
                await chat(gw.url)
            body = (await get_json(gw.url + "/health"))[1]
            d0 = next(d for d in body["deployments"] if d["deployment"] == "d0")
            assert (d0["state"], d0["ejections"], d0["until"]) == ("ejected", 2, clock.now + 60)
            clock.now += 31
            assert states((await get_json(gw.url + "/health"))[1])["d0"] == "ejected"  # 60 s this time


async def test_no_more_than_the_allowed_share_of_deployments_is_ejected(database: dict) -> None:
    async with OpenAIUpstream() as a, OpenAIUpstream() as b:
        a.default_reply = b.default_reply = Reply(status=500)
        config = ordered_pool(database, a, b)
        async with running(config) as gw:
            for _ in range(6):
                assert (await chat(gw.url)).status == 502
            seen = states((await get_json(gw.url + "/health"))[1])
    assert sorted(seen.values()) == ["ejected", "healthy"]  # half of two, never both


async def test_a_single_deployment_model_is_never_ejected(database: dict) -> None:
    async with OpenAIUpstream() as only:
        only.default_reply = Reply(status=500)
        config = settings(pooled("pool", only), routing={"ejection": EJECTION}, database=database)
        async with running(config) as gw:
            for _ in range(5):
                assert (await chat(gw.url)).status == 502
            assert states((await get_json(gw.url + "/health"))[1]) == {"d0": "healthy"}
    assert only.hits == 5


async def test_a_429_with_retry_after_cools_the_deployment_down_that_long(database: dict) -> None:
    clock = Clock()
    async with OpenAIUpstream() as limited, OpenAIUpstream() as other:
        limited.enqueue(Reply(status=429, retry_after="20"))
        config = settings(pooled("pool", limited, other, strategy="ordered"), database=database)
        async with running(config) as gw:
            with_clock(gw, clock)
            assert (await chat(gw.url)).status == 200  # the other one answered at once
            body = (await get_json(gw.url + "/health"))[1]
            d0 = next(d for d in body["deployments"] if d["deployment"] == "d0")
            assert (d0["state"], d0["until"]) == ("cooling_down", clock.now + 20)
            assert (await chat(gw.url)).status == 200
            assert limited.hits == 1
            clock.now += 21
            assert (await chat(gw.url)).status == 200
    assert (limited.hits, other.hits) == (2, 2)


async def test_client_errors_do_not_count_towards_an_ejection(database: dict) -> None:
    async with OpenAIUpstream() as a, OpenAIUpstream() as b:
        a.default_reply = Reply(status=400)
        config = ordered_pool(database, a, b)
        async with running(config) as gw:
            for _ in range(5):
                assert (await chat(gw.url)).status == 400
            assert states((await get_json(gw.url + "/health"))[1]) == {"d0": "healthy", "d1": "healthy"}


async def test_streams_that_break_after_their_first_chunk_count_towards_an_ejection(database: dict) -> None:
    """A deployment whose streams start and then break (the connection reset mid-answer) is as
    unhealthy as one that fails at once: three in a row take it out of rotation."""
    clock = Clock()
    async with OpenAIUpstream() as bad, OpenAIUpstream() as good:
        bad.default_reply = Reply(text="one two three four five six", reset_after_chunks=2)
        config = ordered_pool(database, bad, good)
        async with running(config) as gw:
            with_clock(gw, clock)
            body = {"model": "pool", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            broken = [await post(gw.url + "/v1/chat/completions", body) for _ in range(3)]
            assert all(b"error" in r.body for r in broken)  # each began, then ended with an error event
            assert states((await get_json(gw.url + "/health"))[1]) == {"d0": "ejected", "d1": "healthy"}
            whole = await post(gw.url + "/v1/chat/completions", body)
            assert b"[DONE]" in whole.body and (bad.hits, good.hits) == (3, 1)
