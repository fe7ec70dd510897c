"""A token estimate for when no provider can count: no tokenizer, no network, documented.

About four characters make a token in English text and JSON, so the estimate is a quarter of
the characters of the system prompt, every message's text (tool calls as name plus arguments,
tool results, thinking, text documents) and the tool definitions as JSON, plus a few tokens of
framing per message. Images and binary documents cannot be measured without decoding them and
count a flat ``MEDIA_TOKENS`` each (about what a one-megapixel image costs).
"""

from __future__ import annotations

import orjson

from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
MEDIA_TOKENS = 1600


def _measure(part: Part) -> tuple[int, int]:
    """(characters, flat tokens) of one content part."""
    if isinstance(part, TextPart):
        return len(part.text), 0
    if isinstance(part, ToolCallPart):
        return len(part.name) + len(part.arguments), 0
    if isinstance(part, ThinkingPart):
        return len(part.text), 0
    if isinstance(part, ToolResultPart):
        chars = tokens = 0
        for inner in part.content:
            c, t = _measure(inner)
            chars, tokens = chars + c, tokens + t
        return chars, tokens
    if isinstance(part, DocumentPart) and part.text is not None:
        return len(part.text), 0
    if isinstance(part, ImagePart | DocumentPart):
        return 0, MEDIA_TOKENS
    return 0, 0


def estimate_input_tokens(req: ChatRequest) -> int:
    """The estimated prompt tokens of ``req`` (system, messages and tools); at least 1."""
    chars = 0
    flat = 0
    for message in req.messages:
        flat += MESSAGE_OVERHEAD
        for part in message.content:
            c, t = _measure(part)
            chars, flat = chars + c, flat + t
    for tool in req.tools:
        spec = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        chars += len(orjson.dumps(spec).decode())
    return max(1, -(-chars // CHARS_PER_TOKEN) + flat)
