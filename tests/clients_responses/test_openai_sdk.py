"""The official ``openai`` SDK's ``client.responses`` (strict validation) through the gateway to each
fake: text, function calls and structured output, answered whole and streamed."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.clients_responses.conftest import Gateway
from tests.fakes import Reply

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Weather(BaseModel):
    city: str
    sky: str


async def test_create_answers_with_text(client: openai.AsyncOpenAI, gateway: Gateway) -> None:
    response = await client.responses.create(
        model=gateway.model, instructions="Be brief.", input="hello", store=False
    )

    assert response.status == "completed"
    assert response.model == gateway.model
    assert response.output_text == "echo: hello"
    assert response.usage is not None and response.usage.output_tokens > 0
    assert gateway.upstream.hits == 1


async def test_stream_delivers_text_deltas_and_the_final_response(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    gateway.upstream.enqueue(Reply(text="The sky is blue today."))
    deltas: list[str] = []

    async with client.responses.stream(model=gateway.model, input="sky?", store=False) as stream:
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = await stream.get_final_response()

    assert "".join(deltas) == "The sky is blue today."
    assert final.output_text == "The sky is blue today."
    assert final.status == "completed"
    assert final.usage is not None and final.usage.input_tokens > 0


async def test_create_returns_a_function_call_item(client: openai.AsyncOpenAI, gateway: Gateway) -> None:
    gateway.upstream.enqueue(Reply(tool_calls=[("call_w1", "get_weather", {"city": "Paris"})]))

    response = await client.responses.create(
        model=gateway.model,
        input="Weather in Paris?",
        tools=[WEATHER],
        store=False,
    )

    [call] = [item for item in response.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.call_id


async def test_stream_delivers_function_call_arguments(client: openai.AsyncOpenAI, gateway: Gateway) -> None:
    gateway.upstream.enqueue(Reply(tool_calls=[("call_w2", "get_weather", {"city": "Oslo"})]))
    done: list[str] = []

    async with client.responses.stream(
        model=gateway.model,
        input="Weather in Oslo?",
        tools=[WEATHER],
        store=False,
    ) as stream:
        async for event in stream:
            if event.type == "response.function_call_arguments.done":
                done.append(event.arguments)
        final = await stream.get_final_response()

    assert [json.loads(a) for a in done] == [{"city": "Oslo"}]
    [call] = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather"


async def test_a_function_result_is_answered(client: openai.AsyncOpenAI, gateway: Gateway) -> None:
    gateway.upstream.enqueue(Reply(text="Sunny in Paris."))

    response = await client.responses.create(
        model=gateway.model,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "call_w3",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_w3", "output": '{"sky": "sunny"}'},
        ],
        tools=[WEATHER],
        store=False,
    )

    assert response.output_text == "Sunny in Paris."
    # The tool's output reached the model, in whatever shape the provider carries it.
    assert json.dumps('{"sky": "sunny"}') in json.dumps(gateway.upstream.last.json)


async def test_parse_returns_structured_output(client: openai.AsyncOpenAI, gateway: Gateway) -> None:
    gateway.upstream.enqueue(Reply(text='{"city": "Paris", "sky": "sunny"}'))

    response = await client.responses.parse(
        model=gateway.model, input="Weather in Paris as JSON", text_format=Weather, store=False
    )

    assert response.output_parsed == Weather(city="Paris", sky="sunny")


@pytest.mark.parametrize("gateway", ["chat"], indirect=True)
async def test_a_stored_response_is_retrieved_with_its_input_items(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    created = await client.responses.create(model=gateway.model, input="remember me", store=True)

    again = await client.responses.retrieve(created.id)
    items = await client.responses.input_items.list(created.id)

    assert (again.id, again.output_text) == (created.id, "echo: remember me")
    assert [getattr(item, "role", None) for item in items.data] == ["user"]


@pytest.mark.parametrize("gateway", ["anthropic"], indirect=True)
async def test_previous_response_id_continues_the_conversation(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    first = await client.responses.create(model=gateway.model, input="My name is Ada.", store=True)
    gateway.upstream.enqueue(Reply(text="Your name is Ada."))

    second = await client.responses.create(
        model=gateway.model, previous_response_id=first.id, input="What is my name?", store=True
    )

    assert second.output_text == "Your name is Ada."
    assert second.previous_response_id == first.id
    sent = json.dumps(gateway.upstream.last.json)
    assert "My name is Ada." in sent and "echo: My name is Ada." in sent


@pytest.mark.parametrize("gateway", ["chat", "anthropic"], indirect=True)
async def test_a_namespaced_function_call_comes_back_in_its_namespace(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    # Codex groups tools in namespaces; a provider without them sees ``<namespace>__<name>`` and the
    # client must get the call back as OpenAI sends it, or it cannot find the tool.
    gateway.upstream.enqueue(Reply(tool_calls=[("call_n1", "crm__lookup", {"q": "ada"})]))
    lookup = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    crm: Any = {"type": "namespace", "name": "crm", "description": "The CRM", "tools": [lookup]}

    response = await client.responses.create(model=gateway.model, input="find ada", tools=[crm], store=False)

    [call] = [item for item in response.output if item.type == "function_call"]
    assert (call.namespace, call.name) == ("crm", "lookup")
