"""OpenAI Responses API request body (``POST /v1/responses``) -> canonical ``ChatRequest``.

Every field is checked before use and each problem is a ``BadRequest`` naming the field the way
OpenAI does (``input[2].content[0].image_url``). What the canonical model does not carry stays in
the request's ``passthrough`` (the client's body) for an upstream that speaks this API:
``store``, ``previous_response_id`` (the endpoint expands it before decoding), ``include``,
``truncation``, ``prompt_cache_key``, ``text.verbosity``, ``reasoning.summary`` and the like.
Built-in tools (web search, file search, ...) become ``hosted_tools``: only such an upstream runs
them. A ``namespace`` tool's functions reach other providers as plain functions named
``<namespace>__<name>``.
"""

from __future__ import annotations

from typing import Any, Literal

from waypost.core.errors import BadRequest
from waypost.core.passthrough import Passthrough
from waypost.core.types import ChatRequest, Message, ResponseFormat, TextPart, Thinking, Tool, ToolChoice
from waypost.wire.openai.chat_decode import MAX_TOP_LOGPROBS
from waypost.wire.openai.fields import (
    bad_type,
    bool_field,
    dict_field,
    float_field,
    int_field,
    kind_of,
    list_field,
    object_value,
    response_format_value,
    str_field,
)
from waypost.wire.openai.responses_input import items_to_messages
from waypost.wire.openai.responses_mapping import FORMAT
from waypost.wire.openai.responses_output import NAMESPACE_SEPARATOR

_TOOL_CHOICE_MODES: dict[str, Literal["auto", "none", "required"]] = {
    "auto": "auto",
    "none": "none",
    "required": "required",
}
# Features that need OpenAI's own storage or a job queue this gateway does not run.
_UNSUPPORTED = {
    "background": "background responses are not supported by this gateway; send the request without it",
    "conversation": "the Conversations API is not supported by this gateway; use previous_response_id",
}


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _function(spec: dict[str, Any], param: str, name: str | None = None) -> Tool:
    own = str_field(spec, "name", f"{param}.name", required=True)
    if not own:
        raise BadRequest(f"Invalid '{param}.name': empty string.", param=f"{param}.name")
    params = dict_field(spec, "parameters", f"{param}.parameters")
    return Tool(
        name=name or own,
        description=str_field(spec, "description", f"{param}.description"),
        parameters=params if params is not None else {"type": "object", "properties": {}},
        strict=bool_field(spec, "strict", f"{param}.strict"),
    )


