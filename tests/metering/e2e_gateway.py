"""One real gateway in front of the five fake upstreams (OpenAI, Anthropic, Bedrock, Gemini,
Ollama), each model with prices of its own, for the end-to-end metering tests: what the caller
is told and what the audit log stores (request_log, request_attempts, request_labels).

The expected costs are computed here, independently of ``metering.pricing``: each usage component
times its price per million tokens in exact decimals, rounded half-even once.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import aiohttp
import sqlalchemy as sa

from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream
from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.ollama_upstream import OllamaUpstream
from tests.harness import GATEWAY_KEY, Running, model, running, settings
from waypost.core.types import Usage
from waypost.store import tables

GEMINI_KEY = "AIzaSy-metering-e2e-key"
FAST_RETRY = {"max_retries": 1, "initial_delay": 0.01, "max_delay": 0.02}

# USD per million tokens; odd figures so that rounding matters.
PRICES: dict[str, dict[str, float]] = {
    "openai": {"input": 1.1, "output": 4.4, "cache_read": 0.275},
    "anthropic": {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75, "cache_write_1h": 6},
    "bedrock": {
        "input": 3.3,
        "output": 16.5,
        "cache_read": 0.33,
        "cache_write": 4.125,
        "cache_write_1h": 6.6,
    },
    "gemini": {"input": 0.3, "output": 2.5, "cache_read": 0.075},
    "ollama": {"input": 0.25, "output": 0.5, "cache_read": 0.05},
    "retrying": {"input": 2, "output": 8},
    "primary": {"input": 5, "output": 20},
    "backup": {"input": 0.8, "output": 4, "cache_read": 0.08, "cache_write": 1},
    "emb": {"input": 0.13, "output": 0},
    "slow": {"input": 2.5, "output": 10},
    "reports": {"input": 0.4, "output": 1.6},
}
PROVIDERS = ("openai", "anthropic", "bedrock", "gemini", "ollama")
GROUPS = ("eng", "ml-platform")


@dataclass
class Gateway:
    running: Running
    fakes: dict[str, Any]

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def container(self) -> Any:
        return self.running.container


@asynccontextmanager
async def metering_gateway() -> AsyncIterator[Gateway]:
    """The gateway, its fakes, and the administrator in the groups ``GROUPS``."""
    async with AsyncExitStack() as stack:
        fakes: dict[str, Any] = {
            "openai": OpenAIUpstream(api_key="sk-metering-0123456789"),
            "anthropic": AnthropicUpstream(api_key="sk-ant-metering-0123456789"),
            "bedrock": BedrockUpstream(),
            "gemini": GeminiUpstream(api_key=GEMINI_KEY),
            "ollama": OllamaUpstream(),
        }
        for fake in fakes.values():
            await stack.enter_async_context(fake)
        oai, ant = fakes["openai"], fakes["anthropic"]
        aws = {
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "endpoint_url": fakes["bedrock"].url,
        }
        config = settings(
            model("openai", "openai", oai.url, oai.api_key, upstream_model="o4-mini", prices=PRICES["openai"]),
            model(
                "anthropic",
                "anthropic",
                ant.url,
                ant.api_key,
                upstream_model="claude-sonnet-4-5",
                prices=PRICES["anthropic"],
            ),
            model(
                "bedrock",
                "bedrock",
                upstream_model="anthropic.claude-sonnet-4-20250514-v1:0",
                aws=aws,
                prices=PRICES["bedrock"],
            ),
            model(
                "gemini",
                "gemini",
                fakes["gemini"].url,
                GEMINI_KEY,
                upstream_model="gemini-2.5-flash",
                prices=PRICES["gemini"],
            ),
            model("ollama", "ollama", fakes["ollama"].url, upstream_model="qwen3:8b", prices=PRICES["ollama"]),
            model(
                "retrying",
                "openai",
                oai.url,
                oai.api_key,
                upstream_model="gpt-retry",
                prices=PRICES["retrying"],
                retry=FAST_RETRY,
            ),
            model(
                "primary",
                "openai",
                oai.url,
                oai.api_key,
                upstream_model="gpt-primary",
                prices=PRICES["primary"],
                fallbacks=["backup"],
            ),
            model("backup", "anthropic", ant.url, ant.api_key, upstream_model="claude-backup", prices=PRICES["backup"]),
            model("emb", "openai", oai.url, oai.api_key, upstream_model="text-embedding-3-large", prices=PRICES["emb"]),
            model("slow", "openai", oai.url, oai.api_key, upstream_model="gpt-slow", prices=PRICES["slow"]),
            model("slow-claude", "anthropic", ant.url, ant.api_key, upstream_model="claude-slow", prices=PRICES["slow"]),
            model("reports", "openai", oai.url, oai.api_key, upstream_model="gpt-reports", prices=PRICES["reports"]),
            audit={"flush_interval": 0.05},
        )  # fmt: skip
        gateway = Gateway(await stack.enter_async_context(running(config)), fakes)
        await _join_groups(gateway)
        yield gateway


async def _join_groups(gateway: Gateway) -> None:
    """Put the administrator in ``GROUPS``, before any data-plane call (the control API does not
    let an administrator change their own memberships, so this is done in the store)."""
    store = gateway.container.store
    admin = await store.users.by_email("admin@localhost")
    for name in GROUPS:
        group = await store.groups.create(name)
        await store.groups.add_member(group.id, admin.id)


# -- calls --------------------------------------------------------------------------------------


def new_id() -> str:
    return "e2e-" + uuid.uuid4().hex


def openai_headers(rid: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {GATEWAY_KEY}", "x-request-id": rid, **extra}


def anthropic_headers(rid: str, **extra: str) -> dict[str, str]:
    return {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01", "x-request-id": rid, **extra}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


async def post(url: str, body: Any, headers: dict[str, str]) -> Answer:
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as resp:
        raw = await resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, raw)


def sse(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, data) of each SSE frame, ``[DONE]`` left as text."""
    out: list[tuple[str | None, Any]] = []
    for frame in raw.decode().split("\n\n"):
        name, data = None, None
        for line in frame.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


