"""The fake Gemini server is what Google's own client expects: ``google-genai`` (which uses the ``v1``
paths) parses every answer, and the fake refuses what the real API refuses. Skipped when the client
is not installed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.base import Reply
from tests.fakes.gemini_upstream import GeminiUpstream

genai = pytest.importorskip("google.genai")
from google.genai import errors, types  # noqa: E402

KEY = "AIzaSy-fake-key-for-the-sdk"
MODEL = "gemini-2.5-flash"
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Weather for a city",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        )
    ]
)
SIGNATURE = base64.b64encode(b"opaque signature bytes").decode()


@pytest.fixture
async def fake() -> AsyncIterator[GeminiUpstream]:
    async with GeminiUpstream(api_key=KEY) as server:
        yield server


pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


def sdk_client(fake: GeminiUpstream) -> Any:
    options = types.HttpOptions(base_url=fake.url, retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=KEY, http_options=options)


@pytest.fixture
async def client(fake: GeminiUpstream) -> AsyncIterator[Any]:
    sdk = sdk_client(fake)
    yield sdk
    await sdk.aio.aclose()


async def test_the_sdk_reads_a_text_answer_and_its_usage(fake: GeminiUpstream, client: Any) -> None:
    fake.enqueue(
        Reply(text="Bonjour.", input_tokens=11, output_tokens=3, cache_read_tokens=8, reasoning_tokens=5)
    )
    response = await client.aio.models.generate_content(model=MODEL, contents="hello")
    assert response.text == "Bonjour."
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (11, 3)
    assert (usage.cached_content_token_count, usage.thoughts_token_count) == (8, 5)
    assert fake.last.path == f"/v1/models/{MODEL}:generateContent"
    assert fake.last.headers["x-goog-api-key"] == KEY


async def test_the_sdk_reads_thoughts_and_signed_function_calls(fake: GeminiUpstream, client: Any) -> None:
    fake.enqueue(
        Reply(
            tool_calls=[("a", "get_weather", {"city": "Paris"}), ("b", "get_weather", {"city": "Rome"})],
            thinking=("Two cities.", SIGNATURE),
        )
    )
    config = types.GenerateContentConfig(
        tools=[WEATHER], thinking_config=types.ThinkingConfig(include_thoughts=True)
    )
    response = await client.aio.models.generate_content(model=MODEL, contents="weather?", config=config)
    assert [(c.name, c.args) for c in response.function_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    thought, first, second = response.candidates[0].content.parts
    assert (thought.thought, thought.text) == (True, "Two cities.")
    assert first.thought_signature == b"opaque signature bytes" and second.thought_signature is None


async def test_the_sdk_streams_chunks(fake: GeminiUpstream, client: Any) -> None:
    fake.enqueue(Reply(text="one two three", input_tokens=4, output_tokens=3))
    pieces = [
        chunk async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="go")
    ]
    assert "".join(p.text or "" for p in pieces) == "one two three"
    assert pieces[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert pieces[-1].usage_metadata.candidates_token_count == 3
    assert fake.last.query == {"alt": "sse"}


async def test_the_sdk_counts_tokens_and_embeds(fake: GeminiUpstream, client: Any) -> None:
    fake.enqueue(Reply(input_tokens=9))
    counted = await client.aio.models.count_tokens(model=MODEL, contents="count me")
    assert counted.total_tokens == 9
    config = types.EmbedContentConfig(task_type="RETRIEVAL_QUERY", output_dimensionality=4)
    embedded = await client.aio.models.embed_content(
        model="gemini-embedding-001", contents=["a", "b"], config=config
    )
    assert [len(e.values) for e in embedded.embeddings] == [4, 4]
    assert fake.last.path == "/v1/models/gemini-embedding-001:batchEmbedContents"


@pytest.mark.parametrize(("status", "kind"), [(429, errors.ClientError), (503, errors.ServerError)])
async def test_the_sdk_reads_errors(
    fake: GeminiUpstream, client: Any, status: int, kind: type[Exception]
) -> None:
    fake.enqueue(Reply(status=status))
    with pytest.raises(kind) as info:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == status  # type: ignore[attr-defined]


async def test_the_sdk_chat_replays_signatures_gemini_3_demands() -> None:
    async with GeminiUpstream(api_key=KEY, require_signatures=True) as strict:
        sdk = sdk_client(strict)
        strict.enqueue(Reply(tool_calls=[("a", "get_weather", {"city": "Paris"})]), Reply(text="Sunny."))
        chat = sdk.aio.chats.create(model=MODEL, config=types.GenerateContentConfig(tools=[WEATHER]))
        await chat.send_message("weather?")
        answer = await chat.send_message(
            types.Part.from_function_response(name="get_weather", response={"output": "sunny"})
        )
        assert answer.text == "Sunny."
        await sdk.aio.aclose()


async def test_a_key_in_the_url_is_refused(fake: GeminiUpstream) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.url}/v1beta/models/{MODEL}:generateContent",
            params={"key": KEY},
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        ) as resp,
    ):
        assert resp.status == 400
        assert "x-goog-api-key" in (await resp.json())["error"]["message"]


async def test_a_function_call_without_its_signature_is_refused_in_gemini_3_mode() -> None:
    async with GeminiUpstream(require_signatures=True) as strict, aiohttp.ClientSession() as session:
        contents = [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "x"}}}],
            },
        ]
        url = f"{strict.url}/v1beta/models/{MODEL}:generateContent"
        async with session.post(url, json={"contents": contents}) as resp:
            assert resp.status == 400
            assert "missing a thought_signature" in (await resp.json())["error"]["message"]
