"""What OpenAI's ``POST /v1/responses`` refuses, as the fake checks it: the 400 the real API gives
(message, ``param`` as a dotted path, ``code``) for what a gateway is likely to send wrongly."""

from __future__ import annotations

from typing import Any

from tests.fakes.openai_upstream import InvalidRequest

# The create parameters of the official SDK (``ResponseCreateParamsBase``), ``stream``, and the
# Codex CLI's ``client_metadata``.
KNOWN_PARAMS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
        "reasoning", "max_output_tokens", "max_tool_calls", "temperature", "top_p", "top_logprobs",
        "metadata", "user", "include", "store", "previous_response_id", "truncation", "stream",
        "stream_options", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
        "service_tier", "safety_identifier", "background", "background_options", "prompt",
        "conversation", "context_management", "moderation", "image", "access_programs",
        "client_metadata",
    }
)  # fmt: skip
INCLUDABLE = frozenset(
    {
        "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
        "message.input_image.image_url", "computer_call_output.output.image_url",
        "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs",
    }
)  # fmt: skip
# Input item types of the SDK's ``ResponseInputItemParam``.
ITEM_TYPES = frozenset(
    {
        "message", "function_call", "function_call_output", "reasoning", "item_reference",
        "file_search_call", "computer_call", "computer_call_output", "web_search_call",
        "image_generation_call", "code_interpreter_call", "local_shell_call",
        "local_shell_call_output", "shell_call", "shell_call_output", "apply_patch_call",
        "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response",
        "mcp_call", "custom_tool_call", "custom_tool_call_output", "compaction", "compaction_trigger",
        "tool_search_call", "additional_tools", "program", "program_output",
    }
)  # fmt: skip
ROLES = frozenset({"user", "assistant", "system", "developer"})
# Content part types a message in ``input`` may carry, by role: since October 2025 an assistant
# message takes only what the model wrote (``input_text`` there is a 400).
INPUT_PARTS = frozenset({"input_text", "input_image", "input_file", "input_audio"})
ASSISTANT_PARTS = frozenset({"output_text", "refusal"})


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def invalid_value(param: str, value: Any, supported: frozenset[str] | None = None) -> InvalidRequest:
    hint = f" Supported values are: {', '.join(repr(v) for v in sorted(supported))}." if supported else ""
    return InvalidRequest(f"Invalid value: '{value}'.{hint}", param=param, code="invalid_value")


def invalid_type(param: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}.", param=param, code="invalid_type"
    )


def validate_responses_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("We could not parse the JSON body of your request.")
    for key in body:
        if key not in KNOWN_PARAMS:
            raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise missing("model")
    value = body.get("input")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _validate_item(item, f"input[{i}]")
    elif not isinstance(value, str) and "prompt" not in body:
        raise missing("input")
    _validate_tools(body.get("tools"))
    include = body.get("include")
    if include is not None:
        if not isinstance(include, list):
            raise invalid_type("include", "an array")
        for i, name in enumerate(include):
            if name not in INCLUDABLE:
                raise invalid_value(f"include[{i}]", name, INCLUDABLE)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise InvalidRequest(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
            f"but got {limit} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )


def _validate_item(item: Any, at: str) -> None:
    if not isinstance(item, dict):
        raise invalid_type(at, "an object")
    kind = item.get("type", "message")
    if kind not in ITEM_TYPES:
        raise invalid_value(f"{at}.type", kind)
    if kind == "message":
        if item.get("role") not in ROLES:
            raise invalid_value(f"{at}.role", item.get("role"), ROLES)
        content = item.get("content")
        allowed = ASSISTANT_PARTS if item["role"] == "assistant" else INPUT_PARTS
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in allowed:
                    raise invalid_value(f"{at}.content[{j}]", kind, allowed)
        elif not isinstance(content, str):
            raise missing(f"{at}.content")
    elif kind == "function_call":
        for field in ("call_id", "name", "arguments"):
            if not isinstance(item.get(field), str):
                raise missing(f"{at}.{field}")
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise missing(f"{at}.call_id")
        if not isinstance(item.get("output"), str | list):
            raise missing(f"{at}.output")
    elif kind == "reasoning" and not isinstance(item.get("summary"), list):
        raise missing(f"{at}.summary")


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid_type("tools", "an array")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise missing(f"tools[{i}].type")
        # A function tool is flat here (``name`` beside ``type``), not nested as in chat completions.
        if tool["type"] == "function" and not isinstance(tool.get("name"), str):
            raise missing(f"tools[{i}].name")
