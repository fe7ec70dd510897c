"""Budgets enforced on the data plane of a real gateway, in front of a fake OpenAI upstream that
bills 100 input and 50 output tokens per call: $0.002 at $10 / $20 per million tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.control.client import Control, control
from tests.dbs import fresh_database
from tests.fakes.base import LoopbackServer, Reply
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, settings

PRICES = {"input": 10.0, "output": 20.0}  # USD per million tokens
CALL = 2000  # micro-dollars: 100 * 10 + 50 * 20
BIG_PRICES = {"input": 100.0, "output": 200.0}  # ten times dearer
ADMIN = {"authorization": f"Bearer {GATEWAY_KEY}"}


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50)
        yield fake


def gateway_settings(upstream: OpenAIUpstream, **sections: Any) -> Any:
    return settings(
        model(
            "cheap", "openai", upstream.url, "sk-x", upstream_model="gpt-4o-mini", prices=PRICES, public=True
        ),
        model("big", "openai", upstream.url, "sk-x", upstream_model="gpt-4o", prices=BIG_PRICES, public=True),
        **sections,
    )


@pytest.fixture
async def api(upstream: OpenAIUpstream, database: dict[str, Any]) -> AsyncIterator[Control]:
    async with control(gateway_settings(upstream, database=database)) as client:
        yield client


async def create(api: Control, **fields: Any) -> dict[str, Any]:
    body = {"name": "b", "scope": "global", "period": "daily", **fields}
    answer = await api.post("/admin/budgets", body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def chat(model: str = "cheap", max_tokens: int = 100) -> dict[str, Any]:
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}


async def spent(api: Control, name: str = "b") -> float:
    answer = await api.get(f"/admin/budgets/{name}")
    return float(answer.json()["usage"]["spent_usd"])


async def test_a_request_the_budget_has_no_room_for_is_refused_naming_the_budget_and_its_reset(
    api: Control,
) -> None:
    await create(api, name="daily-cap", limit_usd="0.003")
    assert (await api.post("/v1/chat/completions", chat())).status_code == 200

    refused = await api.post("/v1/chat/completions", chat())

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
    assert "'daily-cap'" in error["message"] and "$0.003" in error["message"]
    assert "$0.002 spent" in error["message"] and "It resets at" in error["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["x-should-retry"] == "false"
    assert await spent(api, "daily-cap") == 0.002  # the refused request holds and spends nothing


async def test_an_anthropic_caller_gets_the_refusal_in_its_own_format_with_402_when_configured(
    api: Control,
) -> None:
    await create(api, limit_usd="0.001", status=402)

    refused = await api.post("/v1/messages", chat(), headers={"anthropic-version": "2023-06-01"})

    assert refused.status_code == 402
    body = refused.json()
    assert body["type"] == "error" and body["error"]["type"] == "billing_error"
    assert "'b'" in body["error"]["message"]


async def test_a_request_within_the_budget_holds_its_reservation_until_it_settles(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await create(api, limit_usd="1")
    upstream.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50, latency_s=0.5)

    call = asyncio.create_task(api.post("/v1/chat/completions", chat(max_tokens=1000)))
    while upstream.hits == 0:
        await asyncio.sleep(0.01)
    during = (await api.get("/admin/budgets/b")).json()["usage"]
    await call

    assert during["spent_usd"] == 0 and during["reserved_usd"] > 0.02  # 1000 output tokens at $20/M
    after = (await api.get("/admin/budgets/b")).json()["usage"]
    assert (after["spent_usd"], after["reserved_usd"]) == (0.002, 0)


async def test_a_models_new_price_applies_to_the_next_reservation(
    api: Control, upstream: OpenAIUpstream
) -> None:
    """The stage remembers each model's deployment prices while the registry stays the same: a
    model changed through the API (a new registry) is priced again at once."""
    created = await api.post(
        "/admin/models",
        {
            "name": "stored",
            "provider": "openai",
            "base_url": upstream.url + "/v1",
            "api_key": "sk-x",
            "prices": PRICES,
            "public": True,
        },
    )
    assert created.status_code == 201, created.text
    # 1000 output tokens reserved: $0.02 at $20/M fits in $0.05; at ten times the price it does not.
    await create(api, limit_usd="0.05")
    assert (await api.post("/v1/chat/completions", chat("stored", max_tokens=1000))).status_code == 200
    changed = await api.patch("/admin/models/stored", {"prices": BIG_PRICES})
    assert changed.status_code == 200, changed.text

    refused = await api.post("/v1/chat/completions", chat("stored", max_tokens=1000))

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "budget_exceeded"


async def test_a_budget_with_a_fallback_model_serves_the_request_with_it_instead(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await create(
        api, name="big-budget", scope="model", target="big", limit_usd="0.021", fallback_model="cheap"
    )
    first = await api.post("/v1/chat/completions", chat("big"))
    assert first.headers["x-waypost-deployment"] == "big"  # $0.02: no room for another

    second = await api.post("/v1/chat/completions", chat("big"))

    assert second.status_code == 200 and second.headers["x-waypost-deployment"] == "cheap"
    assert upstream.last.json["model"] == "gpt-4o-mini"
    assert await spent(api, "big-budget") == 0.02


async def test_budgets_apply_by_user_group_and_tag(api: Control) -> None:
    alice = await api.person("alice@example.com")
    token = (await api.post("/me/tokens", {"name": "t"}, token=alice.token)).json()["token"]
    assert (await api.post("/admin/groups", {"name": "team-a"})).status_code == 201
    assert (await api.post("/admin/groups/team-a/members", {"user": alice.id})).status_code == 200
    await create(api, name="team", scope="group", target="team-a", limit_usd="0.003")
    await create(api, name="project", scope="tag", target="project-x", limit_usd="1")
    tagged = {"x-waypost-tags": "project-x"}

    assert (await api.post("/v1/chat/completions", chat(), token=token, headers=tagged)).status_code == 200
    assert (await api.post("/v1/chat/completions", chat(), token=token)).status_code == 429  # the group's
    assert (
        await api.post("/v1/chat/completions", chat(), headers=tagged)
    ).status_code == 200  # admin: no group

    assert (await spent(api, "team"), await spent(api, "project")) == (0.002, 0.004)


async def test_a_token_budget_counts_tokens(api: Control) -> None:
    await create(api, limit_tokens=250)  # a call uses 150 tokens and reserves 100 + its prompt

    answers = [await api.post("/v1/chat/completions", chat()) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 429, 429]
    assert "150 tokens spent" in answers[1].json()["error"]["message"]


async def test_a_reset_starts_the_budget_again_from_zero_or_from_the_recorded_usage(api: Control) -> None:
    await create(api, limit_usd="0.003")
    await api.post("/v1/chat/completions", chat())

    zeroed = (await api.post("/admin/budgets/b/reset", {})).json()
    assert zeroed["usage"]["spent_usd"] == 0 and zeroed["counted_from"] is not None
    assert (await api.post("/v1/chat/completions", chat())).status_code == 200

    await api.container.audit.flush()  # the audit log has the request made since the reset
    recounted = (await api.post("/admin/budgets/b/reset", {"keep_usage": True})).json()
    assert recounted["usage"]["spent_usd"] == 0.002


class Receiver(LoopbackServer):
    """A webhook: every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    async def start(self) -> str:
        async def hook(request: web.Request) -> web.Response:
            self.received.append(await request.json())
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        return await self._listen(app)


