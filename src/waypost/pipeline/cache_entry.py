"""A cached answer as stored: the canonical response (so it replays into any client format,
streamed or not), its usage, and what the upstream call cost (a hit's saving).

JSON, versioned; an entry that does not decode (another layout, corrupted) is a miss. Only
answers made of text, tool calls and thinking are stored: a part of another kind (an image the
model drew) makes the answer uncacheable rather than replayed without it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from waypost.core.types import ChatResponse, FinishReason, Part, TextPart, ThinkingPart, ToolCallPart, Usage

LAYOUT = 1
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_write_1h_tokens",
)


@dataclass(frozen=True, slots=True)
class Entry:
    response: ChatResponse
    cost_micros: int  # what the upstream call cost: what each hit saves
    stored_at: float  # Unix time


def encode_entry(resp: ChatResponse, usage: Usage, cost_micros: int) -> bytes | None:
    """The bytes to store for an answer, or None when it holds a part the cache cannot replay."""
    content: list[dict[str, Any]] = []
    for part in resp.content:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCallPart):
            content.append(
                {"type": "tool_call", "id": part.id, "name": part.name, "arguments": part.arguments}
            )
        elif isinstance(part, ThinkingPart):
            content.append(
                {
                    "type": "thinking",
                    "text": part.text,
                    "signature": part.signature,
                    "redacted": part.redacted,
                    "data": part.data,
                }
            )
        else:
            return None
    return orjson.dumps(
        {
            "layout": LAYOUT,
            "model": resp.model,
            "content": content,
            "finish_reason": resp.finish_reason.value if resp.finish_reason is not None else None,
            "stop_sequence": resp.stop_sequence,
            "usage": {name: getattr(usage, name) for name in _USAGE_FIELDS},
            "cost_micros": cost_micros,
            "stored_at": time.time(),
        }
    )


def decode_entry(data: bytes) -> Entry | None:
    """The stored answer, or None when ``data`` is not an entry of this layout."""
    try:
        doc = orjson.loads(data)
        if not isinstance(doc, dict) or doc.get("layout") != LAYOUT:
            return None
        content: list[Part] = []
        for part in doc["content"]:
            kind = part["type"]
            if kind == "text":
                content.append(TextPart(text=str(part["text"])))
            elif kind == "tool_call":
                content.append(
                    ToolCallPart(id=str(part["id"]), name=str(part["name"]), arguments=str(part["arguments"]))
                )
            elif kind == "thinking":
                content.append(
                    ThinkingPart(
                        text=str(part["text"]),
                        signature=part["signature"],
                        redacted=bool(part["redacted"]),
                        data=part["data"],
                    )
                )
            else:
                return None
        finish = doc["finish_reason"]
        usage = Usage(**{name: int(doc["usage"].get(name, 0)) for name in _USAGE_FIELDS})
        response = ChatResponse(
            id="",
            model=str(doc["model"]),
            content=content,
            finish_reason=FinishReason(finish) if finish is not None else None,
            stop_sequence=doc["stop_sequence"],
            usage=usage,
        )
        return Entry(response, int(doc["cost_micros"]), float(doc["stored_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
