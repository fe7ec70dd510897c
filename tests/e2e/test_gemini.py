"""The official OpenAI and Anthropic SDKs, through a real gateway, to the fake Gemini server playing
Gemini 3 (every answer signed, unsigned function calls in a tool loop refused): text, system prompts,
streams, tools and parallel calls, images, thinking with signature round trips, usage, errors, and
the API key kept out of URLs, error bodies and logs."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.clients import TOOL, Answer, ask_anthropic, ask_openai
from tests.fakes.base import Reply
from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.raw_client import post_stream, sse_data, sse_event_names
from tests.harness import GATEWAY_KEY, model, serve, settings

KEY = "AIzaSy-gemini-upstream-key-e2e-0123"
MODEL = "via-gemini"
UPSTREAM_MODEL = "gemini-3-pro-preview"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
SIG = base64.b64encode(b"gemini-thought-signature").decode()
CLIENTS = ["openai", "anthropic"]


@dataclass
class Setup:
    url: str
    fake: GeminiUpstream
    oai: openai.AsyncOpenAI
    ant: anthropic.AsyncAnthropic

    async def ask(self, client: str, messages: list[dict[str, Any]], *, stream: bool, **kw: Any) -> Answer:
        if client == "openai":
            return await ask_openai(self.oai, MODEL, messages, stream=stream, **kw)
        return await ask_anthropic(self.ant, MODEL, messages, stream=stream, **kw)

    @property
    def body(self) -> dict[str, Any]:
        body = self.fake.last.json
        assert isinstance(body, dict)
        return body


@pytest.fixture
async def gw() -> AsyncIterator[Setup]:
    async with GeminiUpstream(api_key=KEY, require_signatures=True) as fake:
        config = settings(model(MODEL, "gemini", fake.url, KEY, upstream_model=UPSTREAM_MODEL))
        async with serve(config) as url:
            oai = openai.AsyncOpenAI(
                base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
            )
            ant = anthropic.AsyncAnthropic(
                base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
            )
            yield Setup(url, fake, oai, ant)
            await oai.close()
            await ant.close()


both_clients = pytest.mark.parametrize("client", CLIENTS, ids=[f"from-{c}" for c in CLIENTS])
both_modes = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


def tool_turns(client: str, answer: Answer, results: list[str]) -> list[dict[str, Any]]:
    """The assistant turn of ``answer`` (thinking and signatures included) and the tool results."""
    calls = answer.tool_calls
    if client == "openai":
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text or None,
            "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for cid, name, args in calls
            ],
        }
        if answer.thinking:
            assistant["thinking_blocks"] = [
                {"type": "thinking", "thinking": text, **({"signature": sig} if sig else {})}
                for text, sig in answer.thinking
            ]
        return [
            assistant,
            *(
                {"role": "tool", "tool_call_id": c[0], "content": r}
                for c, r in zip(calls, results, strict=True)
            ),
        ]
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": text, "signature": sig or ""} for text, sig in answer.thinking
    ]
    if answer.text:
        blocks.append({"type": "text", "text": answer.text})
    blocks += [{"type": "tool_use", "id": cid, "name": name, "input": args} for cid, name, args in calls]
    results_turn = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": c[0], "content": r}
            for c, r in zip(calls, results, strict=True)
        ],
    }
    return [{"role": "assistant", "content": blocks}, results_turn]


async def ask_with_thinking_blocks(
    setup: Setup, messages: list[dict[str, Any]], *, stream: bool, **kw: Any
) -> Answer:
    """An OpenAI-format call whose answer keeps ``thinking_blocks`` (which carry Gemini's signatures)."""
    if "tools" in kw:
        kw["tools"] = [{"type": "function", "function": t} for t in kw["tools"]]
    if stream:
        text, thinking, calls = "", [], {}
        async for chunk in await setup.oai.chat.completions.create(
            model=MODEL, messages=messages, stream=True, **kw
        ):
            delta = chunk.choices[0].delta.model_dump() if chunk.choices else {}
            text += delta.get("content") or ""
            for block in delta.get("thinking_blocks") or []:
                thinking.append((block.get("thinking", ""), block.get("signature")))
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], {"id": call["id"], "name": "", "args": ""})
                entry["name"] += call["function"].get("name") or ""
                entry["args"] += call["function"].get("arguments") or ""
        return Answer(
            text=text,
            tool_calls=[(c["id"], c["name"], json.loads(c["args"])) for c in calls.values()],
            thinking=thinking,
        )
    completion = await setup.oai.chat.completions.create(model=MODEL, messages=messages, **kw)
    message = completion.choices[0].message.model_dump()
    return Answer(
        text=message["content"] or "",
        tool_calls=[
            (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in message.get("tool_calls") or []
        ],
        thinking=[(b.get("thinking", ""), b.get("signature")) for b in message.get("thinking_blocks") or []],
    )


# -- plain conversation ----------------------------------------------------------------------------


@both_modes
@both_clients
async def test_text_answer_arrives_whole(gw: Setup, client: str, stream: bool) -> None:
    gw.fake.enqueue(Reply(text="Hello there, traveller.", chunks=4))
    answer = await gw.ask(client, [{"role": "user", "content": "hi"}], stream=stream)
    assert answer.text == "Hello there, traveller."
    assert answer.finish == "stop"
    assert answer.input_tokens > 0 and answer.output_tokens > 0


@both_clients
async def test_upstream_gets_its_path_the_key_header_and_the_conversation(gw: Setup, client: str) -> None:
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    await gw.ask(client, history, stream=False)
    assert gw.fake.last.path == f"/v1beta/models/{UPSTREAM_MODEL}:generateContent"
    assert gw.fake.last.query == {}
    assert gw.fake.last.headers["x-goog-api-key"] == KEY
    assert [(c["role"], c["parts"][0]["text"]) for c in gw.body["contents"]] == [
        ("user", "first"),
        ("model", "ok"),
        ("user", "second"),
    ]


@both_clients
async def test_system_prompt_becomes_the_system_instruction(gw: Setup, client: str) -> None:
    if client == "openai":
        await gw.ask(
            client,
            [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
            stream=True,
        )
    else:
        await gw.ask(client, [{"role": "user", "content": "hi"}], stream=True, system="Be terse.")
    assert gw.body["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert gw.fake.last.query == {"alt": "sse"}


# -- tools -----------------------------------------------------------------------------------------


@both_modes
@both_clients
async def test_tool_call_round_trip_with_gemini_3_signatures(gw: Setup, client: str, stream: bool) -> None:
    gw.fake.enqueue(Reply(tool_calls=[("ignored", "get_weather", {"city": "Paris", "days": [1, 2]})]))
    question = [{"role": "user", "content": "weather in Paris?"}]
    if client == "openai":
        first = await ask_with_thinking_blocks(gw, question, stream=stream, tools=[TOOL])
    else:
        first = await gw.ask(client, question, stream=stream, tools=[TOOL])
    assert [(name, args) for _, name, args in first.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": [1, 2]})
    ]
    assert gw.body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == TOOL["parameters"]

    gw.fake.enqueue(Reply(text="It is sunny."))
    second = await gw.ask(
        client, question + tool_turns(client, first, ["sunny, 21C"]), stream=stream, tools=[TOOL]
    )
    assert second.text == "It is sunny."
    model_turn, results = gw.body["contents"][1:]
    assert model_turn["parts"][0]["thoughtSignature"] in gw.fake.issued  # the fake refuses anything else
    assert results["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny, 21C"}}}
    ]


