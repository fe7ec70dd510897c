"""Conformance scenarios: one function each, run for every (client format x provider) pair."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import openai

from tests.conformance.targets import Support, Target, View
from tests.e2e.clients import TOOL, Answer, ask_anthropic, ask_openai, ask_responses, response_answer
from tests.fakes import FakeUpstream, Reply

MODEL = "conformance-model"
SHORT_TIMEOUT_MODEL = "conformance-model-short-timeout"  # waits 0.5 s for the first byte
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").decode()
SIGNATURE = "EqQBCkgIARABGAIiQGx3cA=="  # signatures are base64 bytes on every wire


@dataclass
class Session:
    client: str  # "openai", "anthropic" or "responses" (OpenAI's Responses API)
    target: Target
    fake: FakeUpstream
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic

    async def ask(
        self, messages: list[dict[str, Any]], *, stream: bool = False, model: str = MODEL, **kw: Any
    ) -> Answer:
        if self.client == "openai":
            return await ask_openai(self.openai, model, messages, stream=stream, **kw)
        if self.client == "responses":
            return await ask_responses(self.openai, model, messages, stream=stream, **kw)
        return await ask_anthropic(self.anthropic, model, messages, stream=stream, **kw)

    def view(self) -> View:
        body = self.fake.last.json
        assert isinstance(body, dict), "the upstream got no JSON body"
        return self.target.view(body)

    def reply(self, *replies: Reply) -> None:
        self.fake.enqueue(*replies)

    def error(self) -> type[Exception]:
        return anthropic.APIStatusError if self.client == "anthropic" else openai.APIStatusError

    def supports(self, scenario: str) -> Support:
        return self.target.supports(scenario, self.client)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


Run = Callable[[Session], Awaitable[None]]


CLIENTS = ("openai", "anthropic", "responses")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Run
    clients: tuple[str, ...] = CLIENTS  # the client formats that can express it


SCENARIOS: list[Scenario] = []


def scenario(name: str, title: str, clients: tuple[str, ...] = CLIENTS) -> Callable[[Run], Run]:
    def register(fn: Run) -> Run:
        SCENARIOS.append(Scenario(name, title, fn, clients))
        return fn

    return register


@scenario("text", "Text answer")
async def _text(s: Session) -> None:
    s.reply(Reply(text="Plain answer."))
    answer = await s.ask([user("hi")])
    assert answer.text == "Plain answer."
    assert answer.finish == "stop"
    assert answer.input_tokens > 0 and answer.output_tokens > 0


@scenario("text_stream", "Streamed text")
async def _text_stream(s: Session) -> None:
    s.reply(Reply(text="one two three four five", chunks=5))
    answer = await s.ask([user("count")], stream=True)
    assert answer.text == "one two three four five"
    assert answer.finish == "stop"
    assert answer.output_tokens > 0


@scenario("system", "System prompt")
async def _system(s: Session) -> None:
    if s.client == "openai":
        await s.ask([{"role": "system", "content": "Be terse."}, user("hi")])
    elif s.client == "responses":
        await s.ask([user("hi")], instructions="Be terse.")
    else:
        await s.ask([user("hi")], system="Be terse.")
    assert "Be terse." in s.view().system


@scenario("multi_turn", "Multi-turn history")
async def _multi_turn(s: Session) -> None:
    await s.ask([user("first"), {"role": "assistant", "content": "noted"}, user("second")])
    view = s.view()
    assert view.user_texts == ["first", "second"]
    assert [r for r in view.roles if r != "system"] == ["user", "assistant", "user"]


@scenario("tool_call", "Tool call")
async def _tool_call(s: Session) -> None:
    s.reply(Reply(tool_calls=[("call_conf_1", "get_weather", {"city": "Paris", "days": 2})]))
    answer = await s.ask([user("weather?")], tools=[TOOL])
    assert [(n, a) for _, n, a in answer.tool_calls] == [("get_weather", {"city": "Paris", "days": 2})]
    assert answer.finish == "tool_calls"
    assert s.view().tool_names == ["get_weather"]


@scenario("tool_call_stream", "Streamed tool call")
async def _tool_call_stream(s: Session) -> None:
    s.reply(Reply(tool_calls=[("call_conf_2", "get_weather", {"city": "Rome", "unit": "celsius"})]))
    answer = await s.ask([user("weather?")], tools=[TOOL], stream=True)
    assert [(n, a) for _, n, a in answer.tool_calls] == [("get_weather", {"city": "Rome", "unit": "celsius"})]
    assert answer.finish == "tool_calls"


@scenario("parallel_tool_calls", "Parallel tool calls")
async def _parallel(s: Session) -> None:
    s.reply(
        Reply(
            tool_calls=[
                ("call_a", "get_weather", {"city": "Oslo"}),
                ("call_b", "get_weather", {"city": "Lima"}),
            ]
        )
    )
    answer = await s.ask([user("both?")], tools=[TOOL], stream=True)
    assert [a["city"] for _, _, a in answer.tool_calls] == ["Oslo", "Lima"]
    assert len({i for i, _, _ in answer.tool_calls}) == 2


@scenario("tool_result", "Tool result, then answer")
async def _tool_result(s: Session) -> None:
    s.reply(Reply(tool_calls=[("call_conf_3", "get_weather", {"city": "Paris"})]))
    first = await s.ask([user("weather?")], tools=[TOOL])
    call_id, name, args = first.tool_calls[0]
    s.reply(Reply(text="Sunny in Paris."))
    if s.client == "openai":
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": '{"city": "Paris"}'},
        }
        history = [
            user("weather?"),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21C"},
        ]
    elif s.client == "responses":
        history = [
            user("weather?"),
            {"type": "function_call", "call_id": call_id, "name": name, "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": call_id, "output": "sunny, 21C"},
        ]
    else:
        history = [
            user("weather?"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": call_id, "name": name, "input": args}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 21C"}],
            },
        ]
    answer = await s.ask(history, tools=[TOOL])
    assert answer.text == "Sunny in Paris."
    assert s.view().tool_results == ["sunny, 21C"]


@scenario("image_base64", "Image (base64)")
async def _image(s: Session) -> None:
    if s.client == "openai":
        image: dict[str, Any] = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    elif s.client == "responses":
        image = {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"}
    else:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    text = {"type": "input_text" if s.client == "responses" else "text", "text": "what is it?"}
    await s.ask([{"role": "user", "content": [text, image]}])
    assert s.view().images == 1


@scenario("document_pdf", "PDF document")
async def _document(s: Session) -> None:
    if s.client == "openai":
        doc: dict[str, Any] = {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        }
    elif s.client == "responses":
        doc = {"type": "input_file", "filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}
    else:
        doc = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
    text = {"type": "input_text" if s.client == "responses" else "text", "text": "summarise"}
    await s.ask([{"role": "user", "content": [text, doc]}])
    assert s.view().documents == 1


@scenario("thinking_signature", "Thinking with signature, round trip")
async def _thinking(s: Session) -> None:
    """The reasoning reaches the client with its signature(s), and replaying the assistant turn
    as the client received it brings the signature back to the upstream."""
    s.reply(Reply(text="42.", thinking=("Let me think about it.", SIGNATURE)))
    # Providers without signed thinking (OpenAI-compatible servers) carry the text alone.
    signed = s.supports("thinking_signature").level == "yes"
    if s.client == "responses":
        options: dict[str, Any] = {
            "reasoning": {"effort": "low", "summary": "auto"},
            "include": ["reasoning.encrypted_content"],
            "store": False,
        }
        response = await s.openai.responses.create(model=MODEL, input=[user("meaning?")], **options)
        answer = response_answer(response)
        assert any(text == "Let me think about it." for text, _ in answer.thinking)
        if not signed:
            return
        signatures = [sig for _, sig in answer.thinking if sig]
        replay = [item.model_dump(exclude_none=True) for item in response.output]
        history = [user("meaning?"), *replay, user("why?")]
        await s.openai.responses.create(model=MODEL, input=history, **options)  # type: ignore[arg-type]
    elif s.client == "anthropic":
        thinking = {"type": "enabled", "budget_tokens": 2048}
        message = await s.anthropic.messages.create(
            model=MODEL,
            max_tokens=4096,
            thinking=thinking,
            messages=[user("meaning?")],  # type: ignore[arg-type]
        )
        blocks = [b for b in message.content if b.type == "thinking"]
        assert any(b.thinking == "Let me think about it." for b in blocks)
        signatures = [b.signature for b in blocks if b.signature]
        replay = [b.model_dump(exclude_none=True) for b in message.content]
        history = [user("meaning?"), {"role": "assistant", "content": replay}, user("why?")]
        if not signed:
            return
        await s.anthropic.messages.create(model=MODEL, max_tokens=4096, thinking=thinking, messages=history)  # type: ignore[arg-type]
    else:
        completion = await s.openai.chat.completions.create(
            model=MODEL, messages=[user("meaning?")], reasoning_effort="low"
        )  # type: ignore[arg-type]
        message = completion.choices[0].message
        extra = message.model_extra or {}
        assert extra.get("reasoning_content") == "Let me think about it."
        if not signed:
            return
        thinking_blocks = extra.get("thinking_blocks") or []
        signatures = [b["signature"] for b in thinking_blocks if b.get("signature")]
        replayed = {"role": "assistant", "content": message.content, **extra}
        history = [user("meaning?"), replayed, user("why?")]
        await s.openai.chat.completions.create(model=MODEL, messages=history, reasoning_effort="low")  # type: ignore[arg-type]
    assert signatures, "no signature reached the client"
    # Some providers wrap signatures in an envelope on our side (Gemini: "gemini:<part>:<sig>").
    received = s.view().signatures
    assert all(any(sig == r or sig.endswith(":" + r) for r in received) for sig in signatures)


@scenario("json_schema", "JSON output (schema)")
async def _json_schema(s: Session) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    s.reply(Reply(text='{"answer": "yes"}'))
    if s.client == "openai":
        fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
        answer = await s.ask([user("json please")], response_format=fmt)
    elif s.client == "responses":
        text = {"format": {"type": "json_schema", "name": "reply", "schema": schema}}
        answer = await s.ask([user("json please")], text=text)
    else:
        extra = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
        answer = await s.ask([user("json please")], extra_body=extra)
    assert answer.text == '{"answer": "yes"}'
    assert s.view().json_mode


@scenario("json_object", "JSON mode (any object)")
async def _json_object(s: Session) -> None:
    s.reply(Reply(text='{"ok": true}'))
    if s.client == "openai":
        await s.ask([user("json")], response_format={"type": "json_object"})
    elif s.client == "responses":  # the Responses API wants the word JSON in the input for this mode
        await s.ask([user("json")], text={"format": {"type": "json_object"}})
    else:  # Anthropic clients have no json_object: they ask in words, which must simply pass
        await s.ask([user("Answer with a JSON object.")])
        return
    assert s.view().json_mode


@scenario("stop_length", "Max tokens reached")
async def _length(s: Session) -> None:
    s.reply(Reply(text="cut", finish_reason=s.target.finish_length))
    limit = 16 if s.client == "responses" else 5  # the Responses API takes no fewer than 16
    answer = await s.ask([user("long story")], max_tokens=limit)
    assert answer.finish == "length"
    assert s.view().max_tokens == limit


# The Responses API has no stop sequences.
@scenario("stop_sequences", "Stop sequences", clients=("openai", "anthropic"))
async def _stop(s: Session) -> None:
    if s.client == "openai":
        await s.ask([user("count")], stop=["END"])
    else:
        await s.ask([user("count")], stop_sequences=["END"])
    assert s.view().stop == ["END"]


@scenario("usage_cache", "Usage with cache reads")
async def _usage(s: Session) -> None:
    # Each fake takes usage in its own convention; the client must see all prompt tokens as input.
    if s.target.name in ("anthropic", "bedrock"):
        s.reply(Reply(text="ok", input_tokens=200, output_tokens=7, cache_read_tokens=800))
    else:
        s.reply(Reply(text="ok", input_tokens=1000, output_tokens=7, cache_read_tokens=800))
    answer = await s.ask([user("hi")])
    assert answer.input_tokens == 1000
    assert answer.output_tokens == 7


@scenario("error_rate_limit", "Rate limit: 429 with Retry-After")
async def _rate_limit(s: Session) -> None:
    s.reply(Reply(status=429, retry_after="21"))
    try:
        await s.ask([user("hi")])
    except s.error() as err:
        assert err.status_code == 429  # type: ignore[attr-defined]
        assert err.response.headers.get("retry-after") == "21"  # type: ignore[attr-defined]
    else:
        raise AssertionError("no error")


@scenario("error_overload", "Overload: 503 (OpenAI) / 529 (Anthropic)")
async def _overload(s: Session) -> None:
    s.reply(Reply(status=s.target.overload_status))
    try:
        await s.ask([user("hi")])
    except s.error() as err:
        assert err.status_code == (529 if s.client == "anthropic" else 503)  # type: ignore[attr-defined]
    else:
        raise AssertionError("no error")


@scenario("error_bad_request", "Upstream 400 stays a 400")
async def _bad_request(s: Session) -> None:
    s.reply(Reply(status=400, error_message="invalid parameter foo"))
    try:
        await s.ask([user("hi")])
    except s.error() as err:
        assert err.status_code == 400  # type: ignore[attr-defined]
        assert "invalid parameter foo" in str(err)
    else:
        raise AssertionError("no error")


@scenario("error_upstream_failure", "Upstream 500 becomes a 502")
async def _server_error(s: Session) -> None:
    s.reply(Reply(status=500))
    try:
        await s.ask([user("hi")])
    except s.error() as err:
        assert err.status_code == 502  # type: ignore[attr-defined]
    else:
        raise AssertionError("no error")


@scenario("error_upstream_auth", "Upstream refuses the gateway's key: 502, provider text withheld")
async def _upstream_auth(s: Session) -> None:
    s.reply(Reply(status=401, error_message="bad key sk-secret-123"))
    try:
        await s.ask([user("hi")])
    except s.error() as err:
        assert err.status_code == 502  # type: ignore[attr-defined]
        assert "sk-secret-123" not in str(err)
    else:
        raise AssertionError("no error")


@scenario("error_timeout", "Upstream timeout: 504")
async def _timeout(s: Session) -> None:
    s.reply(Reply(latency_s=1.5))
    try:
        await s.ask([user("hi")], model=SHORT_TIMEOUT_MODEL)
    except s.error() as err:
        assert err.status_code == 504  # type: ignore[attr-defined]
    else:
        raise AssertionError("no error")
