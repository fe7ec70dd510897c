"""The request rules of the fake Gemini server: what the real API refuses and a translating gateway
is likely to get wrong (roles, empty parts, function-response pairing, base64 ``bytes`` fields, unknown
fields, URLs Gemini cannot read, JSON-Schema keys in the OpenAPI-subset ``parameters``)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

_REQUEST_FIELDS = {
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
}
_PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_PART_FIELDS = {
    *_PART_DATA,
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "partMetadata",
    "mediaResolution",
}
_GENERATION_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
}
_THINKING_FIELDS = {"thinkingBudget", "includeThoughts", "thinkingLevel"}
_DECLARATION_FIELDS = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
# The OpenAPI subset ``parameters`` accepts; JSON-Schema-only keys belong in parametersJsonSchema.
_SCHEMA_FIELDS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
EMBED_FIELDS = {"model", "content", "taskType", "title", "outputDimensionality"}
TASK_TYPES = {
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
}
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_FILE_URI = re.compile(
    r"^(gs://.+|https://generativelanguage\.googleapis\.com/v1[a-z0-9]*/files/[A-Za-z0-9_-]+)$"
)


class InvalidArgument(Exception):
    """A 400 ``INVALID_ARGUMENT`` the real API would answer."""


def _unknown(name: str, where: str) -> InvalidArgument:
    at = f" at '{where}'" if where else ""
    return InvalidArgument(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def check_fields(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    """Refuse unknown fields. Protobuf JSON also accepts the snake_case field names (the official SDK
    sends some), so those are renamed in place to the camelCase ones the rest of the fake reads."""
    for key in list(obj):
        if key in allowed:
            continue
        if _camel(key) in allowed and _camel(key) not in obj:
            obj[_camel(key)] = obj.pop(key)
            continue
        raise _unknown(key, where)


def _is_base64(value: Any) -> bool:
    """Whether ``value`` decodes as protobuf JSON decodes ``bytes`` fields (standard or URL-safe base64)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9+/_-]*={0,2}", value):
        return False
    normalised = value.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        base64.urlsafe_b64decode(normalised + "=" * (-len(normalised) % 4))
    except (binascii.Error, ValueError):
        return False
    return True


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"Invalid value at '{where}': expected an object.")
    return value


def _validate_part(part: Any, where: str) -> dict[str, Any]:
    part = as_object(part, where)
    check_fields(part, _PART_FIELDS, where)
    data = [k for k in _PART_DATA if k in part]
    if len(data) != 1:
        raise InvalidArgument(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        )
    if "text" in part and (
        not isinstance(part["text"], str) or (not part["text"] and not part.get("thought"))
    ):
        raise InvalidArgument(
            "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again."
        )
    if "thoughtSignature" in part and not _is_base64(part["thoughtSignature"]):
        raise InvalidArgument(
            f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 decoding failed for \"{str(part['thoughtSignature'])[:40]}\""
        )
    if "inlineData" in part:
        blob = as_object(part["inlineData"], f"{where}.inline_data")
        if not isinstance(blob.get("mimeType"), str) or not _is_base64(blob.get("data")):
            raise InvalidArgument(
                f"Invalid value at '{where}.inline_data': mimeType and base64 data are required"
            )
    if "fileData" in part:
        uri = as_object(part["fileData"], f"{where}.file_data").get("fileUri")
        if not isinstance(uri, str) or not _FILE_URI.match(uri):
            raise InvalidArgument(f"Invalid or unsupported file uri: {uri}")
    if "functionCall" in part:
        call = as_object(part["functionCall"], f"{where}.function_call")
        if not isinstance(call.get("name"), str) or not isinstance(call.get("args", {}), dict):
            raise InvalidArgument(
                f"* GenerateContentRequest.{where}.function_call.name: name is not specified"
            )
    if "functionResponse" in part:
        response = as_object(part["functionResponse"], f"{where}.function_response")
        if not isinstance(response.get("name"), str):
            raise InvalidArgument(
                f"* GenerateContentRequest.{where}.function_response.name: name is not specified"
            )
        if not isinstance(response.get("response"), dict):
            raise InvalidArgument(
                f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
            )
    return part


