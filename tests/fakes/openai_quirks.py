"""Quirks of real OpenAI-compatible servers that the fake OpenAI server reproduces, per model.

``OpenAIUpstream(quirks={"some-model": {REPEATED_TOOL_IDENTITY, ...}})`` answers requests for
``some-model`` (or the Azure deployment of that name) the way such a server does; other models
answer like OpenAI's own API. Each quirk is one name in ``QUIRKS`` with what it imitates;
``docs/providers/openai-compatible.md`` lists the servers seen doing it and what Waypost does.

The functions here take the fake's answer in OpenAI's own shape (a ``chat.completion`` body, or
the list of ``chat.completion.chunk`` objects of a stream) and return it as the quirky server
would send it.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

MAX_TOKENS_ONLY = "max_tokens_only"
MAX_COMPLETION_TOKENS_ONLY = "max_completion_tokens_only"
REPEATED_TOOL_IDENTITY = "repeated_tool_identity"
FUNCTION_CALL_MIRROR = "function_call_mirror"
TOOL_DELTAS_WITHOUT_INDEX = "tool_deltas_without_index"
WHOLE_TOOL_CALL = "whole_tool_call"
EMPTY_CHOICES_CHUNKS = "empty_choices_chunks"
FINISH_AFTER_USAGE = "finish_after_usage"
REASONING_FIELD = "reasoning_field"
USAGE_ON_EVERY_CHUNK = "usage_on_every_chunk"
NO_USAGE = "no_usage"

QUIRKS: dict[str, str] = {
    MAX_TOKENS_ONLY: "ignores `max_completion_tokens` (like any unknown field) and stops at `max_tokens` only",
    MAX_COMPLETION_TOKENS_ONLY: "refuses `max_tokens` with a 400 and stops at `max_completion_tokens`",
    REPEATED_TOOL_IDENTITY: "repeats a tool call's `id`, `type` and `function.name` in every delta",
    FUNCTION_CALL_MIRROR: "sends the legacy `function_call` beside `tool_calls`, in bodies and every delta",
    TOOL_DELTAS_WITHOUT_INDEX: "sends tool-call deltas without `index`",
    WHOLE_TOOL_CALL: "sends each tool call whole, arguments included, in one delta",
    EMPTY_CHOICES_CHUNKS: "sends chunks with empty `choices` and no usage (first one with empty id and model)",
    FINISH_AFTER_USAGE: "sends the usage chunk before the chunk with the `finish_reason`",
    REASONING_FIELD: "names the reasoning text `reasoning`, not `reasoning_content`",
    USAGE_ON_EVERY_CHUNK: "puts the usage so far on every chunk, and sends no usage chunk of its own",
    NO_USAGE: "sends no usage at all: no usage chunk even when asked (`include_usage` ignored), none in bodies",
}

LLAMA_CPP = frozenset({MAX_TOKENS_ONLY, REPEATED_TOOL_IDENTITY, FUNCTION_CALL_MIRROR})
"""What llama.cpp's server (llama-cpp-python 0.3) does, besides ignoring ``include_usage``."""


