"""OpenAI Chat Completions request body -> canonical ``ChatRequest``.

The body comes straight from a client, so every field is checked before use and every problem
becomes a ``BadRequest`` whose ``param`` names the offending field the way OpenAI does
(``messages[2].content[0].image_url.url``). Fields we do not model stay only in the request's
``passthrough`` (the client's body).
"""

from __future__ import annotations

import base64
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from waypost.core.errors import BadRequest
from waypost.core.passthrough import Passthrough
from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Thinking,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from waypost.wire.openai.fields import (
    arguments_field,
    bad_type,
    bool_field,
    dict_field,
    float_field,
    int_field,
    kind_of,
    list_field,
    missing,
    object_value,
    response_format_value,
    stop_field,
    str_field,
)

FORMAT = "openai"

_TOOL_CHOICE_MODES: dict[str, Literal["auto", "none", "required"]] = {
    "auto": "auto",
    "none": "none",
    "required": "required",
}
MAX_TOP_LOGPROBS = 20  # the API's own bound


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def parse_data_url(url: str, param: str) -> tuple[str, str | None]:
    """``data:[<type>][;base64],<payload>`` -> (base64 payload, media type or None)."""
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise BadRequest(f"Invalid '{param}': malformed data URL.", param=param)
    attrs = header.split(";")
    media_type = attrs[0].strip().lower() or None
    if "base64" in (a.strip().lower() for a in attrs[1:]):
        return payload.strip(), media_type
    # Percent-encoded payloads (SVG, text) are rare but legal; canonical parts carry base64.
    return base64.b64encode(unquote_to_bytes(payload)).decode("ascii"), media_type


def _cache_control(part: dict[str, Any], param: str) -> dict[str, Any] | None:
    # Not OpenAI's, but clients aiming at Anthropic through OpenAI-format gateways send it.
    return dict_field(part, "cache_control", f"{param}.cache_control")


def _decode_image(part: dict[str, Any], param: str) -> ImagePart:
    value = part.get("image_url")
    if value is None:
        raise missing(f"{param}.image_url")
    # A bare URL string instead of ``{"url": ...}`` is a common client shortcut.
    spec = {"url": value} if isinstance(value, str) else object_value(value, f"{param}.image_url")
    url = str_field(spec, "url", f"{param}.image_url.url", required=True) or ""
    detail = str_field(spec, "detail", f"{param}.image_url.detail")
    cache = _cache_control(part, param)
    if url.startswith("data:"):
        data, media_type = parse_data_url(url, f"{param}.image_url.url")
        return ImagePart(data=data, media_type=media_type, detail=detail, cache_control=cache)
    return ImagePart(url=url, detail=detail, cache_control=cache)


def _decode_file(part: dict[str, Any], param: str, notes: list[str]) -> DocumentPart | None:
    spec = dict_field(part, "file", f"{param}.file", required=True) or {}
    filename = str_field(spec, "filename", f"{param}.file.filename")
    file_data = str_field(spec, "file_data", f"{param}.file.file_data")
    cache = _cache_control(part, param)
    if file_data is None:
        if str_field(spec, "file_id", f"{param}.file.file_id") is None:
            raise missing(f"{param}.file.file_data")
        _note(notes, "file_id content dropped: uploaded OpenAI files cannot be carried to other providers")
        return None
    if file_data.startswith("data:"):
        data, media_type = parse_data_url(file_data, f"{param}.file.file_data")
    else:
        # Bare base64: Chat Completions only accepts PDFs as files.
        data, media_type = file_data, "application/pdf"
    return DocumentPart(data=data, media_type=media_type, filename=filename, cache_control=cache)


def _decode_part(raw: Any, param: str, notes: list[str]) -> Part | None:
    part = object_value(raw, param)
    kind = part.get("type")
    if kind == "text":
        text = str_field(part, "text", f"{param}.text", required=True) or ""
        return TextPart(text=text, cache_control=_cache_control(part, param))
    if kind == "image_url":
        return _decode_image(part, param)
    if kind == "file":
        return _decode_file(part, param, notes)
    if kind == "refusal":
        return TextPart(text=str_field(part, "refusal", f"{param}.refusal", required=True) or "")
    if kind == "input_audio":
        _note(notes, "input_audio content dropped: audio input is not carried across formats")
        return None
    if not isinstance(kind, str):
        raise missing(f"{param}.type") if kind is None else bad_type(f"{param}.type", "a string", kind)
    _note(notes, f"content part type {kind!r} dropped")
    return None


