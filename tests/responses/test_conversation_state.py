"""Conversation state: a response kept with ``store`` (the default) reads back for its user
(``GET``, ``input_items``), is deleted, expires, and is continued with ``previous_response_id``,
whose upstream request then carries the earlier exchange; other users find none of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.responses import ResponseItemList

from tests.control.client import Control, control
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.harness import ADMIN_EMAIL, GATEWAY_KEY
from tests.responses.conftest import (
    KINDS,
    create,
    events,
    gateway_settings,
    output_text,
    stored_count,
    token_of,
    upstream_of,
    via,
)
from waypost.api.responses_state import purge_expired

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}


def turn(kind: str, text: str, **fields: Any) -> dict[str, Any]:
    return {"model": via(kind), "input": text, **fields}


async def test_a_kept_response_reads_back_as_it_was_answered(api: Control) -> None:
    made = await create(api, turn("openai", "hello"))

    got = await api.get(f"/v1/responses/{made.json()['id']}")

    assert got.status_code == 200, got.text
    assert got.json() == made.json()


async def test_a_streamed_response_is_kept_as_its_final_event_says(api: Control) -> None:
    made = await create(api, turn("anthropic", "hello", stream=True))
    final = events(made)[-1]["response"]

    got = await api.get(f"/v1/responses/{final['id']}")

    assert got.status_code == 200, got.text
    assert got.json() == final and output_text(final) == "echo: hello"


async def test_a_streamed_response_is_found_as_soon_as_its_final_event_arrives(api: Control) -> None:
    body = turn("anthropic", "hello", stream=True)
    async with api.http.stream("POST", "/v1/responses", json=body, headers=AUTH) as answer:
        async for line in answer.aiter_lines():
            if line.startswith("data:") and '"response.completed"' in line:
                final = json.loads(line[5:])["response"]
                # A client acts on the final event at once (the Agents SDK's next turn).
                read = await api.get(f"/v1/responses/{final['id']}")
                break

    assert read.status_code == 200 and read.json()["id"] == final["id"]


async def test_input_items_list_the_requests_items_newest_first(api: Control) -> None:
    body = {
        "model": via("openai"),
        "input": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "an answer"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
    }
    made = (await create(api, body)).json()

    listed = await api.get(f"/v1/responses/{made['id']}/input_items")

    assert listed.status_code == 200, listed.text
    page = listed.json()
    ResponseItemList.model_validate(page, strict=True)
    assert [item["content"][0]["text"] for item in page["data"]] == ["second", "an answer", "first"]
    assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
    assert page["has_more"] is False


async def test_input_items_come_a_page_at_a_time(api: Control) -> None:
    texts = [f"item {n}" for n in range(5)]
    made = (
        await create(api, {"model": via("openai"), "input": [{"role": "user", "content": t} for t in texts]})
    ).json()
    path = f"/v1/responses/{made['id']}/input_items"

    first = (await api.get(path, params={"order": "asc", "limit": 2})).json()
    second = (await api.get(path, params={"order": "asc", "limit": 2, "after": first["last_id"]})).json()
    last = (await api.get(path, params={"order": "asc", "limit": 2, "after": second["last_id"]})).json()

    assert [i["content"][0]["text"] for p in (first, second, last) for i in p["data"]] == texts
    assert (first["has_more"], second["has_more"], last["has_more"]) == (True, True, False)


async def test_a_limit_out_of_range_is_refused_naming_it(api: Control) -> None:
    made = (await create(api, turn("openai", "hello"))).json()

    answer = await api.get(f"/v1/responses/{made['id']}/input_items", params={"limit": 101})

    assert answer.status_code == 400 and answer.json()["error"]["param"] == "limit"


async def test_a_deleted_response_is_gone(api: Control) -> None:
    made = (await create(api, turn("openai", "hello"))).json()

    deleted = await api.delete(f"/v1/responses/{made['id']}")
    again = await api.get(f"/v1/responses/{made['id']}")

    assert deleted.status_code == 200
    assert deleted.json() == {"id": made["id"], "object": "response", "deleted": True}
    assert again.status_code == 404
    assert again.json()["error"]["message"] == f"Response with id '{made['id']}' not found."


@pytest.mark.parametrize("kind", KINDS)
async def test_previous_response_id_continues_the_conversation(
    api: Control, kind: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    upstream = upstream_of(kind, openai_upstream, anthropic_upstream)
    upstream.enqueue(Reply(text="Hello Ada."))
    first = (await create(api, turn(kind, "My name is Ada.", instructions="Be kind."))).json()

    second = await create(api, turn(kind, "What is my name?", previous_response_id=first["id"]))

    assert second.status_code == 200, second.text
    assert second.json()["previous_response_id"] == first["id"]
    sent = upstream.last.json["messages"]
    said = [
        (m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]) for m in sent
    ]
    assert said[-3:] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    # Earlier instructions are not carried over (as OpenAI's API does).
    assert "Be kind." not in str(upstream.last.json)


async def test_a_function_call_continues_with_its_output(
    api: Control, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(tool_calls=[("call_1", "get_weather", {"city": "Paris"})]))
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    first = (await create(api, turn("openai", "weather?", tools=tools))).json()

    output = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
    second = await create(
        api, {"model": via("openai"), "input": [output], "tools": tools, "previous_response_id": first["id"]}
    )

    assert second.status_code == 200, second.text
    sent = openai_upstream.last.json["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == "call_1"
    assert (sent[-1]["role"], sent[-1]["tool_call_id"], sent[-1]["content"]) == ("tool", "call_1", "sunny")


async def test_input_items_of_a_continued_response_include_the_earlier_exchange(api: Control) -> None:
    first = (await create(api, turn("openai", "one"))).json()
    second = (await create(api, turn("openai", "two", previous_response_id=first["id"]))).json()

    listed = (await api.get(f"/v1/responses/{second['id']}/input_items", params={"order": "asc"})).json()

    assert [item["role"] for item in listed["data"]] == ["user", "assistant", "user"]
    assert listed["data"][1]["id"] == first["output"][0]["id"]


async def test_another_users_response_cannot_be_continued_read_or_deleted(
    api: Control, openai_upstream: OpenAIUpstream
) -> None:
    made = (await create(api, turn("openai", "secret plans"))).json()
    other = await token_of(api, "eve@example.org")
    calls = openai_upstream.hits

    continued = await create(api, turn("openai", "go on", previous_response_id=made["id"]), token=other)
    read = await api.get(f"/v1/responses/{made['id']}", token=other)
    items = await api.get(f"/v1/responses/{made['id']}/input_items", token=other)
    deleted = await api.delete(f"/v1/responses/{made['id']}", token=other)

    assert continued.status_code == 400
    error = continued.json()["error"]
    assert error["message"] == f"Previous response with id '{made['id']}' not found."
    assert (error["param"], error["code"]) == ("previous_response_id", "previous_response_not_found")
    assert (read.status_code, items.status_code, deleted.status_code) == (404, 404, 404)
    assert openai_upstream.hits == calls  # refused before any upstream call
    assert (await api.get(f"/v1/responses/{made['id']}")).status_code == 200


async def test_another_token_of_the_same_user_reads_the_response(api: Control) -> None:
    made = (await create(api, turn("openai", "hello"))).json()
    second_token = await token_of(api, ADMIN_EMAIL)

    read = await api.get(f"/v1/responses/{made['id']}", token=second_token)

    assert read.status_code == 200 and read.json()["id"] == made["id"]


async def test_an_unknown_previous_response_id_is_refused(api: Control) -> None:
    answer = await create(api, turn("openai", "hi", previous_response_id="resp_unknown"))

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "previous_response_not_found"


async def test_store_false_keeps_nothing(api: Control) -> None:
    made = await create(api, turn("openai", "hello", store=False))
    streamed = await create(api, turn("openai", "hello", store=False, stream=True))

    assert made.status_code == 200 and made.json()["store"] is False
    assert streamed.status_code == 200
    assert (await api.get(f"/v1/responses/{made.json()['id']}")).status_code == 404
    assert await stored_count(api) == 0


async def test_nothing_is_authenticated_without_a_key(api: Control) -> None:
    made = (await create(api, turn("openai", "hello"))).json()

    answer = await api.get(f"/v1/responses/{made['id']}", token=None)

    assert answer.status_code == 401


@pytest.fixture
async def briefly(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream, database: dict[str, Any]
) -> AsyncIterator[Control]:
    """A gateway that keeps responses for 10 ms and at most 2 KiB of each."""
    config = gateway_settings(
        openai_upstream,
        anthropic_upstream,
        database=database,
        responses={"retention": 0.01, "max_stored_bytes": 2048},
    )
    async with control(config) as client:
        yield client


async def test_an_expired_response_is_gone_and_purged(briefly: Control) -> None:
    made = (await create(briefly, turn("openai", "hello"))).json()
    await asyncio.sleep(0.05)  # past its 10 ms

    read = await briefly.get(f"/v1/responses/{made['id']}")
    continued = await create(briefly, turn("openai", "more", previous_response_id=made["id"]))
    purged = await purge_expired(briefly.container.store.responses)

    assert read.status_code == 404
    assert continued.status_code == 400
    assert purged >= 1 and await stored_count(briefly) == 0


async def test_a_response_too_big_to_keep_is_answered_but_not_kept(briefly: Control) -> None:
    made = await create(briefly, turn("openai", "word " * 1000))

    assert made.status_code == 200 and output_text(made.json()).startswith("echo: word")
    assert await stored_count(briefly) == 0


async def test_a_storage_failure_does_not_lose_the_answer(api: Control) -> None:
    async with api.container.store.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE stored_responses")

    made = await create(api, turn("openai", "hello"))
    streamed = await create(api, turn("anthropic", "hello", stream=True))

    assert made.status_code == 200 and output_text(made.json()) == "echo: hello"
    assert events(streamed)[-1]["type"] == "response.completed"


async def test_stored_bodies_are_masked_but_reasoning_ciphertext_is_kept(
    api: Control, anthropic_upstream: AnthropicUpstream
) -> None:
    signature = "c2lnsk-" + "A" * 40  # shaped like a key inside, as ciphertext may be
    anthropic_upstream.enqueue(Reply(text="ok", thinking=("Thinking it over.", signature)))
    key = "sk-proj-" + "x" * 30
    body = {
        "model": via("anthropic"),
        "instructions": f"The key is {key}.",
        "input": "hi",
    }
    made = (await create(api, body)).json()

    stored = await api.stored_text()
    kept = (await api.get(f"/v1/responses/{made['id']}")).json()

    assert key not in stored and "The key is ***." in stored
    [reasoning] = [item for item in kept["output"] if item["type"] == "reasoning"]
    assert reasoning["encrypted_content"].endswith(signature)


async def test_a_conversation_whose_beginning_is_gone_continues_without_it_and_says_so(
    api: Control, openai_upstream: OpenAIUpstream
) -> None:
    first = (await create(api, turn("openai", "one"))).json()
    second = (await create(api, turn("openai", "two", previous_response_id=first["id"]))).json()
    assert (await api.delete(f"/v1/responses/{first['id']}")).status_code == 200

    third = await create(api, turn("openai", "three", previous_response_id=second["id"]))

    assert third.status_code == 200, third.text
    assert (
        f"the conversation before response '{second['id']}' is no longer stored"
        in (third.headers["x-waypost-dropped"])
    )
    said = [m["content"] for m in openai_upstream.last.json["messages"]]
    assert said == ["two", "echo: two", "three"]


async def test_a_stored_conversation_is_unreadable_while_the_database_fails(api: Control) -> None:
    made = (await create(api, turn("openai", "hello"))).json()
    async with api.container.store.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE stored_responses")

    continued = await create(api, turn("openai", "more", previous_response_id=made["id"]))
    read = await api.get(f"/v1/responses/{made['id']}")

    assert (continued.status_code, read.status_code) == (503, 503)
    assert (
        continued.json()["error"]["message"]
        == "Stored responses cannot be read right now; try again shortly."
    )


@pytest.fixture
async def configured(
    request: pytest.FixtureRequest,
    openai_upstream: OpenAIUpstream,
    anthropic_upstream: AnthropicUpstream,
    database: dict[str, Any],
) -> AsyncIterator[Control]:
    """A gateway with the ``responses`` section the test's parameter gives."""
    config = gateway_settings(openai_upstream, anthropic_upstream, database=database, responses=request.param)
    async with control(config) as client:
        yield client


