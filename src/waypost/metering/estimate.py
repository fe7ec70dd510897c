"""A token estimate for when no provider can count: no tokenizer, no network, documented.

About four characters make a token in English text, code and JSON, so the estimate is a quarter
of the characters of the system prompt, every message's text (tool calls as name plus arguments,
tool results, thinking, text documents) and the tool definitions as JSON, plus a few tokens of
framing per message. Chinese, Japanese and Korean characters are about one token each, so each
counts one (a quarter of their characters undercounts such text by half). Images and binary
documents cannot be measured without decoding them and count a flat ``MEDIA_TOKENS`` each (about
what a one-megapixel image costs).

``prompt_text`` gathers those texts once, for this estimate and for a real tokenizer
(``metering.tokenizer``); docs/usage.md gives the estimate's measured error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

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
# Han, kana, Hangul, CJK punctuation and full-width forms: about one token per character.
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


@dataclass(slots=True)
class PromptText:
    """What of a request counts as prompt: its texts, how many messages frame them, and how
    many images or binary documents (which have no text to count)."""

    texts: list[str] = field(default_factory=list)
    messages: int = 0
    media: int = 0


def _gather(part: Part, out: PromptText) -> None:
    """Add one content part's texts (or its media) to ``out``."""
    if isinstance(part, TextPart | ThinkingPart):
        out.texts.append(part.text)
    elif isinstance(part, ToolCallPart):
        out.texts += (part.name, part.arguments)
    elif isinstance(part, ToolResultPart):
        for inner in part.content:
            _gather(inner, out)
    elif isinstance(part, DocumentPart) and part.text is not None:
        out.texts.append(part.text)
    elif isinstance(part, ImagePart | DocumentPart):
        out.media += 1


def prompt_text(req: ChatRequest) -> PromptText:
    """The texts of ``req`` a model reads: system, messages and tool definitions (as JSON)."""
    out = PromptText()
    for message in req.messages:
        out.messages += 1
        for part in message.content:
            _gather(part, out)
    for tool in req.tools:
        spec = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        out.texts.append(orjson.dumps(spec).decode())
    return out


def estimate_tokens(texts: Iterable[str]) -> int:
    """A quarter of the characters of ``texts`` (rounded up), CJK characters one token each."""
    chars = cjk = 0
    for text in texts:
        chars += len(text)
        if not text.isascii():
            cjk += len(_CJK.findall(text))
    return -(-(chars - cjk) // CHARS_PER_TOKEN) + cjk


def estimate_input_tokens(req: ChatRequest) -> int:
    """The estimated prompt tokens of ``req`` (system, messages and tools); at least 1."""
    if not req.tools:  # the common prompt, text alone, counted without gathering it first
        chars = cjk = 0
        for message in req.messages:
            for part in message.content:
                if type(part) is not TextPart:
                    break
                text = part.text
                chars += len(text)
                if not text.isascii():
                    cjk += len(_CJK.findall(text))
            else:
                continue
            break  # a part of another kind: gathered below
        else:
            tokens = -(-(chars - cjk) // CHARS_PER_TOKEN) + cjk
            return max(1, tokens + len(req.messages) * MESSAGE_OVERHEAD)
    prompt = prompt_text(req)
    return max(
        1, estimate_tokens(prompt.texts) + prompt.messages * MESSAGE_OVERHEAD + prompt.media * MEDIA_TOKENS
    )
