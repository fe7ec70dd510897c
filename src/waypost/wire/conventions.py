"""Conventions the dialects share, in one module so that no dialect imports another's private
helpers: the compact JSON text tool arguments travel as, the prefixes that mark a thinking
signature minted by Gemini or by OpenAI (other dialects must not replay them), and Claude's rules
for sampling and thinking budgets, which hold directly (Anthropic) and through Bedrock."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from waypost.core.types import ChatRequest, Thinking

GEMINI_SIGNATURE_PREFIX = "gemini:"
# A thinking signature that is an OpenAI reasoning item's ``encrypted_content`` (Responses API):
# only OpenAI can read it back, so the other dialects drop it as they drop Gemini's.
OPENAI_REASONING_PREFIX = "openai:"
EFFORT_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
    "max": 32768,
}
MIN_THINKING_BUDGET = 1024
JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)


def compact_json(value: Any) -> str:
    """JSON text without insignificant whitespace, as tool-call arguments are carried."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits and non-string keys; the stdlib copes.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def claude_sampling(
    req: ChatRequest, *, thinking_on: bool, temperature_and_top_p: bool, note: Callable[[str], None]
) -> tuple[float | None, float | None, int | None]:
    """``(temperature, top_p, top_k)`` as Claude accepts them, directly or through Bedrock:
    with thinking, temperature and top_k are refused and top_p must lie in [0.95, 1]; the
    temperature scale ends at 1 (OpenAI's at 2); current models refuse temperature together
    with top_p unless ``temperature_and_top_p``. Every change is reported through ``note``."""
    temperature, top_p, top_k = req.temperature, req.top_p, req.top_k
    if thinking_on:
        if temperature is not None:
            note("temperature dropped (not allowed with thinking)")
            temperature = None
        if top_k is not None:
            note("top_k dropped (not allowed with thinking)")
            top_k = None
        if top_p is not None and not 0.95 <= top_p <= 1:
            note("top_p dropped (with thinking it must be between 0.95 and 1)")
            top_p = None
    if temperature is not None and temperature > 1:
        note("temperature above 1 clamped to 1")
        temperature = 1.0
    if not temperature_and_top_p and temperature is not None and top_p is not None:
        note("top_p dropped (current Anthropic models refuse temperature and top_p together)")
        top_p = None
    return temperature, top_p, top_k


def thinking_budget(thinking: Thinking, note: Callable[[str], None]) -> int:
    """Claude's thinking budget, directly or through Bedrock: the one asked for, else the
    effort's (medium when neither is given), never below the API's minimum."""
    budget = thinking.budget_tokens
    if budget is None:
        effort = thinking.effort
        budget = EFFORT_BUDGETS.get(effort or "medium", EFFORT_BUDGETS["medium"])
        if effort:
            note(f"reasoning effort {effort!r} mapped to a thinking budget of {budget} tokens")
    if budget < MIN_THINKING_BUDGET:
        note(f"thinking budget raised to the minimum of {MIN_THINKING_BUDGET} tokens")
        budget = MIN_THINKING_BUDGET
    return budget