@pytest.mark.parametrize("configured", [{"max_chain": 2}], indirect=True)
async def test_a_conversation_longer_than_max_chain_is_refused_naming_it(configured: Control) -> None:
    previous = None
    for n in range(3):
        made = await create(configured, turn("openai", f"turn {n}", previous_response_id=previous))
        assert made.status_code == 200, made.text
        previous = made.json()["id"]

    refused = await create(configured, turn("openai", "turn 3", previous_response_id=previous))

    assert refused.status_code == 400
    assert "responses.max_chain" in refused.json()["error"]["message"]


@pytest.mark.parametrize("configured", [{"store": False}], indirect=True)
async def test_with_storing_off_nothing_is_kept_and_the_response_says_so(configured: Control) -> None:
    made = await create(configured, turn("openai", "hello"))

    assert made.status_code == 200 and made.json()["store"] is False
    assert (await configured.get(f"/v1/responses/{made.json()['id']}")).status_code == 404
    continued = await create(configured, turn("openai", "more", previous_response_id=made.json()["id"]))
    assert continued.json()["error"]["code"] == "previous_response_not_found"
    assert await stored_count(configured) == 0


@pytest.mark.parametrize("configured", [{"enabled": False}], indirect=True)
async def test_with_the_api_off_its_routes_are_not_served(configured: Control) -> None:
    posted = await create(configured, turn("openai", "hello"))
    read = await configured.get("/v1/responses/resp_1")

    assert (posted.status_code, read.status_code) == (404, 404)


async def test_reasoning_and_its_signature_are_carried_into_the_next_turn(
    api: Control, anthropic_upstream: AnthropicUpstream
) -> None:
    anthropic_upstream.enqueue(Reply(text="Paris.", thinking=("The capital of France.", "sig-123")))
    first = (await create(api, turn("anthropic", "Capital of France?"))).json()

    second = await create(api, turn("anthropic", "And of Italy?", previous_response_id=first["id"]))

    assert second.status_code == 200, second.text
    assistant = anthropic_upstream.last.json["messages"][-2]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "The capital of France.",
        "signature": "sig-123",
    }
