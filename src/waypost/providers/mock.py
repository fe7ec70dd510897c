"""The built-in ``mock`` provider: deterministic answers for demos and tests, no network.

Behaviour (documented in docs/providers.md):
- With tools offered (and ``tool_choice`` not ``none``) and no tool result in the last user
  turn, it calls a tool: the named one for a forced choice, else the first; arguments are
  ``mock.tool_arguments`` or built from the tool's JSON schema.
- After a tool result it answers ``Tool <name> returned: <result text>``.
- Otherwise it answers ``mock.reply`` or echoes ``You said: <last user text>``.
Token counts are a documented estimate: one token per four characters, at least one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from waypost.core.events import StreamEvent, TextDelta, ToolArgsDelta, response_events
from waypost.core.types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from waypost.providers.base import CallContext, Deployment

NAME = "mock"


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _example_value(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return "mock"
    kind = schema.get("type")
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {name: _example_value(props.get(name)) for name in required if isinstance(props, dict)}
    if kind == "array":
        return [_example_value(schema.get("items"))]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    return "mock"


def _last_user(req: ChatRequest) -> Message | None:
    return next((m for m in reversed(req.messages) if m.role == "user"), None)


def _request_text(req: ChatRequest) -> str:
    return " ".join(p.text for m in req.messages for p in m.content if isinstance(p, TextPart))


class MockProvider:
    dialect = NAME

    def __init__(self, http: object = None) -> None:
        """The mock needs no network; it takes the shared client like every provider."""

    def _answer(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        mock = dep.settings.mock
        last = _last_user(req)
        results = [p for p in (last.content if last else []) if isinstance(p, ToolResultPart)]
        names = {p.id: p.name for m in req.messages for p in m.content if isinstance(p, ToolCallPart)}
        content: list[Part]
        if req.tools and not results and (req.tool_choice is None or req.tool_choice.mode != "none"):
            tool: Tool = req.tools[0]
            if req.tool_choice and req.tool_choice.mode == "tool":
                tool = next((t for t in req.tools if t.name == req.tool_choice.name), tool)
            args = mock.tool_arguments if mock.tool_arguments is not None else _example_value(tool.parameters)
            call = ToolCallPart(
                id=f"call_{uuid.uuid4().hex[:24]}", name=tool.name, arguments=orjson.dumps(args).decode()
            )
            content, finish = [call], FinishReason.TOOL_CALLS
        else:
            if results:
                text = " ".join(
                    f"Tool {names.get(r.tool_call_id, r.tool_call_id)} returned: {r.text()}" for r in results
                )
            elif mock.reply is not None:
                text = mock.reply
            else:
                text = f"You said: {last.text() if last else ''}"
            finish = FinishReason.STOP
            if req.max_tokens is not None and estimate_tokens(text) > req.max_tokens:
                text, finish = text[: req.max_tokens * 4], FinishReason.LENGTH
            content = [TextPart(text=text)]
        out_text = "".join(
            p.text if isinstance(p, TextPart) else p.arguments
            for p in content
            if isinstance(p, (TextPart, ToolCallPart))
        )
        usage = Usage(
            input_tokens=estimate_tokens(_request_text(req)), output_tokens=estimate_tokens(out_text)
        )
        return ChatResponse(
            id=f"mock-{uuid.uuid4().hex[:24]}",
            model=dep.upstream_model,
            content=content,
            finish_reason=finish,
            usage=usage,
        )

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        if dep.settings.mock.latency_ms:
            await asyncio.sleep(dep.settings.mock.latency_ms / 1000)
        return self._answer(req, dep)

    async def stream(
        self, req: ChatRequest, dep: Deployment, ctx: CallContext
    ) -> AsyncIterator[list[StreamEvent]]:
        mock = dep.settings.mock
        if mock.latency_ms:
            await asyncio.sleep(mock.latency_ms / 1000)
        for ev in response_events(self._answer(req, dep)):
            if isinstance(ev, (TextDelta, ToolArgsDelta)):
                text = ev.text if isinstance(ev, TextDelta) else ev.fragment
                for piece in _split(text, mock.chunks):
                    if mock.chunk_delay_ms:
                        await asyncio.sleep(mock.chunk_delay_ms / 1000)
                    yield [
                        TextDelta(ev.index, piece)
                        if isinstance(ev, TextDelta)
                        else ToolArgsDelta(ev.index, piece)
                    ]
            else:
                yield [ev]


def _split(text: str, chunks: int | None) -> list[str]:
    """Split into ``chunks`` pieces, or one piece per word (keeping the spaces)."""
    if not text:
        return [text]
    if chunks:
        size = max(1, -(-len(text) // chunks))
        return [text[i : i + size] for i in range(0, len(text), size)]
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
