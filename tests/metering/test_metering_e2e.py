"""Every token and cent recorded, end to end (docs/metering.md): through a real gateway to the five
fake upstreams, from both client formats, streamed and not, with a prompt cache (reads, 5-minute
and 1-hour writes where the provider has them) and reasoning and without. The audit row's token
columns are the provider's figures normalised (input = the uncached part), its cost is usage x the
model's prices (computed here in exact decimals), and the caller is told the same cost. Also: an
abandoned stream is billed for what was produced, and a retried or fallen-back request has one
row per upstream attempt and costs what the serving attempt cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes import Reply
from tests.metering.e2e_gateway import (
    PRICES,
    PROVIDERS,
    Gateway,
    anthropic_headers,
    caller_cost,
    columns_of,
    expected_breakdown,
    expected_micros,
    metering_gateway,
    new_id,
    openai_headers,
    post,
    rows_of,
    token_columns,
    usage_of,
    usd,
)
from waypost.core.types import Usage

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class Case:
    """What one upstream reports in its own convention (tests/fakes/base.py Reply), and the
    canonical usage that is."""

    reply: Reply
    canonical: Usage


CASES: dict[tuple[str, str], Case] = {
    ("openai", "cached"): Case(
        Reply(text="Done.", input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=256),
        Usage(2006, 300, cache_read_tokens=1920, reasoning_tokens=256),
    ),
    ("openai", "plain"): Case(Reply(text="Done.", input_tokens=25, output_tokens=13), Usage(25, 13)),
    ("anthropic", "cached"): Case(
        Reply(
            text="Done.",
            input_tokens=41,
            output_tokens=300,
            cache_read_tokens=4000,
            cache_write_tokens=1500,
            cache_write_1h_tokens=1000,
            reasoning_tokens=120,
        ),
        Usage(5541, 300, 4000, 1500, reasoning_tokens=120, cache_write_1h_tokens=1000),
    ),
    ("anthropic", "plain"): Case(Reply(text="Done.", input_tokens=25, output_tokens=12), Usage(25, 12)),
    ("bedrock", "cached"): Case(
        Reply(
            text="Done.",
            input_tokens=43,
            output_tokens=301,
            cache_read_tokens=4000,
            cache_write_tokens=1500,
            cache_write_1h_tokens=1000,
        ),
        Usage(5543, 301, 4000, 1500, cache_write_1h_tokens=1000),
    ),
    ("bedrock", "plain"): Case(Reply(text="Done.", input_tokens=27, output_tokens=11), Usage(27, 11)),
    ("gemini", "cached"): Case(
        # Gemini counts thoughts apart: candidatesTokenCount 180 plus 121 thoughts is 301 output tokens.
        Reply(text="Done.", input_tokens=5541, output_tokens=180, cache_read_tokens=4000, reasoning_tokens=121),
        Usage(5541, 301, cache_read_tokens=4000, reasoning_tokens=121),
    ),
    ("gemini", "plain"): Case(Reply(text="Done.", input_tokens=33, output_tokens=7), Usage(33, 7)),
    ("ollama", "cached"): Case(
        Reply(text="Done.", input_tokens=900, output_tokens=40, cache_read_tokens=850),
        Usage(900, 40, cache_read_tokens=850),
    ),
    # 26 x $0.25 + 12 x $0.50 = 12.5 micro-dollars: half-even rounding gives 12.
    ("ollama", "plain"): Case(Reply(text="Done.", input_tokens=26, output_tokens=12), Usage(26, 12)),
}  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw() -> AsyncIterator[Gateway]:
    async with metering_gateway() as gateway:
        yield gateway


async def chat(gw: Gateway, client: str, model: str, *, stream: bool, rid: str, **extra: Any) -> Any:
    """A chat request in the ``client`` format (openai: /v1/chat/completions, anthropic: /v1/messages)."""
    messages = [{"role": "user", "content": "Hello there?"}]
    if client == "openai":
        body: dict[str, Any] = {"model": model, "messages": messages, **extra}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return await post(gw.url + "/v1/chat/completions", body, openai_headers(rid))
    body = {"model": model, "max_tokens": 512, "messages": messages, "stream": stream, **extra}
    return await post(gw.url + "/v1/messages", body, anthropic_headers(rid))


# -- (1) costs equal usage x price, for every provider ------------------------------------------


async def test_the_half_even_case_is_one() -> None:
    assert expected_micros(CASES["ollama", "plain"].canonical, PRICES["ollama"]) == 12


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", ["body", "stream"])
@pytest.mark.parametrize("cache", ["cached", "plain"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_row_and_the_caller_have_usage_times_price(
    gw: Gateway, provider: str, cache: str, mode: str, client: str
) -> None:
    case = CASES[provider, cache]
    stream = mode == "stream"
    prices = PRICES[provider]
    gw.fakes[provider].enqueue(case.reply)
    rid = new_id()
    answer = await chat(gw, client, provider, stream=stream, rid=rid)
    assert answer.status == 200, answer.raw
    micros = expected_micros(case.canonical, prices)
    assert micros > 0

    rows = await rows_of(gw, rid)
    row = rows.request
    assert columns_of(row) == token_columns(case.canonical)
    assert row["cost_micros"] == micros
    breakdown = dict(row["cost_breakdown"])
    assert breakdown.pop("source") == "model config"
    assert breakdown == expected_breakdown(case.canonical, prices)
    assert (row["status"], row["error_class"], row["priced"], row["usage_estimated"]) == (
        200,
        None,
        True,
        False,
    )
    assert (row["stream"], row["attempts"], row["model"], row["provider"]) == (stream, 1, provider, provider)
    assert row["endpoint"] == ("chat" if client == "openai" else "messages")
    assert row["client_format"] == client
    assert row["user_email"] == "admin@localhost" and row["token_id"] is not None
    assert (row["ttft_ms"] is not None) == stream
    [attempt] = rows.attempts
    assert (attempt["status"], attempt["error_class"], attempt["cost_micros"]) == (200, None, micros)
    assert columns_of(attempt) == columns_of(row)

    # The caller is told the same cost, in the usage object (and the header when not streamed).
    assert Decimal(str(caller_cost(answer, client, stream))) == usd(micros)
    if not stream:
        assert Decimal(answer.headers["x-waypost-cost-usd"]) == usd(micros)


async def test_a_stream_without_include_usage_is_metered_all_the_same(gw: Gateway) -> None:
    case = CASES["openai", "cached"]
    gw.fakes["openai"].enqueue(case.reply)
    rid = new_id()
    body = {"model": "openai", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    answer = await post(gw.url + "/v1/chat/completions", body, openai_headers(rid))
    assert answer.status == 200
    assert b'"usage":{' not in answer.raw.replace(b" ", b"")  # the caller did not ask for it
    row = (await rows_of(gw, rid)).request
    assert columns_of(row) == token_columns(case.canonical)
    assert row["cost_micros"] == expected_micros(case.canonical, PRICES["openai"])


# -- (2) an abandoned stream is billed for what was produced ------------------------------------


@pytest.mark.parametrize("client", ["openai", "anthropic"])
# An Anthropic upstream's message_start says output_tokens: 1 (as the real API does): a stream cut
# before message_delta is billed for what it said, not for that opening figure.
@pytest.mark.parametrize("model", ["slow", "slow-claude"])
async def test_an_abandoned_stream_is_billed_for_what_was_produced(
    gw: Gateway, model: str, client: str
) -> None:
    fake = gw.fakes["openai" if model == "slow" else "anthropic"]
    words = " ".join(f"word{i}" for i in range(200))
    # The upstream would take 10 s to finish; the caller leaves after a few events. The usage
    # (given at the end, or partly at the start by Anthropic) never comes: the gateway counts.
    fake.enqueue(Reply(text=words, chunks=200, chunk_delay_s=0.05, input_tokens=None, output_tokens=None))
    rid = new_id()
    messages = [{"role": "user", "content": "Write a long answer."}]
    if client == "openai":
        path, headers = "/v1/chat/completions", openai_headers(rid)
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": True}
    else:
        path, headers = "/v1/messages", anthropic_headers(rid)
        body = {"model": model, "max_tokens": 4096, "messages": messages, "stream": True}
    read = b""
    async with aiohttp.ClientSession() as http, http.post(gw.url + path, json=body, headers=headers) as resp:
        assert resp.status == 200
        async for chunk in resp.content.iter_any():
            read += chunk
            if read.count(b"word") >= 5:
                break
        resp.connection.transport.abort()  # type: ignore[union-attr]  # the client is gone
    assert b"word199" not in read

    rows = await rows_of(gw, rid)
    row = rows.request
    assert row["status"] == 499
    # At least a token for each word the caller was sent (the upstream produced more).
    said = read.count(b"word")
    assert row["output_tokens"] >= said, (row["output_tokens"], said)
    assert row["input_tokens"] > 0
    assert row["usage_estimated"] is True
    assert row["cost_micros"] > 0
    assert row["cost_micros"] == expected_micros(usage_of(row), PRICES["slow"])
    [attempt] = rows.attempts
    assert attempt["cost_micros"] == row["cost_micros"]
    assert columns_of(attempt) == columns_of(row)


# -- (3) retries and fallbacks: one row per attempt, the serving one's cost ----------------------


@pytest.mark.parametrize("mode", ["body", "stream"])
async def test_a_retried_request_has_a_row_per_attempt_and_costs_the_serving_one(
    gw: Gateway, mode: str
) -> None:
    stream = mode == "stream"
    gw.fakes["openai"].enqueue(
        Reply(status=500, error_message="the upstream fell over"),
        Reply(text="Second time lucky.", input_tokens=1000, output_tokens=77),
    )
    rid = new_id()
    answer = await chat(gw, "openai", "retrying", stream=stream, rid=rid)
    assert answer.status == 200, answer.raw
    assert answer.headers["x-waypost-attempts"] == "2"
    micros = expected_micros(Usage(1000, 77), PRICES["retrying"])
    assert Decimal(str(caller_cost(answer, "openai", stream))) == usd(micros)

    rows = await rows_of(gw, rid)
    assert rows.request["attempts"] == 2
    assert (rows.request["status"], rows.request["cost_micros"]) == (200, micros)
    failed, served = rows.attempts
    assert (failed["attempt"], failed["status"], failed["cost_micros"]) == (1, 500, 0)
    assert failed["error_class"] == "UpstreamError"
    assert columns_of(failed) == token_columns(Usage())
    assert (served["attempt"], served["status"], served["error_class"]) == (2, 200, None)
    assert served["cost_micros"] == micros == sum(a["cost_micros"] for a in rows.attempts)
    assert columns_of(served) == token_columns(Usage(1000, 77))
    assert failed["model"] == served["model"] == "retrying"


@pytest.mark.parametrize("mode", ["body", "stream"])
async def test_a_fallback_costs_what_the_second_model_cost(gw: Gateway, mode: str) -> None:
    stream = mode == "stream"
    gw.fakes["openai"].enqueue(Reply(status=503, error_message="overloaded"))
    gw.fakes["anthropic"].enqueue(
        Reply(text="From the backup.", input_tokens=70, output_tokens=30, cache_read_tokens=500)
    )
    rid = new_id()
    answer = await chat(gw, "openai", "primary", stream=stream, rid=rid)
    assert answer.status == 200, answer.raw
    canonical = Usage(570, 30, cache_read_tokens=500)
    micros = expected_micros(canonical, PRICES["backup"])
    assert Decimal(str(caller_cost(answer, "openai", stream))) == usd(micros)

    rows = await rows_of(gw, rid)
    row = rows.request
    assert (row["requested_model"], row["model"], row["provider"]) == ("primary", "backup", "anthropic")
    assert (row["cost_micros"], row["attempts"]) == (micros, 2)
    assert columns_of(row) == token_columns(canonical)
    failed, served = rows.attempts
    assert (failed["model"], failed["provider"], failed["status"], failed["cost_micros"]) == (
        "primary",
        "openai",
        503,
        0,
    )
    assert failed["error_class"] is not None
    assert (served["model"], served["provider"], served["status"], served["cost_micros"]) == (
        "backup",
        "anthropic",
        200,
        micros,
    )


# An Anthropic upstream's message_start says output_tokens: 1 (as the real API does): a stream cut
# before message_delta is billed for what it said, not for that opening figure.
@pytest.mark.parametrize("model", ["slow", "slow-claude"])
async def test_a_stream_broken_after_its_start_is_billed_and_marked(gw: Gateway, model: str) -> None:
    """After the first byte there is no retry: the row has the error, and what was produced."""
    fake = gw.fakes["openai" if model == "slow" else "anthropic"]
    words = " ".join(f"word{i}" for i in range(40))
    fake.enqueue(Reply(text=words, chunks=40, reset_after_chunks=12, input_tokens=None, output_tokens=None))
    rid = new_id()
    answer = await chat(gw, "openai", model, stream=True, rid=rid)
    assert answer.status == 200
    said = answer.raw.count(b"word")
    assert 0 < said < 40
    rows = await rows_of(gw, rid)
    row = rows.request
    assert row["status"] >= 500 and row["error_class"] is not None
    assert row["output_tokens"] >= said and row["cost_micros"] > 0
    assert row["cost_micros"] == expected_micros(usage_of(row), PRICES["slow"])
    assert len(rows.attempts) == 1 and rows.attempts[0]["cost_micros"] == row["cost_micros"]


async def test_concurrent_requests_each_get_their_own_row(gw: Gateway) -> None:
    gw.fakes["ollama"].enqueue(Reply(text="ok", input_tokens=10, output_tokens=5, repeat=20))
    ids = [new_id() for _ in range(20)]
    answers = await asyncio.gather(
        *(chat(gw, "openai", "ollama", stream=i % 2 == 0, rid=rid) for i, rid in enumerate(ids))
    )
    assert all(a.status == 200 for a in answers)
    micros = expected_micros(Usage(10, 5), PRICES["ollama"])
    for rid in ids:
        rows = await rows_of(gw, rid)
        assert rows.request["cost_micros"] == micros and len(rows.attempts) == 1
