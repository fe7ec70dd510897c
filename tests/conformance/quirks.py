"""Conformance cells for the quirks of OpenAI-compatible servers: one case per quirk the fake
OpenAI server reproduces (``tests/fakes/openai_quirks.py``), run from both client formats, streamed
and not, through a real gateway to a model that shows that quirk alone.

Every answer is read with the official SDKs validating strictly; an OpenAI client's stream is also
checked chunk by chunk against the shape OpenAI's own API sends (``assert_openai_shape``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
from openai.types.chat import ChatCompletionChunk

from tests.e2e.clients import TOOL, Answer, ask_anthropic, ask_openai, openai_tools
from tests.fakes import OpenAIUpstream, Reply
from tests.fakes import openai_quirks as q
from waypost.metering.estimate import estimate_tokens

LONG_TEXT = " ".join(f"word{i}" for i in range(40))
LIMIT = 5
WEATHER = [("call_q_1", "get_weather", {"city": "Paris"}), ("call_q_2", "get_weather", {"city": "Lima"})]


@dataclass
class QuirkSession:
    quirk: str
    client: str  # "openai" or "anthropic"
    stream: bool
    model: str
    fake: OpenAIUpstream
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic
    chunks: list[ChatCompletionChunk] = field(default_factory=list)  # an OpenAI client's stream

    async def ask(self, text: str, **kw: Any) -> Answer:
        messages = [{"role": "user", "content": text}]
        if self.client == "anthropic":
            return await ask_anthropic(self.anthropic, self.model, messages, stream=self.stream, **kw)
        if not self.stream:
            return await ask_openai(self.openai, self.model, messages, stream=False, **kw)
        return await self._openai_stream(messages, **kw)

    def limit_field(self) -> str:
        """The one field of the two that the quirky server honours."""
        return "max_completion_tokens" if self.quirk == q.MAX_COMPLETION_TOKENS_ONLY else "max_tokens"

    async def _openai_stream(self, messages: list[dict[str, Any]], **kw: Any) -> Answer:
        """A stream read chunk by chunk (kept in ``chunks``), folded as the SDK's helper does."""
        if "tools" in kw:
            kw["tools"] = openai_tools(kw["tools"])
        stream = await self.openai.chat.completions.create(
            model=self.model, messages=messages, stream=True, stream_options={"include_usage": True}, **kw
        )  # type: ignore[call-overload]
        async for chunk in stream:
            self.chunks.append(chunk)
        assert_openai_shape(self.chunks)
        text, finish, calls = "", "", {}
        for chunk in self.chunks:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for call in choice.delta.tool_calls or []:
                    known = calls.setdefault(call.index, ["", "", ""])
                    known[0] += call.id or ""
                    known[1] += call.function.name or "" if call.function else ""
                    known[2] += call.function.arguments or "" if call.function else ""
        usage = self.chunks[-1].usage
        return Answer(
            text=text,
            tool_calls=[(i, n, json.loads(a)) for i, n, a in calls.values()],
            finish=finish,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        )


def assert_openai_shape(chunks: list[ChatCompletionChunk]) -> None:
    """What OpenAI's own API sends: every chunk has a choice but the last, which carries the
    usage and nothing else; a tool call's id, type and name come once, on its first delta, then
    only arguments; no legacy ``function_call``."""
    assert chunks, "no chunk"
    *body, last = chunks
    assert last.usage is not None and last.choices == [], "the usage chunk is not the last one"
    opened: set[int] = set()
    for chunk in body:
        assert chunk.choices, "a chunk without choices"
        assert chunk.usage is None, "usage on a chunk with choices"
        assert chunk.id and chunk.model, "a chunk without id or model"
        delta = chunk.choices[0].delta
        assert delta.function_call is None, "a legacy function_call beside tool_calls"
        for call in delta.tool_calls or []:
            if call.index in opened:
                assert call.id is None and call.type is None, "a call's id repeated"
                assert call.function is None or call.function.name is None, "a call's name repeated"
            else:
                assert call.id and call.type == "function", "a call's first delta without id"
                assert call.function is not None and call.function.name, "a call's first delta without name"
                opened.add(call.index)
    finishes = [c for c in body if c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] is body[-1], "the finish is not on the last chunk before usage"


QuirkRun = Callable[[QuirkSession], Awaitable[None]]


@dataclass(frozen=True)
class QuirkCase:
    quirk: str  # the fake's quirk (tests/fakes/openai_quirks.py)
    title: str
    run: QuirkRun
    entry: dict[str, Any] = field(default_factory=dict)  # more settings of the gateway's model


