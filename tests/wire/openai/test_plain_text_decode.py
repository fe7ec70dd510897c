"""An answer of plain text is decoded without the stream machinery (``chat_stream._plain_text``):
the result must be exactly what folding its events gives, whatever else the body carries."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from waypost.wire.openai.chat_response import response_message
from waypost.wire.openai.chat_stream import _folded, _plain_text, decode_response


def body(message: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": message or {"role": "assistant", "content": "Hi"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
    out.update(top)
    return out


PLAIN = [
    body(),
    # What OpenAI sends today: a null refusal and empty annotations.
    body({"role": "assistant", "content": "Hello there", "refusal": None, "annotations": []}),
    body({"role": "assistant", "content": "Hi", "refusal": "also this", "annotations": [{"type": "url_citation"}]}),
    # vLLM and others: empty tool calls, null reasoning and function call.
    body({"role": "assistant", "content": "Hi", "tool_calls": [], "reasoning_content": None, "function_call": None}),
    body({"content": "no role"}),
    body(usage={"prompt_tokens": 50, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 20},
                "completion_tokens_details": {"reasoning_tokens": 4}}),
    body(usage={"prompt_tokens": 5, "completion_tokens": 2, "prompt_cache_hit_tokens": 3}),
    body(usage={"prompt_tokens": -1, "completion_tokens": 2.0, "reasoning_tokens": True}),
    body(usage=None),
    body(usage="nonsense"),
    body(created=True),
    body(created="soon"),
    body(id=None, model=7),
]  # fmt: skip
for reason in ("length", "content_filter", "tool_calls", "function_call", "weird", "", None, 3):
    variant = body()
    variant["choices"][0]["finish_reason"] = reason
    PLAIN.append(variant)
no_usage = body()
del no_usage["usage"], no_usage["created"], no_usage["id"]
PLAIN.append(no_usage)

NOT_PLAIN = [
    body({"role": "assistant", "content": ""}),
    body({"role": "assistant", "content": None, "refusal": "I cannot"}),
    body({"role": "assistant", "content": [{"type": "text", "text": "parts"}]}),
    body({"role": "assistant", "content": "Hi", "reasoning_content": "thought"}),
    body({"role": "assistant", "content": "Hi", "tool_calls": [{"id": "c1", "type": "function",
          "function": {"name": "f", "arguments": "{}"}}]}),
    body({"role": "assistant", "content": "Hi", "audio": {"id": "a1"}}),
]  # fmt: skip


@pytest.mark.parametrize("answer", PLAIN)
def test_a_plain_answer_decodes_as_its_fold(answer: dict[str, Any]) -> None:
    choice, message = response_message(copy.deepcopy(answer))
    direct = _plain_text(answer, choice, message)
    assert direct is not None
    choice, message = response_message(copy.deepcopy(answer))
    assert direct == _folded(copy.deepcopy(answer), choice, message)
    assert decode_response(copy.deepcopy(answer)) == direct


@pytest.mark.parametrize("answer", NOT_PLAIN)
def test_other_answers_take_the_fold(answer: dict[str, Any]) -> None:
    choice, message = response_message(answer)
    assert _plain_text(answer, choice, message) is None
    assert decode_response(copy.deepcopy(answer)) == _folded(answer, choice, message)
