"""The built-in ``mock`` provider: deterministic answers for demos and tests, no network.

Behaviour (documented in docs/providers.md):
- With tools offered (and ``tool_choice`` not ``none``) and no tool result in the last user
  turn, it calls a tool: the named one for a forced choice, else the first; arguments are
  ``mock.tool_arguments`` or built from the tool's JSON schema.
- After a tool result it answers ``Tool <name> returned: <result text>``.
- Otherwise it answers ``mock.reply``; in JSON mode, an example of the requested schema (or
  ``{"answer": <last user text>}``); else it echoes ``You said: <last user text>``.
Token counts are a documented estimate: one token per four characters, at least one;
``count_tokens`` answers the same number a completion of the request reports as input.
Embeddings are deterministic: each text's vector (``dimensions`` long, default 16) is derived
from the SHA-256 of the text, scaled to unit length and exact in float32, so equal texts get
equal vectors and different texts different ones; token-id inputs hash their ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest
from waypost.core.events import StreamEvent, TextDelta, ToolArgsDelta, response_events
from waypost.core.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from waypost.providers.base import Deployment

NAME = "mock"
EMBEDDING_DIMENSIONS = 16
MAX_EMBEDDING_DIMENSIONS = 4096


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def embedding_vector(key: bytes, dimensions: int) -> list[float]:
    """A unit vector derived from ``key``: SHA-256 in counter mode, two bytes per value."""
    raw = b"".join(
        hashlib.sha256(counter.to_bytes(4, "big") + key).digest() for counter in range(-(-dimensions // 16))
    )
    values = [v / 32767.5 - 1.0 for v in struct.unpack(f">{dimensions}H", raw[: dimensions * 2])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Rounded through float32 so the base64 encoding carries exactly these values.
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in values))))


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
            elif req.response_format is not None and req.response_format.type != "text":
                # JSON mode gets JSON: an example of the schema, or the echo wrapped in an object.
                fmt = req.response_format
                example = (
                    _example_value(fmt.schema) if fmt.schema else {"answer": last.text() if last else ""}
                )
                text = orjson.dumps(example).decode()
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

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> ChatResponse:
        if dep.settings.mock.latency_ms:
            await asyncio.sleep(dep.settings.mock.latency_ms / 1000)
        return self._answer(req, dep)

    async def count_tokens(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> int:
        return estimate_tokens(_request_text(req))

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: RequestContext) -> EmbeddingResponse:
        if dep.settings.mock.latency_ms:
            await asyncio.sleep(dep.settings.mock.latency_ms / 1000)
        dimensions = req.dimensions or EMBEDDING_DIMENSIONS
        if dimensions > MAX_EMBEDDING_DIMENSIONS:
            raise BadRequest(
                f"The mock makes embeddings of at most {MAX_EMBEDDING_DIMENSIONS} dimensions.",
                param="dimensions",
            )
        if req.token_inputs is not None:
            keys = [" ".join(map(str, tokens)).encode() for tokens in req.token_inputs]
            tokens = sum(len(t) for t in req.token_inputs)
        else:
            keys = [text.encode() for text in req.inputs]
            tokens = sum(estimate_tokens(text) for text in req.inputs)
        return EmbeddingResponse(
            model=dep.upstream_model,
            vectors=[embedding_vector(key, dimensions) for key in keys],
            usage=Usage(input_tokens=tokens),
        )

    async def stream(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
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
    """Split into ``chunks`` pieces whose lengths differ by at most one character (one piece per
    character when the text is shorter: an empty delta is never sent), or, with no ``chunks``,
    one piece per word (keeping the spaces)."""
    if not text:
        return [text]
    if chunks:
        count = min(chunks, len(text))
        size, longer = divmod(len(text), count)
        bounds = [k * size + min(k, longer) for k in range(count + 1)]
        return [text[bounds[k] : bounds[k + 1]] for k in range(count)]
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
