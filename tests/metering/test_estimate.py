"""The token estimate used where no provider counts: a quarter of the characters, plus framing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)
from waypost.metering.estimate import (
    MEDIA_TOKENS,
    MESSAGE_OVERHEAD,
    estimate_input_tokens,
    estimate_tokens,
    prompt_text,
)
from waypost.wire.openai import chat as openai_chat


def request(*messages: Message, tools: list[Tool] | None = None) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), tools=tools or [])


def test_text_is_a_quarter_of_its_characters_rounded_up_plus_framing() -> None:
    req = request(Message("system", [TextPart("x" * 8)]), Message("user", [TextPart("y" * 5)]))
    assert estimate_input_tokens(req) == 4 + 2 * MESSAGE_OVERHEAD  # 13 characters -> 4 tokens


def test_tool_calls_results_and_thinking_count_as_text() -> None:
    req = request(
        Message("assistant", [ThinkingPart("abcd"), ToolCallPart("c1", "fn", '{"a":1}')]),
        Message("user", [ToolResultPart("c1", [TextPart("result!!")])]),
    )
    # thinking 4 + name 2 + arguments 7 + result 8 = 21 characters -> 6 tokens
    assert estimate_input_tokens(req) == 6 + 2 * MESSAGE_OVERHEAD


def test_tool_definitions_count_as_their_json() -> None:
    tool = Tool(name="get", description="d", parameters={"type": "object"})
    spec = orjson.dumps({"name": "get", "description": "d", "parameters": {"type": "object"}})
    req = request(Message("user", [TextPart("abcd")]), tools=[tool])
    assert estimate_input_tokens(req) == -(-(4 + len(spec)) // 4) + MESSAGE_OVERHEAD


def test_images_and_binary_documents_count_a_flat_amount_text_documents_their_text() -> None:
    req = request(
        Message(
            "user",
            [
                ImagePart(data="A" * 10_000, media_type="image/png"),
                DocumentPart(data="B" * 99),
                DocumentPart(text="abcdefgh"),
            ],
        )
    )
    assert estimate_input_tokens(req) == 2 * MEDIA_TOKENS + 2 + MESSAGE_OVERHEAD


def test_an_empty_request_is_at_least_one_token() -> None:
    assert estimate_input_tokens(request()) == 1


def test_chinese_japanese_and_korean_characters_count_one_token_each() -> None:
    # 5 CJK characters (one a full-width comma), then 3 others: 5 + ceil(3 / 4)
    assert estimate_tokens(["你好\uff0c世界 🌍🚀"]) == 6
    assert estimate_tokens(["こんにちは", "안녕"]) == 7
    assert estimate_tokens(["Привет, мир"]) == 3  # other scripts: a quarter of the characters


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hello"}],
        [{"role": "user", "content": ""}],
        [
            {"role": "system", "content": "你好 world, 日本語のテキスト"},
            {"role": "user", "content": "hello there how are you"},
            {"role": "assistant", "content": "fine"},
        ],
        [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "한국어"}]}],
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}],
        [
            {"role": "user", "content": "call it"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
    ],
)  # fmt: skip
def test_a_text_prompt_is_estimated_as_its_gathered_texts(messages: list[dict[str, Any]]) -> None:
    """Text alone is counted without ``prompt_text`` (the hot path): the same figure."""
    req = openai_chat.decode_request({"model": "m", "messages": messages})
    prompt = prompt_text(req)
    gathered = (
        estimate_tokens(prompt.texts) + prompt.messages * MESSAGE_OVERHEAD + prompt.media * MEDIA_TOKENS
    )
    assert estimate_input_tokens(req) == max(1, gathered)