@both_modes
@both_clients
async def test_parallel_calls_keep_their_order_and_get_distinct_ids(
    gw: Setup, client: str, stream: bool
) -> None:
    gw.fake.enqueue(
        Reply(tool_calls=[("a", "get_weather", {"city": "Paris"}), ("b", "get_weather", {"city": "Rome"})])
    )
    answer = await gw.ask(
        client, [{"role": "user", "content": "Paris and Rome?"}], stream=stream, tools=[TOOL]
    )
    assert [(name, args) for _, name, args in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert len({cid for cid, _, _ in answer.tool_calls}) == 2
    assert answer.finish == "tool_calls"


async def test_a_conversation_from_another_model_continues_on_gemini_3(gw: Setup) -> None:
    # Tool calls Gemini never signed (another provider's, or a fallback mid-loop) get Google's skip value.
    history = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_openai_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_openai_1", "content": "sunny"},
    ]
    answer = await ask_openai(gw.oai, MODEL, history, stream=False, tools=[TOOL])
    assert answer.text == "echo: weather?"
    call = gw.body["contents"][1]["parts"][0]
    assert call["thoughtSignature"] == "skip_thought_signature_validator"
    assert call["functionCall"]["id"] == "call_openai_1"


# -- media -----------------------------------------------------------------------------------------


