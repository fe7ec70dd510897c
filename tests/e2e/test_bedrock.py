"""Both official SDKs through the gateway to the fake Bedrock (which verifies every SigV4
signature): text, system prompts, streams, tools, images, thinking, cache usage, errors."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.clients import TOOL, Answer, ask_anthropic, ask_openai
from tests.fakes import Reply
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream
from tests.fakes.raw_client import post_stream, sse_data, sse_event_names
from tests.harness import GATEWAY_KEY, model, serve, settings

CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
CLIENTS = ["openai", "anthropic"]


@dataclass
class Gateway:
    url: str
    bedrock: BedrockUpstream
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic

    def last_body(self) -> dict[str, Any]:
        body = self.bedrock.last.json
        assert isinstance(body, dict)
        return body


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with BedrockUpstream() as fake:
        aws = {
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "endpoint_url": fake.url,
        }
        config = settings(
            model("claude", "bedrock", upstream_model=CLAUDE, aws=aws),
            model("llama", "bedrock", upstream_model="meta.llama3-70b-instruct-v1:0", aws=aws),
        )
        async with serve(config) as url:
            oai = openai.AsyncOpenAI(
                base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
            )
            ant = anthropic.AsyncAnthropic(
                base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
            )
            yield Gateway(url, fake, oai, ant)
            await oai.close()
            await ant.close()


async def ask(
    gateway: Gateway, client: str, messages: list[dict[str, Any]], *, stream: bool, **kw: Any
) -> Answer:
    if client == "openai":
        return await ask_openai(gateway.openai, "claude", messages, stream=stream, **kw)
    return await ask_anthropic(gateway.anthropic, "claude", messages, stream=stream, **kw)


both = pytest.mark.parametrize("client", CLIENTS)
streamed = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


@both
@streamed
async def test_a_text_answer_arrives_whole_with_usage(gateway: Gateway, client: str, stream: bool) -> None:
    gateway.bedrock.enqueue(Reply(text="Hello there, traveller.", chunks=4, input_tokens=9, output_tokens=5))
    answer = await ask(gateway, client, [{"role": "user", "content": "hi"}], stream=stream)
    assert (answer.text, answer.finish) == ("Hello there, traveller.", "stop")
    assert (answer.input_tokens, answer.output_tokens) == (9, 5)
    assert gateway.bedrock.models == [CLAUDE]
    assert gateway.bedrock.raw_paths[0].endswith("/converse-stream" if stream else "/converse")


@both
async def test_the_system_prompt_becomes_bedrock_system_blocks(gateway: Gateway, client: str) -> None:
    if client == "openai":
        await ask(
            gateway,
            client,
            [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
            stream=False,
        )
    else:
        await ask(gateway, client, [{"role": "user", "content": "hi"}], stream=False, system="Be terse.")
    body = gateway.last_body()
    assert body["system"] == [{"text": "Be terse."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]


@both
@streamed
async def test_a_tool_is_declared_called_answered_and_the_answer_read(
    gateway: Gateway, client: str, stream: bool
) -> None:
    fake = gateway.bedrock
    fake.enqueue(Reply(tool_calls=[("tooluse_Ab12", "get_weather", {"city": "Paris", "days": [1, 2]})]))
    question = {"role": "user", "content": "weather in Paris?"}
    first = await ask(gateway, client, [question], stream=stream, tools=[TOOL])
    assert first.finish == "tool_calls"
    [(call_id, name, args)] = first.tool_calls
    assert (name, args) == ("get_weather", {"city": "Paris", "days": [1, 2]})  # streamed fragments assembled
    spec = fake.last.json["toolConfig"]["tools"][0]["toolSpec"]
    assert spec == {
        "name": "get_weather",
        "description": TOOL["description"],
        "inputSchema": {"json": TOOL["parameters"]},
    }

    fake.enqueue(Reply(text="It is sunny."))
    history: list[dict[str, Any]]
    if client == "openai":
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": '{"city":"Paris"}'},
        }
        history = [
            question,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
        ]
    else:
        history = [
            question,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call_id, "name": name, "input": args}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 21C"}],
            },
        ]
    second = await ask(gateway, client, history, stream=stream, tools=[TOOL])
    assert second.text == "It is sunny."
    messages = gateway.last_body()["messages"]  # the fake refuses results that answer no call
    use = messages[1]["content"][0]["toolUse"]
    result = messages[2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"]
    assert result["content"] == [{"text": "sunny, 21C"}]


@both
async def test_a_base64_image_reaches_bedrock_as_bytes(gateway: Gateway, client: str) -> None:
    image: dict[str, Any]
    if client == "openai":
        image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    else:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    content = [{"type": "text", "text": "what is this?"}, image]
    await ask(gateway, client, [{"role": "user", "content": content}], stream=False)
    blocks = gateway.last_body()["messages"][0]["content"]
    assert blocks == [{"text": "what is this?"}, {"image": {"format": "png", "source": {"bytes": PNG}}}]


async def test_an_image_url_is_dropped_and_the_response_says_so(gateway: Gateway) -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    raw = await gateway.openai.chat.completions.with_raw_response.create(
        model="claude",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
    )
    assert "image URLs dropped" in raw.headers["x-waypost-dropped"]
    assert gateway.last_body()["messages"][0]["content"] == [{"text": "look"}]


@streamed
async def test_thinking_and_its_signature_survive_a_round_trip(gateway: Gateway, stream: bool) -> None:
    fake = gateway.bedrock
    fake.enqueue(Reply(text="391.", thinking=("17*23: 340+51.", "sig-abc")))
    question = {"role": "user", "content": "17*23?"}
    thinking = {"type": "enabled", "budget_tokens": 2048}
    first = await ask(gateway, "anthropic", [question], stream=stream, thinking=thinking, max_tokens=4000)
    assert first.thinking == [("17*23: 340+51.", "sig-abc")]
    assert gateway.last_body()["additionalModelRequestFields"] == {"thinking": thinking}

    replay = {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "17*23: 340+51.", "signature": "sig-abc"},
            {"type": "text", "text": "391."},
        ],
    }
    await ask(
        gateway,
        "anthropic",
        [question, replay, {"role": "user", "content": "and doubled?"}],
        stream=stream,
        thinking=thinking,
        max_tokens=4000,
    )
    assert gateway.last_body()["messages"][1]["content"][0] == {
        "reasoningContent": {"reasoningText": {"text": "17*23: 340+51.", "signature": "sig-abc"}}
    }


async def test_openai_reasoning_effort_becomes_a_thinking_budget(gateway: Gateway) -> None:
    gateway.bedrock.enqueue(Reply(text="ok", thinking=("hmm", "sig")))
    await gateway.openai.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "x"}],
        reasoning_effort="low",
        max_completion_tokens=5000,
    )
    fields = gateway.last_body()["additionalModelRequestFields"]
    assert fields == {"thinking": {"type": "enabled", "budget_tokens": 2048}}


@both
@streamed
async def test_cache_reads_and_writes_count_as_input(gateway: Gateway, client: str, stream: bool) -> None:
    gateway.bedrock.enqueue(
        Reply(text="ok", input_tokens=100, output_tokens=5, cache_read_tokens=800, cache_write_tokens=100)
    )
    answer = await ask(gateway, client, [{"role": "user", "content": "hi"}], stream=stream)
    assert (answer.input_tokens, answer.output_tokens) == (1000, 5)


async def test_anthropic_clients_see_the_cache_split_and_their_cache_control_becomes_cache_points(
    gateway: Gateway,
) -> None:
    gateway.bedrock.enqueue(
        Reply(text="ok", input_tokens=10, output_tokens=2, cache_read_tokens=700, cache_write_tokens=30)
    )
    message = await gateway.anthropic.messages.create(
        model="claude",
        max_tokens=50,
        system=[{"type": "text", "text": "A long stable prompt.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        10,
        700,
        30,
    )
    assert gateway.last_body()["system"] == [
        {"text": "A long stable prompt."},
        {"cachePoint": {"type": "default"}},
    ]


async def test_openai_clients_see_cached_tokens_in_prompt_details(gateway: Gateway) -> None:
    gateway.bedrock.enqueue(Reply(text="ok", input_tokens=10, output_tokens=2, cache_read_tokens=700))
    completion = await gateway.openai.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 710
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 700


@streamed
async def test_throttling_is_a_429_in_both_formats(gateway: Gateway, stream: bool) -> None:
    gateway.bedrock.enqueue(Reply(status=429, error_message="Too many requests", repeat=2))
    with pytest.raises(openai.RateLimitError):
        await gateway.openai.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    with pytest.raises(anthropic.RateLimitError):
        await gateway.anthropic.messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=stream
        )


async def test_a_validation_error_is_a_400_with_bedrocks_message(gateway: Gateway) -> None:
    gateway.bedrock.enqueue(Reply(status=400, error_message="Input is too long for requested model."))
    with pytest.raises(openai.BadRequestError) as err:
        await gateway.openai.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert "Input is too long for requested model." in err.value.message
    gateway.bedrock.enqueue(Reply(status=400, error_message="Input is too long for requested model."))
    with pytest.raises(anthropic.BadRequestError):
        await gateway.anthropic.messages.create(
            model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )


async def test_refused_aws_credentials_are_a_502_without_bedrocks_text(gateway: Gateway) -> None:
    gateway.bedrock.secret_access_key = "rotated"
    with pytest.raises(openai.APIStatusError) as err:
        await gateway.openai.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 502
    assert "we calculated" not in err.value.message


@both
async def test_a_mid_stream_exception_ends_the_stream_with_an_error_event(
    gateway: Gateway, client: str
) -> None:
    gateway.bedrock.enqueue(Reply(text="partial answer here", error_event_after_chunks=3))
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}
    if client == "openai":
        body: dict[str, Any] = {
            "model": "claude",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        raw = await post_stream(gateway.url + "/v1/chat/completions", body, headers)
        data = sse_data(raw)
        assert "[DONE]" not in data
        assert data[-1]["error"]["type"] == "upstream_error"
        assert (
            "".join(c["choices"][0]["delta"].get("content") or "" for c in data[:-1] if c.get("choices"))
            == "partial answer "
        )
    else:
        body = {
            "model": "claude",
            "stream": True,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        }
        raw = await post_stream(gateway.url + "/v1/messages", body, headers)
        names = sse_event_names(raw)
        assert names[-1] == "error" and "message_stop" not in names
        assert sse_data(raw)[-1]["error"]["type"] == "api_error"


@both
async def test_a_mid_stream_exception_makes_the_sdk_raise(gateway: Gateway, client: str) -> None:
    gateway.bedrock.enqueue(
        Reply(text="one two three", error_event_after_chunks=2, error_type="throttlingException")
    )
    with pytest.raises(openai.APIError if client == "openai" else anthropic.APIError):
        await ask(gateway, client, [{"role": "user", "content": "hi"}], stream=True)


async def test_count_tokens_is_answered_by_bedrock(gateway: Gateway) -> None:
    gateway.bedrock.enqueue(Reply(input_tokens=42))
    counted = await gateway.anthropic.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "hi"}]
    )
    assert counted.input_tokens == 42
    assert gateway.bedrock.raw_paths[-1].endswith("/count-tokens")


async def test_count_tokens_for_a_model_bedrock_cannot_count_is_an_estimate(gateway: Gateway) -> None:
    raw = await gateway.anthropic.messages.with_raw_response.count_tokens(
        model="llama", messages=[{"role": "user", "content": "hello there"}]
    )
    assert raw.headers["x-waypost-token-count"] == "estimate"
    assert (await raw.parse()).input_tokens > 0
    assert gateway.bedrock.hits == 0