class QuirkRefusal(Exception):
    """A 400 a quirky server answers: its message and the ``param`` it names."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def token_limit(body: dict[str, Any], quirks: Collection[str]) -> int | None:
    """The most output tokens the server generates for ``body``: OpenAI takes either field
    (``max_completion_tokens`` first); each quirk takes only one."""
    completion_limit, limit = body.get("max_completion_tokens"), body.get("max_tokens")
    if MAX_COMPLETION_TOKENS_ONLY in quirks:
        if limit is not None:
            raise QuirkRefusal(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
            )
        return _limit(completion_limit)
    if MAX_TOKENS_ONLY in quirks:
        return _limit(limit)
    return _limit(completion_limit if completion_limit is not None else limit)


def _limit(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def quirky_body(body: dict[str, Any], quirks: Collection[str]) -> dict[str, Any]:
    """A ``chat.completion`` body as the quirky server sends it."""
    message = body["choices"][0]["message"]
    if REASONING_FIELD in quirks and "reasoning_content" in message:
        message["reasoning"] = message.pop("reasoning_content")
    calls = message.get("tool_calls")
    if FUNCTION_CALL_MIRROR in quirks and calls:
        message["function_call"] = dict(calls[0]["function"])
    if NO_USAGE in quirks:
        del body["usage"]
    return body


def quirky_chunks(
    chunks: list[dict[str, Any]], quirks: Collection[str], usage: dict[str, Any]
) -> list[dict[str, Any]]:
    """A stream's chunks (OpenAI's order: deltas, the finish chunk, the usage chunk if asked for)
    as the quirky server sends them; ``usage`` is the answer's whole usage."""
    if not quirks:
        return chunks
    chunks = copy.deepcopy(chunks)
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if REASONING_FIELD in quirks and "reasoning_content" in delta:
                delta["reasoning"] = delta.pop("reasoning_content")
    if WHOLE_TOOL_CALL in quirks:
        chunks = _whole_calls(chunks)
    if (
        REPEATED_TOOL_IDENTITY in quirks
        or FUNCTION_CALL_MIRROR in quirks
        or TOOL_DELTAS_WITHOUT_INDEX in quirks
    ):
        _tool_deltas(chunks, quirks)
    if USAGE_ON_EVERY_CHUNK in quirks:
        chunks = _usage_on_every_chunk(chunks, usage)
    if NO_USAGE in quirks:
        chunks = [chunk for chunk in chunks if chunk["choices"]]
        for chunk in chunks:
            chunk.pop("usage", None)
    if FINISH_AFTER_USAGE in quirks and len(chunks) >= 2 and not chunks[-1]["choices"]:
        finish, usage_chunk = chunks[-2], chunks[-1]
        if finish["choices"] and finish["choices"][0].get("finish_reason"):
            chunks[-2:] = [usage_chunk, finish]
    if EMPTY_CHOICES_CHUNKS in quirks:
        head = chunks[0]
        # Azure's first chunk: the prompt's content-filter results, with no id, model or time.
        report = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        }
        keep_alive = {key: value for key, value in head.items() if key not in ("choices", "usage")}
        keep_alive["choices"] = []
        chunks = [report, *chunks[:2], keep_alive, *chunks[2:]]
    return chunks


def _calls_of(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    choices = chunk["choices"]
    return choices[0]["delta"].get("tool_calls") or [] if choices else []


def _whole_calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each call's deltas folded into its first one."""
    out: list[dict[str, Any]] = []
    first: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        calls = _calls_of(chunk)
        if not calls:
            out.append(chunk)
            continue
        call = calls[0]
        if call["index"] not in first:
            first[call["index"]] = call
            out.append(chunk)
        else:
            first[call["index"]]["function"]["arguments"] += call["function"].get("arguments", "")
    return out


def _tool_deltas(chunks: list[dict[str, Any]], quirks: Collection[str]) -> None:
    identity: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
        for call in delta.get("tool_calls") or []:
            index = call["index"]
            if "id" in call:
                identity[index] = {"id": call["id"], "type": "function", "name": call["function"]["name"]}
            known = identity[index]
            if REPEATED_TOOL_IDENTITY in quirks:
                call["id"], call["type"] = known["id"], known["type"]
                call["function"] = {"name": known["name"], **call["function"]}
            if FUNCTION_CALL_MIRROR in quirks:
                fragment = call["function"].get("arguments", "")
                delta["function_call"] = {"name": known["name"], "arguments": fragment}
            if TOOL_DELTAS_WITHOUT_INDEX in quirks:
                del call["index"]


def _usage_on_every_chunk(chunks: list[dict[str, Any]], usage: dict[str, Any]) -> list[dict[str, Any]]:
    """The usage so far on every chunk with choices (output counted one token per delta, the
    last one complete); no usage chunk of its own."""
    out = [chunk for chunk in chunks if chunk["choices"]]
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    for n, chunk in enumerate(out, 1):
        done = completion if n == len(out) else min(n - 1, completion)
        chunk["usage"] = {**usage, "completion_tokens": done, "total_tokens": prompt + done}
    return out
