"""Usage the gateway counts when an upstream reports none: only the sides left at zero, with the
model family's tokenizer or the estimate, and nothing at all when the upstream reported both."""

from __future__ import annotations

import pytest
import toktok

from waypost.core.types import ChatRequest, ChatResponse, Message, TextPart, ThinkingPart, ToolCallPart, Usage
from waypost.metering.estimate import MESSAGE_OVERHEAD
from waypost.metering.tokenizer import Tokenizers
from waypost.metering.usage_count import (
    ESTIMATE,
    REPLY_PRIMING,
    TOKENS_PER_MESSAGE,
    AnswerText,
    count_usage,
    needs_count,
)

SYSTEM = "You are terse."
QUESTION = "What is the capital of Peru, and why is it there?"
REQ = ChatRequest(
    model="alias", messages=[Message("system", [TextPart(SYSTEM)]), Message("user", [TextPart(QUESTION)])]
)


def o200k(*texts: str) -> int:
    return sum(toktok.batch_count(list(texts), "o200k_base", threads=1))


@pytest.fixture(scope="module")
def tokenizers() -> Tokenizers:
    return Tokenizers()


def test_only_usage_with_a_side_at_zero_needs_counting() -> None:
    assert needs_count(Usage())
    assert needs_count(Usage(input_tokens=5))
    assert needs_count(Usage(output_tokens=5))
    assert not needs_count(Usage(input_tokens=5, output_tokens=1))


async def test_reported_usage_is_left_alone(tokenizers: Tokenizers) -> None:
    answer = AnswerText(text=["Lima."])
    assert (
        await count_usage(tokenizers, "gpt-4o", REQ, answer, Usage(input_tokens=9, output_tokens=2)) is None
    )


async def test_the_prompt_and_the_answer_count_with_the_familys_tokenizer(tokenizers: Tokenizers) -> None:
    answer = AnswerText(text=["Lima", ", on the coast."])
    counted = await count_usage(tokenizers, "gpt-4o-mini", REQ, answer, Usage())
    assert counted is not None and counted.counted_with == "o200k_base"
    assert counted.usage.input_tokens == o200k(SYSTEM, QUESTION) + 2 * TOKENS_PER_MESSAGE + REPLY_PRIMING
    assert counted.usage.output_tokens == o200k("Lima, on the coast.")  # the pieces joined, then counted


async def test_tool_calls_and_reasoning_are_output_reasoning_also_on_its_own(tokenizers: Tokenizers) -> None:
    answer = AnswerText(tools=["get_weather", '{"city":', ' "Lima"}'], reasoning=["Look it up."])
    counted = await count_usage(tokenizers, "gpt-4o", REQ, answer, Usage())
    assert counted is not None
    reasoning = o200k("Look it up.")
    assert counted.usage.reasoning_tokens == reasoning
    assert counted.usage.output_tokens == o200k('get_weather{"city": "Lima"}') + reasoning


async def test_other_families_get_the_estimate(tokenizers: Tokenizers) -> None:
    counted = await count_usage(tokenizers, "llama-3.1-8b", REQ, AnswerText(text=["Lima."]), Usage())
    assert counted is not None and counted.counted_with == ESTIMATE
    chars = len(SYSTEM) + len(QUESTION)
    assert counted.usage.input_tokens == -(-chars // 4) + 2 * MESSAGE_OVERHEAD
    assert counted.usage.output_tokens == 2  # "Lima." is 5 characters


async def test_only_the_side_at_zero_is_counted(tokenizers: Tokenizers) -> None:
    answer = AnswerText(text=["Lima."])
    only_output = await count_usage(
        tokenizers, "gpt-4o", REQ, answer, Usage(input_tokens=40, cache_read_tokens=8)
    )
    assert only_output is not None
    assert only_output.usage == Usage(input_tokens=40, output_tokens=o200k("Lima."), cache_read_tokens=8)
    only_input = await count_usage(tokenizers, "gpt-4o", REQ, answer, Usage(output_tokens=7))
    assert only_input is not None and only_input.usage.output_tokens == 7
    assert only_input.usage.input_tokens == o200k(SYSTEM, QUESTION) + 2 * TOKENS_PER_MESSAGE + REPLY_PRIMING


async def test_an_empty_answer_counts_zero_output_and_the_prompt_still_counts(tokenizers: Tokenizers) -> None:
    counted = await count_usage(tokenizers, "gpt-4o", REQ, AnswerText(), Usage())
    assert counted is not None and counted.usage.output_tokens == 0 and counted.usage.input_tokens > 0
    assert await count_usage(tokenizers, "gpt-4o", REQ, AnswerText(), Usage(input_tokens=3)) is None


def test_a_whole_answers_text_is_its_text_tool_calls_and_thinking() -> None:
    resp = ChatResponse(
        id="r",
        model="m",
        content=[
            ThinkingPart("hmm"),
            TextPart("Lima."),
            ToolCallPart("c1", "get_weather", '{"city":"Lima"}'),
        ],
    )
    assert AnswerText.of(resp) == AnswerText(
        text=["Lima."], tools=["get_weather", '{"city":"Lima"}'], reasoning=["hmm"]
    )