def validate_contents(contents: Any) -> list[dict[str, Any]]:
    if not isinstance(contents, list) or not contents:
        raise InvalidArgument("* GenerateContentRequest.contents: contents is not specified")
    previous_calls: list[dict[str, Any]] = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        content = as_object(content, where)
        check_fields(content, {"role", "parts"}, where)
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise InvalidArgument("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidArgument(
                f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
            )
        parts = [_validate_part(p, f"{where}.parts[{j}]") for j, p in enumerate(parts)]
        responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
        if responses or previous_calls:
            names = sorted(r["name"] for r in responses)
            if role != "user" or names != sorted(c["name"] for c in previous_calls):
                raise InvalidArgument(
                    "Please ensure that the number of function response parts is equal to the number of function "
                    "call parts of the function call turn."
                )
            ids = {c["id"] for c in previous_calls if "id" in c}
            if any("id" in r and r["id"] not in ids for r in responses):
                raise InvalidArgument(
                    "Function response id does not match any function call id of the previous turn."
                )
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        if calls and role != "model":
            raise InvalidArgument("Function calls must come from the model.")
        previous_calls = calls
    return contents


def _validate_schema(schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key not in _SCHEMA_FIELDS:
                raise _unknown(key, where)
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    _validate_schema(sub, f"{where}.properties[{name}].value")
            elif key in ("items", "anyOf"):
                for sub in value if isinstance(value, list) else [value]:
                    _validate_schema(sub, f"{where}.{key}")


def _validate_tools(tools: Any, tool_config: Any) -> set[str]:
    declared: set[str] = set()
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        tool = as_object(tool, f"tools[{i}]")
        for j, decl in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{i}].function_declarations[{j}]"
            decl = as_object(decl, where)
            check_fields(decl, _DECLARATION_FIELDS, where)
            if not isinstance(decl.get("name"), str) or not _FUNCTION_NAME.match(decl["name"]):
                raise InvalidArgument(f"* GenerateContentRequest.{where}.name: Invalid function name.")
            if "parameters" in decl and "parametersJsonSchema" in decl:
                raise InvalidArgument(
                    f"{where}: parameters and parameters_json_schema are mutually exclusive"
                )
            _validate_schema(decl.get("parameters"), f"{where}.parameters")
            declared.add(decl["name"])
    if tool_config is not None:
        config = as_object(
            as_object(tool_config, "tool_config").get("functionCallingConfig", {}), "function_calling_config"
        )
        if config.get("mode", "AUTO") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
            raise InvalidArgument(
                f"Invalid value at 'tool_config.function_calling_config.mode': {config.get('mode')}"
            )
        allowed = config.get("allowedFunctionNames")
        if allowed is not None and (config.get("mode") != "ANY" or not set(allowed) <= declared):
            raise InvalidArgument("allowed_function_names must name declared functions and needs mode ANY.")
    return declared


def _validate_generation_config(config: Any) -> dict[str, Any]:
    config = as_object(config, "generation_config")
    check_fields(config, _GENERATION_FIELDS, "generation_config")
    thinking = as_object(config.get("thinkingConfig", {}), "generation_config.thinking_config")
    check_fields(thinking, _THINKING_FIELDS, "generation_config.thinking_config")
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        raise InvalidArgument("You can only set only one of thinking budget and thinking level.")
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise InvalidArgument("response_schema and response_json_schema are mutually exclusive.")
    if "responseJsonSchema" in config and config.get("responseMimeType") != "application/json":
        raise InvalidArgument("response_json_schema requires response_mime_type application/json.")
    if len(config.get("stopSequences") or []) > 5:
        raise InvalidArgument(
            "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences."
        )
    max_tokens = config.get("maxOutputTokens", 1)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidArgument(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be positive."
        )
    return config


def validate_generate_request(body: Any, *, count_only: bool = False) -> dict[str, Any]:
    """Reject what the real ``generateContent`` rejects (and a translating gateway gets wrong)."""
    body = as_object(body, "")
    check_fields(body, _REQUEST_FIELDS | ({"model"} if count_only else set()), "")
    validate_contents(body.get("contents"))
    system = body.get("systemInstruction")
    if system is not None:
        parts = as_object(system, "system_instruction").get("parts")
        if not isinstance(parts, list) or not all(
            isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts
        ):
            raise InvalidArgument("system_instruction: only text parts are supported.")
    _validate_tools(body.get("tools"), body.get("toolConfig"))
    _validate_generation_config(body.get("generationConfig", {}))
    return body


def active_loop(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model turns Gemini 3 checks signatures in: after the last user turn with more than function responses."""
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and any(
            "functionResponse" not in p for p in content["parts"]
        ):
            start = i + 1
    return [c for c in contents[start:] if c.get("role") == "model"]
