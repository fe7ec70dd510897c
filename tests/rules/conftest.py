"""Rules tests: a real gateway in front of real loopback upstreams (an OpenAI-compatible one serving
``gpt`` and ``mini``, an Anthropic one serving ``claude``), rules managed through /admin/rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.control.client import Control, control
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.harness import model, settings
from waypost.settings import Settings
from waypost.store import tables

PRICES = {"input": 10.0, "output": 20.0}  # USD per million: 100 in + 50 out = $0.002
CALL_USD = 0.002


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50)
        yield fake


@pytest.fixture
async def claude() -> AsyncIterator[AnthropicUpstream]:
    async with AnthropicUpstream() as fake:
        fake.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50)
        yield fake


def gateway_settings(
    upstream: OpenAIUpstream, claude: AnthropicUpstream | None = None, **sections: Any
) -> Settings:
    models = [
        model("gpt", "openai", upstream.url, "sk-x", upstream_model="gpt-4o", prices=PRICES, public=True),
        model(
            "mini", "openai", upstream.url, "sk-x", upstream_model="gpt-4o-mini", prices=PRICES, public=True
        ),
        # Not public: only those it is assigned to may use it.
        model("secret", "openai", upstream.url, "sk-x", upstream_model="o3", prices=PRICES),
    ]
    if claude is not None:
        models.append(
            model(
                "claude",
                "anthropic",
                claude.url,
                "sk-ant-x",
                upstream_model="claude-x",
                prices=PRICES,
                public=True,
            )
        )
    return settings(*models, **sections)


@pytest.fixture
async def api(
    upstream: OpenAIUpstream, claude: AnthropicUpstream, database: dict[str, Any]
) -> AsyncIterator[Control]:
    async with control(gateway_settings(upstream, claude, database=database)) as client:
        yield client


async def add_rule(api: Control, **rule: Any) -> dict[str, Any]:
    body = {"name": "r", "action": {"type": "block"}, **rule}
    answer = await api.post("/admin/rules", body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def chat_body(model: str = "gpt", content: str = "hello", **params: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **params}


async def chat(
    api: Control,
    model: str = "gpt",
    content: str = "hello",
    *,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> httpx.Response:
    return await api.post("/v1/chat/completions", chat_body(model, content, **params), headers=headers)


async def audit_row(api: Control, client_request_id: str) -> dict[str, Any]:
    """The audit row of the request sent with ``X-Request-ID: client_request_id``, once written."""
    container = api.container
    log = tables.request_log
    for _ in range(500):
        await container.audit.flush()
        async with container.store.engine.connect() as conn:
            found = (
                (await conn.execute(sa.select(log).where(log.c.client_request_id == client_request_id)))
                .mappings()
                .all()
            )
        if found:
            return dict(found[0])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no audit row for {client_request_id}")


async def user_token(api: Control, email: str) -> str:
    """An API token of a new user (role ``user``: public models only)."""
    person = await api.person(email)
    minted = await api.post("/admin/tokens", {"user": person.id, "name": "t"})
    assert minted.status_code == 201, minted.text
    return str(minted.json()["token"])
