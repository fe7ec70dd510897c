"""Both SDKs through the gateway to Ollama's native API: text, system prompts, streams, tool round
trips, images, JSON mode, thinking and failures. Specified by docs/providers/ollama.md; a real
gateway in front of a real fake Ollama server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.e2e.clients import TOOL, Answer, ask_anthropic, ask_openai
from tests.fakes import Reply
from tests.fakes.ollama_upstream import OllamaUpstream
from tests.fakes.raw_client import sse_data, sse_event_names
from tests.harness import GATEWAY_KEY, model, serve, settings

CLIENTS = ["openai", "anthropic"]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
HEADERS = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}


class Gateway:
    def __init__(self, url: str, fake: OllamaUpstream) -> None:
        self.url = url
        self.fake = fake

    @property
    def body(self) -> dict[str, Any]:
        body = self.fake.last.json
        assert isinstance(body, dict)
        return body


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with OllamaUpstream(models=["llama3.2", "qwen3", "all-minilm"]) as fake:
        config = settings(
            model("local", "ollama", fake.url, upstream_model="llama3.2"),
            model("local-embed", "ollama", fake.url, upstream_model="all-minilm"),
            model("missing", "ollama", fake.url, upstream_model="not-pulled"),
        )
        async with serve(config) as url:
            yield Gateway(url, fake)


@pytest.fixture
async def openai_client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@pytest.fixture
async def anthropic_client(gateway: Gateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@pytest.fixture
def ask(
    client: str, stream: bool, openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> Any:
    async def call(messages: list[dict[str, Any]], name: str = "local", **kw: Any) -> Answer:
        if client == "openai":
            return await ask_openai(openai_client, name, messages, stream=stream, **kw)
        return await ask_anthropic(anthropic_client, name, messages, stream=stream, **kw)

    return call


def each_client_and_mode(test: Any) -> Any:
    """Run ``test`` from both SDKs, streaming and not."""
    test = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])(test)
    return pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS])(test)


@each_client_and_mode
async def test_text_answer_arrives_whole_with_usage(gateway: Gateway, ask: Any) -> None:
    gateway.fake.enqueue(Reply(text="Hello there, traveller.", chunks=5, input_tokens=21, output_tokens=6))
    answer = await ask([{"role": "user", "content": "hi"}])
    assert answer.text == "Hello there, traveller."
    assert answer.finish == "stop"
    assert (answer.input_tokens, answer.output_tokens) == (21, 6)
    assert gateway.body["model"] == "llama3.2"
    assert gateway.body["messages"] == [{"role": "user", "content": "hi"}]


@each_client_and_mode
async def test_system_prompt_is_a_system_message(gateway: Gateway, client: str, ask: Any) -> None:
    if client == "openai":
        await ask([{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}])
    else:
        await ask([{"role": "user", "content": "hi"}], system="Be terse.")
    assert gateway.body["messages"][0] == {"role": "system", "content": "Be terse."}


@each_client_and_mode
async def test_max_tokens_is_num_predict_and_a_cut_answer_says_so(gateway: Gateway, ask: Any) -> None:
    gateway.fake.enqueue(Reply(text="The sky is", finish_reason="length"))
    answer = await ask([{"role": "user", "content": "why?"}], max_tokens=3)
    assert gateway.body["options"]["num_predict"] == 3
    assert answer.finish == "length"


@each_client_and_mode
async def test_tool_call_round_trip(gateway: Gateway, client: str, ask: Any) -> None:
    gateway.fake.enqueue(Reply(tool_calls=[("ignored", "get_weather", {"city": "Paris", "days": [1, 2]})]))
    first = await ask([{"role": "user", "content": "weather in Paris?"}], tools=[TOOL])
    assert first.finish == "tool_calls"
    [(call_id, name, args)] = first.tool_calls
    assert (name, args) == ("get_weather", {"city": "Paris", "days": [1, 2]})
    assert call_id  # Ollama gives none: the gateway made one up
    assert gateway.body["tools"][0]["function"]["name"] == "get_weather"

    gateway.fake.enqueue(Reply(text="It is sunny."))
    if client == "openai":
        history = [
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
        ]
    else:
        history = [
            {"role": "user", "content": "weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call_id, "name": name, "input": args}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 21C"}],
            },
        ]
    second = await ask(history, tools=[TOOL])
    assert second.text == "It is sunny."
    assert gateway.body["messages"][1:] == [  # the fake rejects arguments that are not objects
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}}
            ],
        },
        {"role": "tool", "content": "sunny, 21C", "tool_name": "get_weather"},
    ]


@each_client_and_mode
async def test_parallel_tool_calls_get_distinct_ids(gateway: Gateway, ask: Any) -> None:
    calls = [("a", "get_weather", {"city": "Paris"}), ("b", "get_weather", {"city": "Oslo"})]
    gateway.fake.enqueue(Reply(tool_calls=calls))
    answer = await ask([{"role": "user", "content": "two cities"}], tools=[TOOL])
    assert [args for _, _, args in answer.tool_calls] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert len({call_id for call_id, _, _ in answer.tool_calls}) == 2


@pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS])
@pytest.mark.parametrize("stream", [False], ids=["plain"])
async def test_inline_images_arrive_as_base64(gateway: Gateway, client: str, ask: Any) -> None:
    if client == "openai":
        image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    else:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    await ask([{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}])
    assert gateway.body["messages"] == [{"role": "user", "content": "what is this?", "images": [PNG]}]


async def test_image_urls_are_dropped_and_the_caller_is_told(
    gateway: Gateway, openai_client: openai.AsyncOpenAI
) -> None:
    image: Any = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    raw = await openai_client.chat.completions.with_raw_response.create(
        model="local", messages=[{"role": "user", "content": [{"type": "text", "text": "what?"}, image]}]
    )
    assert gateway.body["messages"] == [{"role": "user", "content": "what?"}]
    assert "image given by URL dropped" in raw.headers["x-waypost-dropped"]


async def test_json_mode_sends_format_json(gateway: Gateway, openai_client: openai.AsyncOpenAI) -> None:
    gateway.fake.enqueue(Reply(text='{"colour": "blue"}'))
    completion = await openai_client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "sky colour as JSON"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content or "") == {"colour": "blue"}
    assert gateway.body["format"] == "json"


async def test_json_schema_mode_sends_the_schema(gateway: Gateway, openai_client: openai.AsyncOpenAI) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"age": {"type": "integer"}},
        "required": ["age"],
    }
    await openai_client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "age?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}},
    )
    assert gateway.body["format"] == schema


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_thinking_reaches_an_anthropic_client_as_a_thinking_block(
    gateway: Gateway, stream: bool, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    gateway.fake.enqueue(Reply(text="Three.", thinking=("Count the r's.", "")))
    answer = await ask_anthropic(
        anthropic_client,
        "local",
        [{"role": "user", "content": "How many r's in strawberry?"}],
        stream=stream,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert gateway.body["think"] is True
    assert [text for text, _ in answer.thinking] == ["Count the r's."]
    assert answer.text == "Three."


async def test_embeddings_come_from_api_embed(gateway: Gateway, openai_client: openai.AsyncOpenAI) -> None:
    result = await openai_client.embeddings.create(
        model="local-embed", input=["first", "second"], dimensions=6, encoding_format="float"
    )
    assert [len(item.embedding) for item in result.data] == [6, 6]
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens > 0
    assert gateway.fake.last.path == "/api/embed"
    assert gateway.body == {"model": "all-minilm", "input": ["first", "second"], "dimensions": 6}


async def test_embeddings_reach_the_sdks_default_base64_request_as_the_same_vectors(gateway: Gateway) -> None:
    # The SDK validates before decoding the base64 it asks for by default: this client is not strict.
    async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0) as client:
        decoded = await client.embeddings.create(model="local-embed", input="same text")
        floats = await client.embeddings.create(
            model="local-embed", input="same text", encoding_format="float"
        )
    assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)


# -- failures --------------------------------------------------------------------------------------


async def test_a_model_ollama_has_not_pulled_is_a_bad_request_naming_it(
    gateway: Gateway, openai_client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        await openai_client.chat.completions.create(
            model="missing", messages=[{"role": "user", "content": "hi"}]
        )
    assert "not-pulled" in err.value.message and "not found" in err.value.message


async def test_an_ollama_server_error_is_a_bad_gateway(
    gateway: Gateway, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    gateway.fake.enqueue(Reply(status=500))
    with pytest.raises(anthropic.APIStatusError) as err:
        await anthropic_client.messages.create(
            model="local", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 502


@pytest.mark.parametrize("fmt", CLIENTS)
async def test_an_error_line_mid_stream_ends_the_callers_stream_with_an_error(
    gateway: Gateway, fmt: str
) -> None:
    gateway.fake.enqueue(Reply(text="one two three four five", error_event_after_chunks=2))
    path = "/v1/chat/completions" if fmt == "openai" else "/v1/messages"
    body: dict[str, Any] = {"model": "local", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    if fmt == "anthropic":
        body["max_tokens"] = 64
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url + path, json=body, headers=HEADERS) as resp,
    ):
        status, raw = resp.status, await resp.read()
    assert status == 200
    if fmt == "openai":
        frames = sse_data(raw)
        assert "[DONE]" not in frames
        text = "".join(f["choices"][0]["delta"].get("content") or "" for f in frames[:-1] if f.get("choices"))
        assert text == "one two "
        assert "unexpected EOF" in frames[-1]["error"]["message"]
    else:
        names = sse_event_names(raw)
        assert names[0] == "message_start" and names[-1] == "error"
        assert "message_stop" not in names
