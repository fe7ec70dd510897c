"""Identical requests arriving while the first is being answered wait for its answer: one
upstream call for all of them (in one gateway process)."""

from __future__ import annotations

import asyncio

import httpx

from tests.cache.conftest import chat
from tests.control.client import Control
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream

SLOW = Reply(text="The answer is 42.", input_tokens=100, output_tokens=50, latency_s=1.0)


async def first_then_others(
    api: Control, upstream: OpenAIUpstream, first: dict[str, object], others: list[dict[str, object]]
) -> list[httpx.Response]:
    """Send ``first``; once the upstream has it, send ``others`` at once; every answer."""
    leader = asyncio.create_task(api.post("/v1/chat/completions", first))
    while upstream.hits == 0:
        await asyncio.sleep(0.005)
    followers = [asyncio.create_task(api.post("/v1/chat/completions", body)) for body in others]
    return [await leader, *await asyncio.gather(*followers)]


async def test_concurrent_identical_misses_make_one_upstream_call(
    api: Control, upstream: OpenAIUpstream
) -> None:
    upstream.default_reply = SLOW

    answers = await first_then_others(api, upstream, chat(), [chat() for _ in range(9)])

    assert upstream.hits == 1
    assert [a.status_code for a in answers] == [200] * 10
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS"] + ["HIT"] * 9
    assert {a.json()["choices"][0]["message"]["content"] for a in answers} == {"The answer is 42."}
    assert api.container.cache.counts.coalesced == 9


async def test_a_stream_being_answered_serves_the_identical_requests_waiting_for_it(
    api: Control, upstream: OpenAIUpstream
) -> None:
    upstream.default_reply = SLOW

    answers = await first_then_others(api, upstream, chat(stream=True), [chat(), chat(stream=True)])

    assert upstream.hits == 1
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "HIT"]
    assert answers[1].json()["choices"][0]["message"]["content"] == "The answer is 42."
    assert "The answer" in answers[2].text


async def test_when_the_first_fails_one_waiting_request_goes_upstream_for_the_others(
    api: Control, upstream: OpenAIUpstream
) -> None:
    upstream.enqueue(Reply(status=500, error_message="boom", latency_s=1.0), SLOW)

    answers = await first_then_others(api, upstream, chat(), [chat() for _ in range(4)])

    assert answers[0].status_code >= 500  # the first caller gets its own failure
    assert [a.status_code for a in answers[1:]] == [200] * 4
    assert upstream.hits == 2  # one more call, for all four
    assert sorted(a.headers["x-cache-status"] for a in answers[1:]) == ["HIT", "HIT", "HIT", "MISS"]


async def test_different_tenants_are_not_coalesced(api: Control, upstream: OpenAIUpstream) -> None:
    from tests.cache.conftest import api_token

    upstream.default_reply = SLOW
    alice = await api_token(api, "alice@example.com")
    leader = asyncio.create_task(api.post("/v1/chat/completions", chat()))
    while upstream.hits == 0:
        await asyncio.sleep(0.005)
    other = await api.post("/v1/chat/completions", chat(), token=alice)
    await leader

    assert other.headers["x-cache-status"] == "MISS" and upstream.hits == 2
