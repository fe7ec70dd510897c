"""Redis configured but not answering (docs/policy.md, "Rate limits"): what happens is what
``rate_limits.when_state_unavailable`` says (503, or counting in the process), never a hang.
The outage is real: the gateway reaches Redis through a loopback proxy that is then severed, or a
listener that accepts connections and never answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.control.client import Control, control
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import model, settings
from tests.rate_limits.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.tcp_proxy import TcpProxy, tcp_proxy

LIMIT = {"name": "rpm-3", "scope": "model", "target": "gpt", "windows": [{"per": "minute", "requests": 3}]}
BODY = {"model": "gpt", "max_tokens": 20, "messages": [{"role": "user", "content": "hello"}]}
ANTHROPIC = {"anthropic-version": "2023-06-01"}
BOUND = 30.0  # seconds: a request that takes longer hangs (each Redis call is bounded by 0.2 s)


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = Reply(text="ok", input_tokens=5, output_tokens=2)
        yield fake


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    need_redis()
    parts = urlsplit(REDIS_URL)
    async with tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 6379) as running:
        yield running


def config(upstream: OpenAIUpstream, redis_port: int, prefix: str, mode: str) -> Any:
    db = urlsplit(REDIS_URL).path or "/0"
    return settings(
        model("gpt", "openai", upstream.url, "sk-x", upstream_model="gpt-4o-mini", public=True),
        state={
            "backend": "redis",
            "redis_url": f"redis://127.0.0.1:{redis_port}{db}",
            "key_prefix": prefix,
            "socket_timeout": 0.2,
        },
        rate_limits={"limits": [LIMIT], "when_state_unavailable": mode, "breaker_seconds": 0.2},
        budgets={"enabled": False},
    )


async def call(api: Control, path: str = "/v1/chat/completions", **kwargs: Any) -> httpx.Response:
    return await asyncio.wait_for(api.post(path, BODY, **kwargs), BOUND)


async def test_fail_closed_answers_503_in_the_callers_format_until_redis_is_back(
    upstream: OpenAIUpstream, proxy: TcpProxy
) -> None:
    prefix = unique_prefix()
    try:
        async with control(config(upstream, proxy.port, prefix, "fail_closed")) as api:
            assert (await call(api)).status_code == 200
            proxy.sever()

            openai = await call(api)
            anthropic = await call(api, "/v1/messages", headers=ANTHROPIC)

            assert openai.status_code == 503
            assert "Rate limits cannot be checked" in openai.json()["error"]["message"]
            assert anthropic.status_code == 503
            assert anthropic.json()["error"]["type"] == "overloaded_error"
            assert upstream.hits == 1

            proxy.restore()
            for _ in range(200):  # the breaker lets a request try Redis again after 0.2 s
                answer = await call(api)
                if answer.status_code != 503:
                    break
                await asyncio.sleep(0.02)
            assert answer.status_code == 200
            assert answer.headers["x-ratelimit-remaining-requests"] == "1"  # Redis kept the count
    finally:
        await forget_prefix(prefix)


async def test_falling_back_counts_each_process_on_its_own_while_redis_is_down(
    upstream: OpenAIUpstream, proxy: TcpProxy
) -> None:
    prefix = unique_prefix()
    try:
        async with control(config(upstream, proxy.port, prefix, "local")) as api:
            proxy.sever()

            statuses = [(await call(api)).status_code for _ in range(5)]
            refused = await call(api)

        assert statuses == [200, 200, 200, 429, 429]
        assert refused.status_code == 429 and refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert upstream.hits == 3
    finally:
        await forget_prefix(prefix)


async def test_a_redis_that_accepts_and_never_answers_costs_a_timeout_not_a_hang(
    upstream: OpenAIUpstream,
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with control(config(upstream, port, unique_prefix(), "local")) as api:
            statuses = [(await call(api)).status_code for _ in range(4)]
            usage = (await api.get("/admin/limits/rpm-3")).json()["usage"]
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await server.wait_closed()

    assert statuses == [200, 200, 200, 429]  # counted in the process meanwhile
    assert usage is None  # the admin API shows the definition, not counts it cannot read
    assert held  # the gateway did try Redis


async def test_a_check_whose_answer_is_lost_does_not_hold_its_concurrency_slot(
    upstream: OpenAIUpstream, proxy: TcpProxy
) -> None:
    """Redis ran the check (the slot is taken there) but its answer never came back: the request
    goes on counted in the process, and the slot in Redis is released once Redis answers again,
    not held for ``slot_ttl`` (which would refuse every request of a limit of one meanwhile)."""
    prefix = unique_prefix()
    one_at_a_time = {"name": "one", "scope": "model", "target": "gpt", "concurrency": 1}
    doc = config(upstream, proxy.port, prefix, "local")
    doc = doc.model_copy(
        update={
            "rate_limits": doc.rate_limits.model_validate(
                {**doc.rate_limits.model_dump(), "limits": [one_at_a_time], "slot_ttl": 600}
            )
        }
    )
    try:
        async with control(doc) as api:
            assert (await call(api)).status_code == 200  # Redis answers: the slot is taken and freed
            # Its settlement done, the pooled connection is idle: the next check is sent on it
            # (a new connection would wait for its handshake's answer and send nothing).
            await asyncio.sleep(0.3)
            proxy.mute()
            assert (await call(api)).status_code == 200  # counted in the process instead
            proxy.restore()
            await asyncio.sleep(1.0)  # past the breaker (0.2 s): requests go to Redis again
            answers = [await call(api) for _ in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
    finally:
        await forget_prefix(prefix)