def _decode_content(value: Any, param: str, notes: list[str]) -> list[Part]:
    """``content`` as a string, an array of parts, or null."""
    if value is None:
        return []
    if isinstance(value, str):
        return [TextPart(text=value)] if value else []
    if not isinstance(value, list):
        raise bad_type(param, "one of a string or array of objects", value)
    parts: list[Part] = []
    for j, item in enumerate(value):
        part = _decode_part(item, f"{param}[{j}]", notes)
        if part is not None:
            parts.append(part)
    return parts


class _Decoder:
    """Per-request state: notes, and ids for legacy ``function_call`` turns (which have none)."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._pending_functions: dict[str, list[str]] = {}

    def messages(self, items: list[Any]) -> list[Message]:
        out: list[Message] = []
        results: Message | None = None  # the user message collecting consecutive tool results
        for i, raw in enumerate(items):
            param = f"messages[{i}]"
            m = object_value(raw, param)
            role = m.get("role")
            if role in ("tool", "function"):
                part = self._tool_result(m, role, i, param)
                if results is None:
                    results = Message(role="user", content=[])
                    out.append(results)
                results.content.append(part)
                continue
            results = None
            name = str_field(m, "name", f"{param}.name")
            if role in ("system", "developer"):
                content = _decode_content(m.get("content"), f"{param}.content", self.notes)
                out.append(Message(role="system", content=content, name=name))
            elif role == "user":
                content = _decode_content(m.get("content"), f"{param}.content", self.notes)
                out.append(Message(role="user", content=content, name=name))
            elif role == "assistant":
                out.append(Message(role="assistant", content=self._assistant(m, i, param), name=name))
            elif role is None:
                raise missing(f"{param}.role")
            else:
                raise BadRequest(
                    f"Invalid value for '{param}.role': {role!r}. Supported values are: 'system', "
                    "'developer', 'user', 'assistant', 'tool' and 'function'.",
                    param=f"{param}.role",
                )
        return out

    def _tool_result(self, m: dict[str, Any], role: str, i: int, param: str) -> ToolResultPart:
        content = _decode_content(m.get("content"), f"{param}.content", self.notes)
        results = [p for p in content if isinstance(p, TextPart | ImagePart | DocumentPart)]
        if role == "tool":
            call_id = str_field(m, "tool_call_id", f"{param}.tool_call_id", required=True) or ""
            return ToolResultPart(tool_call_id=call_id, content=results)
        name = str_field(m, "name", f"{param}.name", required=True) or ""
        pending = self._pending_functions.get(name)
        call_id = pending.pop(0) if pending else f"call_{name}_{i}"
        return ToolResultPart(tool_call_id=call_id, content=results)

    def _assistant(self, m: dict[str, Any], i: int, param: str) -> list[Part]:
        parts: list[Part] = self._reasoning(m, param)
        parts += _decode_content(m.get("content"), f"{param}.content", self.notes)
        refusal = str_field(m, "refusal", f"{param}.refusal")
        if refusal:
            parts.append(TextPart(text=refusal))
        calls = list_field(m, "tool_calls", f"{param}.tool_calls") or []
        for j, raw in enumerate(calls):
            call = self._tool_call(raw, f"{param}.tool_calls[{j}]")
            if call is not None:
                parts.append(call)
        legacy = dict_field(m, "function_call", f"{param}.function_call")
        if legacy is not None:
            fparam = f"{param}.function_call"
            name = str_field(legacy, "name", f"{fparam}.name", required=True) or ""
            call_id = f"call_{name}_{i}"
            self._pending_functions.setdefault(name, []).append(call_id)
            parts.append(
                ToolCallPart(id=call_id, name=name, arguments=arguments_field(legacy, f"{fparam}.arguments"))
            )
        return parts

    def _reasoning(self, m: dict[str, Any], param: str) -> list[Part]:
        blocks = list_field(m, "thinking_blocks", f"{param}.thinking_blocks")
        if blocks:
            # The blocks carry signatures; reasoning_content beside them is the same text again.
            parts: list[Part] = []
            for j, raw in enumerate(blocks):
                bparam = f"{param}.thinking_blocks[{j}]"
                block = object_value(raw, bparam)
                if block.get("type") == "redacted_thinking":
                    data = str_field(block, "data", f"{bparam}.data", required=True)
                    parts.append(ThinkingPart(redacted=True, data=data))
                else:
                    text = str_field(block, "thinking", f"{bparam}.thinking") or ""
                    signature = str_field(block, "signature", f"{bparam}.signature")
                    parts.append(ThinkingPart(text=text, signature=signature))
            return parts
        for key in ("reasoning_content", "reasoning"):
            reasoning = str_field(m, key, f"{param}.{key}")
            if reasoning:
                return [ThinkingPart(text=reasoning)]
        return []

    def _tool_call(self, raw: Any, param: str) -> ToolCallPart | None:
        call = object_value(raw, param)
        kind = call.get("type", "function")
        if kind != "function":
            _note(self.notes, f"tool call type {kind!r} dropped")
            return None
        call_id = str_field(call, "id", f"{param}.id", required=True) or ""
        fn = dict_field(call, "function", f"{param}.function", required=True) or {}
        name = str_field(fn, "name", f"{param}.function.name", required=True) or ""
        return ToolCallPart(
            id=call_id, name=name, arguments=arguments_field(fn, f"{param}.function.arguments")
        )


def _decode_function_spec(fn: dict[str, Any], param: str) -> Tool:
    name = str_field(fn, "name", f"{param}.name", required=True)
    if not name:
        raise BadRequest(f"Invalid '{param}.name': empty string.", param=f"{param}.name")
    params = dict_field(fn, "parameters", f"{param}.parameters")
    return Tool(
        name=name,
        description=str_field(fn, "description", f"{param}.description"),
        parameters=params if params is not None else {"type": "object", "properties": {}},
        strict=bool_field(fn, "strict", f"{param}.strict"),
    )


def _decode_tools(body: dict[str, Any], notes: list[str]) -> list[Tool]:
    tools: list[Tool] = []
    for i, raw in enumerate(list_field(body, "tools", "tools") or []):
        item = object_value(raw, f"tools[{i}]")
        kind = item.get("type", "function")
        if kind != "function":
            _note(notes, f"tool type {kind!r} dropped: only function tools are carried across formats")
            continue
        fn = dict_field(item, "function", f"tools[{i}].function", required=True) or {}
        tool = _decode_function_spec(fn, f"tools[{i}].function")
        tool.cache_control = dict_field(item, "cache_control", f"tools[{i}].cache_control")
        tools.append(tool)
    for i, raw in enumerate(list_field(body, "functions", "functions") or []):
        tools.append(_decode_function_spec(object_value(raw, f"functions[{i}]"), f"functions[{i}]"))
    return tools


def _decode_tool_choice(body: dict[str, Any], notes: list[str]) -> ToolChoice | None:
    value = body.get("tool_choice")
    param = "tool_choice"
    if value is None and body.get("function_call") is not None:
        value, param = body["function_call"], "function_call"
        if isinstance(value, dict) and "name" in value:
            value = {"type": "function", "function": value}
    if value is None:
        return None
    if isinstance(value, str):
        mode = _TOOL_CHOICE_MODES.get(value)
        if mode is None:
            raise BadRequest(
                f"Invalid value for '{param}': {value!r}. "
                "Supported values are: 'auto', 'none' and 'required'.",
                param=param,
            )
        return ToolChoice(mode=mode)
    spec = object_value(value, param)
    kind = spec.get("type")
    if kind in ("function", "custom"):
        target = dict_field(spec, kind, f"{param}.{kind}", required=True) or {}
        name = str_field(target, "name", f"{param}.{kind}.name", required=True)
        return ToolChoice(mode="tool", name=name)
    if kind == "allowed_tools":
        allowed = dict_field(spec, "allowed_tools", f"{param}.allowed_tools", required=True) or {}
        mode = allowed.get("mode", "auto")
        _note(notes, "tool_choice.allowed_tools list not carried: all tools stay available")
        return ToolChoice(mode="required" if mode == "required" else "auto")
    raise BadRequest(f"Invalid value for '{param}.type': {kind!r}.", param=f"{param}.type")


def _decode_response_format(body: dict[str, Any]) -> ResponseFormat | None:
    spec = dict_field(body, "response_format", "response_format")
    return None if spec is None else response_format_value(spec, "response_format", nested=True)


def _decode_thinking(body: dict[str, Any]) -> Thinking | None:
    effort = str_field(body, "reasoning_effort", "reasoning_effort")
    # Anthropic-style ``thinking`` in an OpenAI body is non-standard, but common with gateways.
    spec = dict_field(body, "thinking", "thinking")
    if spec is not None:
        kind = spec.get("type")
        if kind == "disabled":
            return Thinking(enabled=False, effort=effort)
        budget = int_field(spec, "budget_tokens", "thinking.budget_tokens", minimum=0)
        return Thinking(budget_tokens=budget, effort=effort, adaptive=kind == "adaptive")
    if effort is None:
        return None
    return Thinking(enabled=effort != "none", effort=effort)


def decode_request(body: Any) -> ChatRequest:
    """An OpenAI Chat Completions request body -> ``ChatRequest`` (``passthrough`` keeps the body)."""
    if not isinstance(body, dict):
        raise BadRequest(f"The request body must be a JSON object, but got {kind_of(body)} instead.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' must be a non-empty string.", param="model")
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")

    decoder = _Decoder()
    messages = decoder.messages(items)
    notes = decoder.notes

    # Each optional field is read only when present (absent, each takes the default its reader
    # gives): a request that sends few pays for few.
    has = body.__contains__
    max_completion = (
        int_field(body, "max_completion_tokens", "max_completion_tokens", minimum=1)
        if has("max_completion_tokens")
        else None
    )
    max_tokens = int_field(body, "max_tokens", "max_tokens", minimum=1) if has("max_tokens") else None
    tools = _decode_tools(body, notes) if has("tools") or has("functions") else []
    tool_choice = _decode_tool_choice(body, notes) if has("tool_choice") or has("function_call") else None
    parallel = (
        bool_field(body, "parallel_tool_calls", "parallel_tool_calls") if has("parallel_tool_calls") else None
    )
    if parallel is not None and tools:
        tool_choice = tool_choice or ToolChoice(mode="auto")
        tool_choice.parallel = parallel
    stream_options = (
        (dict_field(body, "stream_options", "stream_options") or {}) if has("stream_options") else {}
    )
    n = (int_field(body, "n", "n", minimum=1) or 1) if has("n") else 1  # its upper bound: pipeline.bounds
    if n > 1:
        _note(notes, "n > 1: only the first choice is returned")
    if has(
        "top_logprobs"
    ):  # not modelled (only same-format upstreams see it), but bounded as the API bounds it
        int_field(body, "top_logprobs", "top_logprobs", minimum=0, maximum=MAX_TOP_LOGPROBS)
    metadata = dict_field(body, "metadata", "metadata") if has("metadata") else None

    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_completion if max_completion is not None else max_tokens,
        choices=n,
        temperature=float_field(body, "temperature", "temperature") if has("temperature") else None,
        top_p=float_field(body, "top_p", "top_p") if has("top_p") else None,
        top_k=int_field(body, "top_k", "top_k", minimum=0) if has("top_k") else None,
        stop=stop_field(body) if has("stop") else [],
        tools=tools,
        tool_choice=tool_choice,
        response_format=_decode_response_format(body) if has("response_format") else None,
        thinking=_decode_thinking(body) if has("reasoning_effort") or has("thinking") else None,
        stream=bool(bool_field(body, "stream", "stream")) if has("stream") else False,
        include_usage=bool(bool_field(stream_options, "include_usage", "stream_options.include_usage"))
        if stream_options
        else False,
        seed=int_field(body, "seed", "seed") if has("seed") else None,
        presence_penalty=float_field(body, "presence_penalty", "presence_penalty")
        if has("presence_penalty")
        else None,
        frequency_penalty=float_field(body, "frequency_penalty", "frequency_penalty")
        if has("frequency_penalty")
        else None,
        user=str_field(body, "user", "user") if has("user") else None,
        metadata=dict(metadata) if metadata else {},
        source_format=FORMAT,
        passthrough=Passthrough(body),
        notes=notes,
    )
