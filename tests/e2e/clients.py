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


def responses_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", **t} for t in tools]


def responses_input(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Chat-style messages (OpenAI's shape) as the Responses API's ``instructions`` and input items."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    for m in messages:
        if "type" in m:  # already a Responses input item
            items.append(m)
            continue
        role, content = m["role"], m.get("content")
        if role == "system":
            instructions.append(content)
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": content})
        elif role == "assistant":
            if content:
                items.append({"role": "assistant", "content": content})
            for call in m.get("tool_calls") or []:
                fn = call["function"]
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": fn["name"],
                        "arguments": fn["arguments"],
                    }
                )
        else:
            items.append({"role": role, "content": content})
    return ("\n\n".join(instructions) or None), items


def response_answer(response: Any) -> Answer:
    """An ``Answer`` from a Responses API ``Response`` (the SDK's model)."""
    calls = [
        (i.call_id, i.name, json.loads(i.arguments)) for i in response.output if i.type == "function_call"
    ]
    thinking = [
        (
            "".join(s.text for s in i.summary) or "".join(c.text for c in i.content or []),
            i.encrypted_content,
        )
        for i in response.output
        if i.type == "reasoning"
    ]
    details = response.incomplete_details
    if response.status == "incomplete":
        finish = (
            "length" if details is not None and details.reason == "max_output_tokens" else "content_filter"
        )
    else:
        finish = "tool_calls" if calls else "stop"
    usage = response.usage
    return Answer(
        text=response.output_text,
        tool_calls=calls,
        finish=finish,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        thinking=thinking,
    )


async def ask_responses(
    client: openai.AsyncOpenAI, model: str, messages: list[dict[str, Any]], *, stream: bool, **kw: Any
) -> Answer:
    """The conversation sent as a Responses API request (``client.responses``); ``messages`` are
    chat-style, or Responses input items already."""
    instructions, items = responses_input(messages)
    if instructions is not None:
        kw.setdefault("instructions", instructions)
    if "tools" in kw:
        kw["tools"] = responses_tools(kw["tools"])
    if "max_tokens" in kw:
        kw["max_output_tokens"] = kw.pop("max_tokens")
    kw.setdefault("store", False)
    if stream:
        async with client.responses.stream(model=model, input=items, **kw) as s:  # type: ignore[arg-type]
            async for _ in s:
                pass
            response = await s.get_final_response()
    else:
        response = await client.responses.create(model=model, input=items, **kw)  # type: ignore[arg-type]
    return response_answer(response)