async def _token_limit(s: QuirkSession) -> None:
    s.fake.enqueue(Reply(text=LONG_TEXT))
    taken = s.limit_field()
    other = "max_completion_tokens" if taken == "max_tokens" else "max_tokens"
    if s.client == "openai":
        # The spelling such a server ignores, or refuses: the gateway renames it.
        answer = await s.ask("tell a long story", **{other: LIMIT})
    else:
        answer = await s.ask("tell a long story", max_tokens=LIMIT)
    assert answer.finish == "length"
    assert len(answer.text.split()) <= LIMIT and 0 < answer.output_tokens <= LIMIT
    received = s.fake.last.json
    assert received[taken] == LIMIT and other not in received


async def _tool_calls(s: QuirkSession) -> None:
    s.fake.enqueue(Reply(tool_calls=WEATHER))
    answer = await s.ask("weather in Paris and Lima?", tools=[TOOL])
    assert [(name, args) for _, name, args in answer.tool_calls] == [(n, a) for _, n, a in WEATHER]
    assert [call_id for call_id, _, _ in answer.tool_calls] == [c for c, _, _ in WEATHER]
    assert answer.finish == "tool_calls"


async def _text(s: QuirkSession) -> None:
    s.fake.enqueue(Reply(text="one two three", input_tokens=11, output_tokens=3))
    answer = await s.ask("count")
    assert (answer.text, answer.finish) == ("one two three", "stop")
    assert (answer.input_tokens, answer.output_tokens) == (11, 3)


async def _counted(s: QuirkSession) -> None:
    """No usage from the upstream: the gateway counts it (this family has no tokenizer here, so
    the estimate) and reports it where the client's format puts usage."""
    s.fake.enqueue(Reply(text="one two three"))
    answer = await s.ask("count")
    assert (answer.text, answer.finish) == ("one two three", "stop")
    assert answer.output_tokens == estimate_tokens(["one two three"])
    assert answer.input_tokens >= estimate_tokens(["count"])


async def _reasoning(s: QuirkSession) -> None:
    s.fake.enqueue(Reply(text="42.", thinking=("Six times seven.", "")))
    if s.client == "anthropic":
        kw: dict[str, Any] = {"max_tokens": 4096, "messages": [{"role": "user", "content": "why?"}]}
        thinking = {"type": "enabled", "budget_tokens": 2048}
        if s.stream:
            async with s.anthropic.messages.stream(model=s.model, thinking=thinking, **kw) as events:  # type: ignore[arg-type]
                message = await events.get_final_message()
        else:
            message = await s.anthropic.messages.create(model=s.model, thinking=thinking, **kw)  # type: ignore[arg-type]
        assert [b.thinking for b in message.content if b.type == "thinking"] == ["Six times seven."]
        return
    messages: Any = [{"role": "user", "content": "why?"}]
    if s.stream:
        await s._openai_stream(messages)
        deltas = [c.choices[0].delta.model_extra or {} for c in s.chunks if c.choices]
        assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Six times seven."
        assert not any("reasoning" in d for d in deltas)
        return
    completion = await s.openai.chat.completions.create(model=s.model, messages=messages)
    extra = completion.choices[0].message.model_extra or {}
    assert extra.get("reasoning_content") == "Six times seven." and "reasoning" not in extra


QUIRK_CASES: list[QuirkCase] = [
    QuirkCase(
        q.MAX_TOKENS_ONLY, "Knows only `max_tokens` (llama.cpp, older vLLM and TGI, LM Studio)", _token_limit
    ),
    QuirkCase(
        q.MAX_COMPLETION_TOKENS_ONLY,
        "Refuses `max_tokens` (OpenAI's reasoning models; a model set to `max_tokens_field: max_completion_tokens`)",
        _token_limit,
        {"max_tokens_field": "max_completion_tokens"},
    ),
    QuirkCase(
        q.REPEATED_TOOL_IDENTITY, "Tool call's id and name repeated in every delta (llama.cpp)", _tool_calls
    ),
    QuirkCase(q.FUNCTION_CALL_MIRROR, "Legacy `function_call` beside `tool_calls` (llama.cpp)", _tool_calls),
    QuirkCase(q.TOOL_DELTAS_WITHOUT_INDEX, "Tool-call deltas without `index`", _tool_calls),
    QuirkCase(q.WHOLE_TOOL_CALL, "Each tool call whole in one delta", _tool_calls),
    QuirkCase(q.EMPTY_CHOICES_CHUNKS, "Chunks with empty `choices` and no usage (Azure)", _text),
    QuirkCase(q.FINISH_AFTER_USAGE, "`finish_reason` on a chunk after the usage chunk", _text),
    QuirkCase(q.REASONING_FIELD, "Reasoning text as `reasoning`, not `reasoning_content`", _reasoning),
    QuirkCase(q.USAGE_ON_EVERY_CHUNK, "Usage on every chunk, no usage chunk of its own", _text),
    QuirkCase(q.NO_USAGE, "No usage at all: `include_usage` ignored, none in bodies (llama.cpp)", _counted),
]