@both_clients
async def test_base64_image_reaches_gemini_inline(gw: Setup, client: str) -> None:
    if client == "openai":
        image: dict[str, Any] = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    else:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    await gw.ask(
        client,
        [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}],
        stream=False,
    )
    assert gw.body["contents"][0]["parts"] == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


async def test_an_http_image_url_is_dropped_and_reported(gw: Setup) -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    raw = await gw.oai.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": content}]
    )
    assert "image URLs dropped" in raw.headers["x-waypost-dropped"]
    assert gw.body["contents"][0]["parts"] == [{"text": "look"}]


# -- thinking --------------------------------------------------------------------------------------


@both_modes
async def test_anthropic_thinking_and_its_signature_survive_a_tool_loop(gw: Setup, stream: bool) -> None:
    gw.fake.enqueue(
        Reply(tool_calls=[("a", "get_weather", {"city": "Oslo"})], thinking=("Need the weather.", SIG))
    )
    question = [{"role": "user", "content": "weather in Oslo?"}]
    thinking = {"type": "enabled", "budget_tokens": 2048}
    first = await gw.ask(
        "anthropic", question, stream=stream, tools=[TOOL], thinking=thinking, max_tokens=4096
    )
    assert gw.body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    assert first.thinking == [("Need the weather.", ""), ("", f"gemini:call0:{SIG}")]

    gw.fake.enqueue(Reply(text="Cold."))
    second = await gw.ask(
        "anthropic",
        question + tool_turns("anthropic", first, ["-3C"]),
        stream=stream,
        tools=[TOOL],
        thinking=thinking,
    )
    assert second.text == "Cold."
    assert gw.body["contents"][1]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}, "thoughtSignature": SIG}
    ]


@both_modes
async def test_openai_thinking_blocks_carry_the_signature_back(gw: Setup, stream: bool) -> None:
    gw.fake.enqueue(Reply(tool_calls=[("a", "get_weather", {"city": "Oslo"})], thinking=("Hmm.", SIG)))
    question = [{"role": "user", "content": "weather in Oslo?"}]
    first = await ask_with_thinking_blocks(gw, question, stream=stream, tools=[TOOL], reasoning_effort="low")
    assert gw.body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}
    assert ("", f"gemini:call0:{SIG}") in first.thinking

    gw.fake.enqueue(Reply(text="Cold."))
    second = await gw.ask(
        "openai", question + tool_turns("openai", first, ["-3C"]), stream=stream, tools=[TOOL]
    )
    assert second.text == "Cold."
    assert gw.body["contents"][1]["parts"][0]["thoughtSignature"] == SIG


# -- usage -----------------------------------------------------------------------------------------


@both_modes
@both_clients
async def test_usage_includes_cached_and_thinking_tokens(gw: Setup, client: str, stream: bool) -> None:
    gw.fake.enqueue(
        Reply(text="ok", input_tokens=1200, output_tokens=30, cache_read_tokens=1000, reasoning_tokens=50)
    )
    if client == "openai":
        kw: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            chunks = [
                c
                async for c in await gw.oai.chat.completions.create(
                    **kw, stream=True, stream_options={"include_usage": True}
                )
            ]
            usage = chunks[-1].usage
        else:
            usage = (await gw.oai.chat.completions.create(**kw)).usage
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (1200, 80)
        assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 1000
        assert (
            usage.completion_tokens_details is not None
            and usage.completion_tokens_details.reasoning_tokens == 50
        )
    else:
        kw = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            async with gw.ant.messages.stream(**kw) as s:
                message = await s.get_final_message()
        else:
            message = await gw.ant.messages.create(**kw)
        u = message.usage
        assert (u.input_tokens, u.cache_read_input_tokens, u.output_tokens) == (200, 1000, 80)


# -- errors ----------------------------------------------------------------------------------------