def _tool_lists(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every tool the client sent with the param naming it: ``tools``, and the tools of
    ``additional_tools`` input items (the Codex CLI sends its tools that way for some models)."""
    out = [(f"tools[{i}]", raw) for i, raw in enumerate(list_field(body, "tools", "tools") or [])]
    value = body.get("input")
    for i, item in enumerate(value if isinstance(value, list) else ()):
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            listed = list_field(item, "tools", f"input[{i}].tools") or []
            out += [(f"input[{i}].tools[{j}]", raw) for j, raw in enumerate(listed)]
    return out


def _tools(body: dict[str, Any], notes: list[str]) -> tuple[list[Tool], list[dict[str, Any]]]:
    tools: list[Tool] = []
    hosted: list[dict[str, Any]] = []
    for param, raw in _tool_lists(body):
        item = object_value(raw, param)
        kind = item.get("type")
        if kind == "function":
            tools.append(_function(item, param))
        elif kind == "namespace":
            namespace = str_field(item, "name", f"{param}.name", required=True) or ""
            for j, inner in enumerate(list_field(item, "tools", f"{param}.tools") or []):
                iparam = f"{param}.tools[{j}]"
                spec = object_value(inner, iparam)
                if spec.get("type", "function") != "function":
                    _note(notes, f"tool type {spec.get('type')!r} in namespace {namespace!r} dropped")
                    continue
                flat = f"{namespace}{NAMESPACE_SEPARATOR}{spec.get('name')}"
                tools.append(_function(spec, iparam, flat))
            _note(notes, f"namespace tool {namespace!r} sent as plain functions named '{namespace}__<name>'")
        elif isinstance(kind, str):
            hosted.append(item)
        else:
            raise bad_type(f"{param}.type", "a string", kind)
    return tools, hosted


def _tool_choice(body: dict[str, Any], notes: list[str]) -> ToolChoice | None:
    value = body.get("tool_choice")
    if value is None:
        return None
    if isinstance(value, str):
        mode = _TOOL_CHOICE_MODES.get(value)
        if mode is None:
            raise BadRequest(
                f"Invalid value for 'tool_choice': {value!r}. Supported values are: 'auto', 'none' and 'required'.",
                param="tool_choice",
            )
        return ToolChoice(mode=mode)
    spec = object_value(value, "tool_choice")
    kind = spec.get("type")
    if kind in ("function", "custom"):
        return ToolChoice(mode="tool", name=str_field(spec, "name", "tool_choice.name", required=True))
    if kind == "allowed_tools":
        _note(notes, "tool_choice.allowed_tools list not carried: all tools stay available")
        return ToolChoice(mode="required" if spec.get("mode") == "required" else "auto")
    if isinstance(kind, str):  # a built-in tool: only a Responses upstream can be made to use it
        _note(notes, f"tool_choice of built-in tool {kind!r} carried as 'required'")
        return ToolChoice(mode="required")
    raise bad_type("tool_choice.type", "a string", kind)


def _response_format(body: dict[str, Any]) -> ResponseFormat | None:
    text = dict_field(body, "text", "text")
    spec = dict_field(text, "format", "text.format") if text is not None else None
    return None if spec is None else response_format_value(spec, "text.format", nested=False)


def _thinking(body: dict[str, Any]) -> Thinking | None:
    spec = dict_field(body, "reasoning", "reasoning")
    if spec is None:
        return None
    effort = str_field(spec, "effort", "reasoning.effort")
    str_field(spec, "summary", "reasoning.summary")  # a type check: only a Responses upstream reads it
    if effort is None:
        return None
    return Thinking(enabled=effort != "none", effort=effort)


def _messages(body: dict[str, Any], notes: list[str]) -> list[Message]:
    messages: list[Message] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        if instructions:
            messages.append(Message(role="system", content=[TextPart(text=instructions)]))
    elif isinstance(instructions, list):
        messages += [
            Message(role="system", content=m.content) if m.role != "assistant" else m
            for m in items_to_messages(instructions, notes)
        ]
    elif instructions is not None:
        raise bad_type("instructions", "a string", instructions)
    value = body.get("input")
    if value is None:
        raise BadRequest("Missing required parameter: 'input'.", param="input")
    if isinstance(value, str):
        messages.append(Message(role="user", content=[TextPart(text=value)]))
    elif isinstance(value, list):
        if not value and not messages:
            raise BadRequest("'input' must not be empty.", param="input")
        messages += items_to_messages(value, notes)
    else:
        raise bad_type("input", "one of a string or array of input items", value)
    return messages


def decode_request(body: Any) -> ChatRequest:
    """A Responses API request body -> ``ChatRequest`` (``passthrough`` keeps the body)."""
    if not isinstance(body, dict):
        raise BadRequest(f"The request body must be a JSON object, but got {kind_of(body)} instead.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' must be a non-empty string.", param="model")
    for key, why in _UNSUPPORTED.items():
        if body.get(key) not in (None, False):
            raise BadRequest(f"Invalid '{key}': {why}.", param=key)
    notes: list[str] = []
    messages = _messages(body, notes)
    tools, hosted = _tools(body, notes)
    tool_choice = _tool_choice(body, notes)
    parallel = bool_field(body, "parallel_tool_calls", "parallel_tool_calls")
    if parallel is not None and (tools or hosted):
        tool_choice = tool_choice or ToolChoice(mode="auto")
        tool_choice.parallel = parallel
    int_field(body, "top_logprobs", "top_logprobs", minimum=0, maximum=MAX_TOP_LOGPROBS)
    list_field(body, "include", "include")
    metadata = dict_field(body, "metadata", "metadata")
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=int_field(body, "max_output_tokens", "max_output_tokens", minimum=1),
        temperature=float_field(body, "temperature", "temperature"),
        top_p=float_field(body, "top_p", "top_p"),
        tools=tools,
        tool_choice=tool_choice,
        response_format=_response_format(body),
        thinking=_thinking(body),
        stream=bool(bool_field(body, "stream", "stream")),
        include_usage=True,  # the usage is part of every Responses stream's last event
        user=str_field(body, "user", "user"),
        metadata=dict(metadata) if metadata else {},
        hosted_tools=hosted,
        source_format=FORMAT,
        passthrough=Passthrough(body),
        notes=notes,
    )
