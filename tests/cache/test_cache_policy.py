"""A hit is audited as nothing used upstream, with what it saved; and it still passes every
policy before the cache: budgets refuse it like any request."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from tests.cache.conftest import CALL_MICROS, chat
from tests.control.client import Control
from tests.fakes.openai_upstream import OpenAIUpstream
from waypost.store import tables


async def row_for(api: Control, rid: str) -> dict[str, Any]:
    for _ in range(500):
        await api.container.audit.flush()
        async with api.container.store.engine.connect() as conn:
            log = tables.request_log
            found = (
                (await conn.execute(sa.select(log).where(log.c.client_request_id == rid))).mappings().all()
            )
        if found:
            return dict(found[0])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no audit row for {rid}")


async def ask(api: Control, rid: str, **headers: str) -> None:
    answer = await api.post("/v1/chat/completions", chat(), headers={"x-request-id": rid, **headers})
    assert answer.status_code == 200, answer.text


async def test_a_hit_is_audited_with_no_upstream_cost_and_what_it_saved(api: Control) -> None:
    await ask(api, "first-call")
    await ask(api, "second-call")
    await ask(api, "third-call", **{"x-waypost-cache": "bypass"})

    miss, hit, bypass = [await row_for(api, rid) for rid in ("first-call", "second-call", "third-call")]

    assert (miss["cache_status"], miss["cost_micros"], miss["saved_micros"]) == ("miss", CALL_MICROS, 0)
    assert (miss["input_tokens"], miss["output_tokens"], miss["provider"]) == (100, 50, "openai")
    assert (hit["cache_status"], hit["cost_micros"], hit["saved_micros"]) == ("hit", 0, CALL_MICROS)
    assert (hit["input_tokens"], hit["output_tokens"], hit["attempts"]) == (0, 0, 0)
    assert (hit["status"], hit["requested_model"], hit["provider"]) == (200, "gpt", None)
    assert hit["cost_breakdown"]["source"] == "cache" and hit["priced"] is True
    assert (bypass["cache_status"], bypass["cost_micros"]) == ("bypass", CALL_MICROS)


async def test_a_budget_with_no_room_refuses_a_request_that_would_hit(
    api: Control, upstream: OpenAIUpstream
) -> None:
    # Room for one call's reservation; once it is spent, no more room, cached or not.
    created = await api.post(
        "/admin/budgets", {"name": "cap", "scope": "global", "period": "daily", "limit_usd": "0.003"}
    )
    assert created.status_code == 201, created.text
    assert (await api.post("/v1/chat/completions", chat())).headers["x-cache-status"] == "MISS"

    refused = await api.post("/v1/chat/completions", chat())

    assert refused.status_code == 429 and "'cap'" in refused.json()["error"]["message"]
    assert refused.headers["x-cache-status"] == "BYPASS"  # refused before the cache was asked
    assert upstream.hits == 1


async def test_a_hit_within_a_budget_spends_nothing_of_it(api: Control) -> None:
    created = await api.post(
        "/admin/budgets", {"name": "roomy", "scope": "global", "period": "daily", "limit_usd": "1"}
    )
    assert created.status_code == 201, created.text
    await api.post("/v1/chat/completions", chat())
    for _ in range(3):
        assert (await api.post("/v1/chat/completions", chat())).headers["x-cache-status"] == "HIT"

    usage = (await api.get("/admin/budgets/roomy")).json()["usage"]

    assert (usage["spent_usd"], usage["reserved_usd"], usage["spent_tokens"]) == (
        CALL_MICROS / 1_000_000,
        0,
        150,
    )


async def test_a_streamed_hit_is_not_cut_off_by_a_budget_it_does_not_spend(
    api: Control, upstream: OpenAIUpstream
) -> None:
    # After the miss (150 tokens), room for a small reservation (20 output tokens) but not for
    # the stored usage: a hit watched as if it spent would be cut off mid-stream.
    tight = {
        "name": "tight",
        "scope": "global",
        "period": "daily",
        "limit_tokens": 200,
        "cut_off_streams": True,
    }
    created = await api.post("/admin/budgets", tight)
    assert created.status_code == 201, created.text
    assert (await api.post("/v1/chat/completions", chat(max_tokens=20))).headers["x-cache-status"] == "MISS"

    hit = await api.post(
        "/v1/chat/completions", chat(max_tokens=20, stream=True, stream_options={"include_usage": True})
    )

    assert hit.status_code == 200 and hit.headers["x-cache-status"] == "HIT"
    assert "error" not in hit.text and hit.text.rstrip().endswith("data: [DONE]")
    assert "The answer" in hit.text
    assert upstream.hits == 1
