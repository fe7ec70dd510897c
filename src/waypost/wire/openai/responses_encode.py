"""Canonical ``ChatRequest`` -> a request body for an upstream that speaks the Responses API.

A request that came from a Responses client takes the same-format fast path: the client's body,
with the upstream's model name, ``stream``, and every canonical field a policy stage edited
re-encoded over it (``wire.encoded.passthrough_body``), so fields the canonical model does not
carry survive. Any other request is built from the canonical model, and what the Responses API
cannot take is returned as notes.
"""

from __future__ import annotations

from typing import Any

from waypost.core.types import ChatRequest, Tool
from waypost.wire.encoded import Encoded, passthrough_body
from waypost.wire.openai.responses_input import messages_to_items
from waypost.wire.openai.responses_mapping import FORMAT

# The body fields that carry each canonical field (what the fast path re-encodes when edited).
FIELDS: dict[str, tuple[str, ...]] = {
    "messages": ("input", "instructions"),
    "max_tokens": ("max_output_tokens",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "tools": ("tools",),
    "hosted_tools": ("tools",),
    "tool_choice": ("tool_choice", "parallel_tool_calls"),
    "response_format": ("text",),
    "thinking": ("reasoning",),
    "user": ("user",),
    "metadata": ("metadata",),
}


def _tool(tool: Tool) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "function", "name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        spec["description"] = tool.description
    spec["strict"] = bool(tool.strict)  # the API's own default would make every tool strict
    return spec


def _build(req: ChatRequest, upstream_model: str, stream: bool) -> Encoded:
    dropped: list[str] = []
    instructions, items = messages_to_items(req.messages, dropped)
    body: dict[str, Any] = {"model": upstream_model, "input": items, "store": False}
    if instructions is not None:
        body["instructions"] = instructions
    if stream:
        body["stream"] = True
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    tools = [_tool(t) for t in req.tools] + list(req.hosted_tools)
    if tools:
        body["tools"] = tools
    choice = req.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode
        )
        if choice.parallel is not None and tools:
            body["parallel_tool_calls"] = choice.parallel
    fmt = req.response_format
    if fmt is not None:
        spec: dict[str, Any] = {"type": fmt.type}
        if fmt.type == "json_schema":
            spec["name"] = fmt.name or "response"
            spec["schema"] = fmt.schema or {"type": "object"}
            if fmt.strict is not None:
                spec["strict"] = fmt.strict
        body["text"] = {"format": spec}
    thinking = req.thinking
    if thinking is not None:
        if thinking.effort is not None:
            body["reasoning"] = {"effort": thinking.effort}
        elif thinking.enabled:
            body["reasoning"] = {"effort": "medium"}
            dropped.append("thinking budget carried as reasoning effort 'medium'")
        if thinking.enabled:
            body["include"] = ["reasoning.encrypted_content"]  # so the reasoning can be replayed
    if req.user is not None:
        body["user"] = req.user
    if req.metadata:
        body["metadata"] = req.metadata
    if req.stop:
        dropped.append("stop sequences dropped: the Responses API has none")
    if req.top_k is not None:
        dropped.append("top_k dropped: the Responses API has none")
    if req.seed is not None or req.presence_penalty is not None or req.frequency_penalty is not None:
        dropped.append("seed and penalties dropped: the Responses API has none")
    return Encoded(body, tuple(dropped))


def encode_request(req: ChatRequest, upstream_model: str, *, stream: bool) -> Encoded:
    """The body for a Responses API upstream (``POST /responses``), and what it could not carry."""
    if req.source_format != FORMAT or req.passthrough is None:
        return _build(req, upstream_model, stream)
    body = passthrough_body(req.passthrough, FIELDS, lambda: _build(req, upstream_model, stream).body)
    body["model"] = upstream_model
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return Encoded(body)
