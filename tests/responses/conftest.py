"""Responses API tests: a real gateway (``/v1/responses``) in front of the fake OpenAI chat and
Anthropic upstreams on loopback; ``via-openai`` and ``via-anthropic`` are public models priced
$10 / $20 per million input / output tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from tests.control.client import Control, control
from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.harness import ADMIN_EMAIL, model, settings
from waypost.settings import Settings
from waypost.store import tables

PRICES = {"input": 10.0, "output": 20.0}
KINDS = ("openai", "anthropic")


def gateway_settings(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream, **sections: Any
) -> Settings:
    return settings(
        model(
            "via-openai",
            "openai",
            openai_upstream.url,
            openai_upstream.api_key,
            upstream_model="gpt-up",
            prices=PRICES,
            public=True,
        ),
        model(
            "via-anthropic",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            upstream_model="claude-up",
            prices=PRICES,
            public=True,
        ),
        **sections,
    )


@pytest.fixture
async def api(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream, database: dict[str, Any]
) -> AsyncIterator[Control]:
    async with control(gateway_settings(openai_upstream, anthropic_upstream, database=database)) as client:
        yield client


def via(kind: str) -> str:
    return f"via-{kind}"


def upstream_of(kind: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream) -> Any:
    return openai_upstream if kind == "openai" else anthropic_upstream


async def create(api: Control, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return await api.post("/v1/responses", body, **kwargs)


def events(answer: httpx.Response) -> list[dict[str, Any]]:
    """The events of a Responses SSE stream, each checked against its ``event:`` line."""
    out = []
    for frame in answer.text.split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        event = orjson.loads(lines["data"])
        assert event["type"] == lines["event"], frame
        out.append(event)
    return out


def output_text(response: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


async def token_of(api: Control, email: str) -> str:
    """A new API token of ``email``'s user (created as a ``user`` first when not the admin)."""
    if email == ADMIN_EMAIL:
        user_id = (await api.container.store.users.by_email(email)).id
    else:
        user_id = (await api.person(email)).id
    minted = await api.post("/admin/tokens", {"user": user_id, "name": f"t-{email}"})
    assert minted.status_code == 201, minted.text
    return str(minted.json()["token"])


async def stored_count(api: Control) -> int:
    async with api.container.store.engine.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(tables.stored_responses))
    return int(count or 0)