@both_modes
async def test_quota_errors_are_rate_limits_in_both_formats(gw: Setup, stream: bool) -> None:
    gw.fake.enqueue(Reply(status=429, retry_after="17"), Reply(status=429, retry_after="17"))
    with pytest.raises(openai.RateLimitError) as oai_err:
        await gw.oai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    assert oai_err.value.response.headers["retry-after"] == "17"
    with pytest.raises(anthropic.RateLimitError):
        await gw.ant.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=stream
        )


async def test_overload_is_503_to_openai_and_529_to_anthropic(gw: Setup) -> None:
    gw.fake.enqueue(Reply(status=503), Reply(status=503))
    with pytest.raises(openai.APIStatusError) as oai_err:
        await gw.oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert oai_err.value.status_code == 503
    with pytest.raises(anthropic.APIStatusError) as ant_err:
        await gw.ant.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert ant_err.value.status_code == 529


async def test_an_invalid_argument_is_the_callers_400(gw: Setup) -> None:
    gw.fake.enqueue(Reply(status=400, error_message="* GenerateContentRequest.generation_config.top_k: bad"))
    with pytest.raises(openai.BadRequestError) as err:
        await gw.oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "top_k: bad" in err.value.message


async def test_a_bad_provider_key_is_a_gateway_error_that_never_shows_the_key() -> None:
    async with GeminiUpstream(api_key=KEY) as fake:
        config = settings(model(MODEL, "gemini", fake.url, "AIza-wrong-configured-key"))
        async with (
            serve(config) as url,
            openai.AsyncOpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0) as oai,
        ):
            with pytest.raises(openai.APIStatusError) as err:
                await oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502
    assert "AIza-wrong-configured-key" not in err.value.response.text


async def test_an_upstream_error_echoing_the_key_reaches_neither_client_nor_logs(
    gw: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    gw.fake.enqueue(Reply(status=500, error_message=f"internal failure for {KEY}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(openai.InternalServerError) as err:
        await gw.oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert KEY not in err.value.response.text
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "internal failure" in logged
    assert KEY not in logged


@pytest.mark.parametrize("fault", ["reset", "error-event"])
@both_clients
async def test_a_stream_broken_midway_ends_with_an_error_event(gw: Setup, client: str, fault: str) -> None:
    text = " ".join(f"w{i}" for i in range(30))
    gw.fake.enqueue(
        Reply(text=text, reset_after_chunks=4)
        if fault == "reset"
        else Reply(text=text, error_event_after_chunks=4)
    )
    if client == "openai":
        raw = await post_stream(
            gw.url + "/v1/chat/completions",
            {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            {"authorization": f"Bearer {GATEWAY_KEY}"},
        )
        frames = sse_data(raw)
        assert "[DONE]" not in frames and "choices" in frames[0]
        assert set(frames[-1]) == {"error"}
    else:
        raw = await post_stream(
            gw.url + "/v1/messages",
            {
                "model": MODEL,
                "max_tokens": 50,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
            {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"},
        )
        names = sse_event_names(raw)
        assert names[0] == "message_start" and names[-1] == "error" and "message_stop" not in names


# -- embeddings and token counts -------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_openai_embeddings_are_served_by_gemini(encoding: str) -> None:
    async with GeminiUpstream(api_key=KEY) as fake:
        config = settings(model("embed", "gemini", fake.url, KEY, upstream_model="gemini-embedding-001"))
        async with (
            serve(config) as url,
            openai.AsyncOpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0) as oai,
        ):
            kw: dict[str, Any] = {} if encoding == "base64" else {"encoding_format": "float"}
            result = await oai.embeddings.create(model="embed", input=["alpha", "beta"], dimensions=6, **kw)
    assert [len(d.embedding) for d in result.data] == [6, 6]
    assert [d.index for d in result.data] == [0, 1]
    assert fake.last.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in fake.last.json["requests"]] == ["alpha", "beta"]


async def test_anthropic_token_counts_are_counted_by_gemini(gw: Setup) -> None:
    gw.fake.enqueue(Reply(input_tokens=321))
    counted = await gw.ant.messages.count_tokens(
        model=MODEL,
        system="Be terse.",
        messages=[{"role": "user", "content": "hi"}],
        tools=[
            {"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}
        ],
    )
    assert counted.input_tokens == 321
    assert gw.fake.last.path == f"/v1beta/models/{UPSTREAM_MODEL}:countTokens"
    inner = gw.body["generateContentRequest"]
    assert inner["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