async def test_an_alert_goes_to_the_log_and_the_webhook_when_spend_crosses_a_threshold(
    api: Control, caplog: pytest.LogCaptureFixture
) -> None:
    async with Receiver() as receiver:
        await create(
            api, limit_usd="0.005", alert_thresholds=[30, 50, 90], alert_webhook=f"{receiver.url}/hook"
        )

        await api.post("/v1/chat/completions", chat())  # $0.002: 40%
        await api.post("/v1/chat/completions", chat())  # $0.004: 80%
        for _ in range(500):
            if len(receiver.received) == 2:
                break
            await asyncio.sleep(0.01)

    assert [a["threshold_percent"] for a in receiver.received] == [30, 50]
    assert receiver.received[1]["budget"] == "b" and receiver.received[1]["spent_usd"] == 0.004
    assert any("reached 50%" in r.getMessage() for r in caplog.records)


async def test_a_restarted_gateway_reloads_the_periods_spend_from_the_audit_log(
    upstream: OpenAIUpstream,
) -> None:
    async with fresh_database(migrated=True) as database:
        config = gateway_settings(upstream, database=database)
        async with control(config) as api:
            await create(api, limit_usd="0.005")
            await api.post("/v1/chat/completions", chat())
            await api.post("/v1/chat/completions", chat())
        async with control(config) as api:
            assert await spent(api) == 0.004
            assert (await api.post("/v1/chat/completions", chat())).status_code == 429


async def test_a_stream_settles_at_the_cost_its_usage_reported(api: Control) -> None:
    await create(api, limit_usd="1")
    body = {**chat(), "stream": True, "stream_options": {"include_usage": True}}

    async with api.http.stream("POST", "/v1/chat/completions", json=body, headers=ADMIN) as response:
        text = (await response.aread()).decode()

    assert response.status_code == 200 and '"cost_usd":0.002' in text.replace(" ", "")
    usage = (await api.get("/admin/budgets/b")).json()["usage"]
    assert (usage["spent_usd"], usage["reserved_usd"]) == (0.002, 0)
