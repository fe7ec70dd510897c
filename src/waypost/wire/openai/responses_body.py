"""The Responses API's ``response`` object from a canonical answer.

A response echoes the parameters it was made with; the SDKs' models require several of them
(``tools``, ``tool_choice``, ``parallel_tool_calls``), so they come from the client's body where
it sent them, else from the canonical request, else from the API's documented defaults. The
canonical fields a policy stage may have changed (sampling, the token limit) are echoed as used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from waypost.core.types import ChatRequest, ChatResponse, ToolChoice
from waypost.wire.openai.responses_mapping import status_for, usage_to_responses
from waypost.wire.openai.responses_output import namespaces_of, output_items

# Echoed as the client sent them, when it sent them: fields the canonical model does not carry.
_ECHOED = ("prompt_cache_key", "safety_identifier", "prompt", "conversation")


def _tool_choice(choice: ToolChoice | None) -> Any:
    if choice is None:
        return "auto"
    if choice.mode == "tool":
        return {"type": "function", "name": choice.name or ""}
    return choice.mode


def _text_config(req: ChatRequest) -> dict[str, Any]:
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return {"format": {"type": "text"}}
    if fmt.type == "json_object":
        return {"format": {"type": "json_object"}}
    schema: dict[str, Any] = {
        "type": "json_schema",
        "name": fmt.name or "response",
        "schema": fmt.schema or {},
    }
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    return {"format": schema}


def _tools(req: ChatRequest) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.parameters,
            "strict": t.strict,
        }
        for t in req.tools
    ]
    return tools + [dict(t) for t in req.hosted_tools]


def response_params(req: ChatRequest, body: Mapping[str, Any] | None) -> dict[str, Any]:
    """The request parameters a response object echoes (see the module docstring)."""
    if body is None and req.passthrough is not None:
        body = req.passthrough.body
    sent: Mapping[str, Any] = body or {}

    def given(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = sent.get(key)
        return value if isinstance(value, kind) else default

    parallel = req.tool_choice.parallel if req.tool_choice is not None else None
    effort = req.thinking.effort if req.thinking is not None else None
    params: dict[str, Any] = {
        "background": False,
        "instructions": given("instructions", (str, list), None),
        "max_output_tokens": req.max_tokens,
        "max_tool_calls": given("max_tool_calls", int, None),
        "metadata": given("metadata", dict, dict(req.metadata)),
        "parallel_tool_calls": given("parallel_tool_calls", bool, True if parallel is None else parallel),
        "previous_response_id": given("previous_response_id", str, None),
        "reasoning": given("reasoning", dict, {"effort": effort, "summary": None}),
        "service_tier": "default",
        "store": given("store", bool, True),
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "text": given("text", dict, None) or _text_config(req),
        "tool_choice": given("tool_choice", (str, dict), None) or _tool_choice(req.tool_choice),
        "tools": given("tools", list, None) or _tools(req),
        "top_logprobs": given("top_logprobs", int, 0),
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "truncation": given("truncation", str, "disabled"),
        "user": req.user if req.user is not None else given("user", str, None),
    }
    for key in _ECHOED:
        if key in sent:
            params[key] = sent[key]
    return params


def response_object(
    req: ChatRequest,
    *,
    response_id: str,
    created_at: int,
    body: Mapping[str, Any] | None,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A whole ``response`` object; every state of one response (created, in progress, final)
    is made here, so that they differ only where the state does."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "model": model,
        "output": output,
        **response_params(req, body),
        "usage": usage,
    }


def encode_response(
    resp: ChatResponse,
    req: ChatRequest,
    *,
    response_id: str,
    created_at: int,
    body: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A canonical answer as the ``response`` object a Responses client reads, named for the
    model the client asked for (``req.model``) whatever name the upstream answered with."""
    status, reason = status_for(resp.finish_reason)
    return response_object(
        req,
        response_id=response_id,
        created_at=created_at,
        body=body,
        model=req.model or resp.model,
        status=status,
        output=output_items(resp.content, response_id, last_status=status, namespaces=namespaces_of(req)),
        usage=usage_to_responses(resp.usage),
        incomplete_reason=reason,
    )