def caller_cost(answer: Answer, client: str, stream: bool) -> Any:
    """The ``cost_usd`` of the usage object the caller reads: the body's, the OpenAI stream's
    usage chunk's, or the last ``message_delta``'s."""
    if not stream:
        return answer.json()["usage"]["cost_usd"]
    events = sse(answer.raw)
    if client == "openai":
        usage = [d["usage"] for _, d in events if d != "[DONE]" and d.get("usage")]
    else:
        usage = [d["usage"] for e, d in events if e == "message_delta"]
    assert usage, answer.raw
    return usage[-1].get("cost_usd")


# -- the audit log ------------------------------------------------------------------------------


@dataclass
class Rows:
    request: dict[str, Any]
    attempts: list[dict[str, Any]]
    labels: set[tuple[str, str]]  # (kind, value)


async def select(
    gateway: Gateway, table: sa.Table, rid: str, *, by_client_id: bool = False
) -> list[dict[str, Any]]:
    async with gateway.container.store.engine.connect() as conn:
        column = table.c.client_request_id if by_client_id else table.c.request_id
        result = await conn.execute(sa.select(table).where(column == rid))
        return [dict(row._mapping) for row in result]


async def rows_of(gateway: Gateway, rid: str) -> Rows:
    """The request's rows, once written: the row is recorded when the request's ``after`` runs,
    which may be just after the caller has its answer; the writer is flushed until it is there."""
    for _ in range(500):
        await gateway.container.audit.flush()
        found = await select(gateway, tables.request_log, rid, by_client_id=True)
        if found:
            key = found[0]["request_id"]  # the gateway's own id: the caller's is client_request_id
            attempts = sorted(await select(gateway, tables.request_attempts, key), key=lambda a: a["attempt"])
            labels = {(r["kind"], r["value"]) for r in await select(gateway, tables.request_labels, key)}
            return Rows(found[0], attempts, labels)
        await asyncio.sleep(0.01)
    raise AssertionError(f"no audit row for {rid}")


async def no_row(gateway: Gateway, rid: str, then: str) -> bool:
    """Whether ``rid`` has no row, judged once the row of ``then`` (a later request) is written."""
    await rows_of(gateway, then)
    return not await select(gateway, tables.request_log, rid) and not await select(
        gateway, tables.request_attempts, rid
    )


# -- the expected cost --------------------------------------------------------------------------

M = Decimal(1)


def _d(price: float | None) -> Decimal:
    return Decimal(str(price))


def components(usage: Usage, prices: dict[str, float]) -> dict[str, Decimal]:
    """Each component's exact micro-dollars (tokens x USD per million): unset cache prices are
    the input price, an unset 1-hour write price the write price."""
    read = usage.cache_read_tokens
    write = usage.cache_write_tokens
    write_1h = usage.cache_write_1h_tokens
    inp = prices["input"]
    p_read = prices.get("cache_read", inp)
    p_write = prices.get("cache_write", inp)
    p_write_1h = prices.get("cache_write_1h", p_write)
    counts = {
        "input": (usage.input_tokens - read - write, inp),
        "cache_read": (read, p_read),
        "cache_write": (write - write_1h, p_write),
        "cache_write_1h": (write_1h, p_write_1h),
        "output": (usage.output_tokens, prices["output"]),
    }
    return {k: Decimal(n) * _d(p) for k, (n, p) in counts.items() if n}


def half_even(value: Decimal) -> int:
    return int(value.quantize(M, rounding=ROUND_HALF_EVEN))


def expected_micros(usage: Usage, prices: dict[str, float]) -> int:
    """The exact cost in micro-dollars, rounded half-even once."""
    return half_even(sum(components(usage, prices).values(), Decimal(0)))


def expected_breakdown(usage: Usage, prices: dict[str, float]) -> dict[str, int]:
    return {k: half_even(v) for k, v in components(usage, prices).items()}


def token_columns(usage: Usage) -> dict[str, int]:
    """The audit columns of a canonical usage: input is the uncached part."""
    return {
        "input_tokens": usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def columns_of(row: dict[str, Any]) -> dict[str, int]:
    return {k: row[k] for k in token_columns(Usage())}


def usage_of(row: dict[str, Any]) -> Usage:
    """The canonical usage (without the 1-hour split) an audit row records."""
    return Usage(
        row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"],
        row["output_tokens"],
        cache_read_tokens=row["cache_read_tokens"],
        cache_write_tokens=row["cache_write_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
    )


def usd(micros: int) -> Decimal:
    return Decimal(micros) / 1_000_000
