"""One call shape for both SDKs: send a conversation, get back text, tool calls, finish and usage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai

FINISH_FROM_ANTHROPIC = {
    "end_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "stop_sequence": "stop",
}


@dataclass
class Answer:
    text: str
    tool_calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (id, name, parsed arguments)
    finish: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thinking: list[tuple[str, str | None]] = field(default_factory=list)


TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": t} for t in tools]


def anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in tools
    ]


async def ask_openai(
    client: openai.AsyncOpenAI, model: str, messages: list[dict[str, Any]], *, stream: bool, **kw: Any
) -> Answer:
    if "tools" in kw:
        kw["tools"] = openai_tools(kw["tools"])
    if stream:
        async with client.chat.completions.stream(
            model=model,
            messages=messages,
            stream_options={"include_usage": True},
            **kw,  # type: ignore[arg-type]
        ) as s:
            async for _ in s:
                pass
            try:
                completion = await s.get_final_completion()
            except openai.LengthFinishReasonError as err:  # the helper refuses to "parse" a cut answer
                completion = err.completion
    else:
        completion = await client.chat.completions.create(model=model, messages=messages, **kw)  # type: ignore[arg-type]
    choice = completion.choices[0]
    calls = [
        (c.id, c.function.name, json.loads(c.function.arguments))  # type: ignore[union-attr]
        for c in (choice.message.tool_calls or [])
    ]
    usage = completion.usage
    return Answer(
        text=choice.message.content or "",
        tool_calls=calls,
        finish=choice.finish_reason,
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
    )


async def ask_anthropic(
    client: anthropic.AsyncAnthropic, model: str, messages: list[dict[str, Any]], *, stream: bool, **kw: Any
) -> Answer:
    if "tools" in kw:
        kw["tools"] = anthropic_tools(kw["tools"])
    kw.setdefault("max_tokens", 512)
    if stream:
        async with client.messages.stream(model=model, messages=messages, **kw) as s:  # type: ignore[arg-type]
            async for _ in s:
                pass
            message = await s.get_final_message()
    else:
        message = await client.messages.create(model=model, messages=messages, **kw)  # type: ignore[arg-type]
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    thinking = [(b.thinking, b.signature) for b in message.content if b.type == "thinking"]
    usage = message.usage
    cache = (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    return Answer(
        text=text,
        tool_calls=calls,
        finish=FINISH_FROM_ANTHROPIC.get(message.stop_reason or "", message.stop_reason or ""),
        input_tokens=usage.input_tokens + cache,
        output_tokens=usage.output_tokens,
        thinking=thinking,
    )
