"""What the fake Bedrock rejects: the Converse API's shape and the rules a translating gateway is
likely to break (blank text, roles out of turn, tool blocks without a toolConfig, unknown keys).
Messages follow Bedrock's own wording where it is known."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

CONVERSE_KEYS = {
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
}
_BLOCK_KEYS = {
    "text",
    "image",
    "document",
    "video",
    "audio",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
    "searchResult",
}
_IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}
_DOCUMENT_FORMATS = {"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"}
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_.:-]{1,64}$")
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DOC_NAME = re.compile(r"^(?!.*\s\s)[A-Za-z0-9\s()\[\]-]{1,200}$")


class ValidationError(Exception):
    """A 400 ``ValidationException`` the real service would answer."""


def _fail(message: str) -> ValidationError:
    return ValidationError(message)


def _base64(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise _fail(f"{where}: bytes must be a non-empty base64 string")
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _fail(f"{where}: bytes is not valid base64") from None


def validate_converse(body: Any, *, count_only: bool = False) -> None:
    if not isinstance(body, dict):
        raise _fail("Malformed input request, please reformat your input and try again.")
    allowed = (
        {"messages", "system", "toolConfig", "additionalModelRequestFields"} if count_only else CONVERSE_KEYS
    )
    for key in body:
        if key not in allowed:
            raise _fail(f"Malformed input request: extraneous key [{key}] is not permitted")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("Malformed input request: messages must be a non-empty list")
    _validate_system(body.get("system"))
    tool_blocks = _validate_messages(messages)
    config = body.get("toolConfig")
    if tool_blocks and config is None:
        raise _fail("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    if config is not None:
        _validate_tool_config(config)
    if not count_only:
        _validate_inference(body.get("inferenceConfig"))


def _validate_system(system: Any) -> None:
    if system is None:
        return
    if not isinstance(system, list):
        raise _fail("Malformed input request: system must be a list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in ("text", "cachePoint"):
            raise _fail(f"system.{i}: a system block is exactly one of text, cachePoint")
        if "text" in block and (not isinstance(block["text"], str) or not block["text"].strip()):
            raise _fail(f"The text field in the SystemContentBlock object at system.{i} is blank.")


def _validate_messages(messages: list[Any]) -> bool:
    previous_role: str | None = None
    open_uses: list[str] = []
    tool_blocks = False
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise _fail(f"Malformed input request: {where} has unexpected keys")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _fail(f"{where}.role: must be user or assistant")
        if previous_role is None and role != "user":
            raise _fail(
                "A conversation must start with a user message. Try again with a conversation that starts "
                "with a user message."
            )
        if previous_role == role:
            raise _fail(
                "A conversation must alternate between user and assistant roles. Make sure the conversation "
                "alternates between user and assistant roles and try again."
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _fail(f"The content field in the Message object at {where} is empty.")
        if "cachePoint" in content[0]:
            raise _fail(f"{where}.content.0: a cachePoint cannot be the first block")
        uses: list[str] = []
        results: list[str] = []
        for j, block in enumerate(content):
            at = f"{where}.content.{j}"
            kind = _validate_block(block, at, role)
            if kind == "toolUse":
                uses.append(block["toolUse"]["toolUseId"])
            elif kind == "toolResult":
                results.append(block["toolResult"]["toolUseId"])
            tool_blocks = tool_blocks or kind in ("toolUse", "toolResult")
        if role == "user":
            for tool_id in results:
                if tool_id not in open_uses:
                    raise _fail(
                        f"{where}: toolResult {tool_id} has no matching toolUse in the previous assistant turn"
                    )
            missing = [t for t in open_uses if t not in results]
            if missing:
                raise _fail(
                    f"Expected toolResult blocks at {where}.content for the following Ids: {', '.join(missing)}"
                )
        elif results:
            raise _fail(f"{where}: toolResult blocks belong in user messages")
        open_uses = uses if role == "assistant" else []
        previous_role = role
    return tool_blocks


def _validate_block(block: Any, at: str, role: str) -> str:
    if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in _BLOCK_KEYS:
        raise _fail(f"{at}: a content block is exactly one of {', '.join(sorted(_BLOCK_KEYS))}")
    kind = next(iter(block))
    value = block[kind]
    if kind == "text":
        if not isinstance(value, str) or not value.strip():
            raise _fail(
                f"The text field in the ContentBlock object at {at} is blank. Add text to the text field, and try again."
            )
    elif kind == "image":
        _validate_image(value, at)
    elif kind == "document":
        _validate_document(value, at)
    elif kind == "toolUse":
        if role != "assistant":
            raise _fail(f"{at}: toolUse blocks belong in assistant messages")
        if not isinstance(value, dict) or not _TOOL_ID.match(str(value.get("toolUseId", ""))):
            raise _fail(f"{at}.toolUse.toolUseId: must match [a-zA-Z0-9_.:-]{{1,64}}")
        if not _TOOL_NAME.match(str(value.get("name", ""))):
            raise _fail(f"{at}.toolUse.name: must match [a-zA-Z0-9_-]{{1,64}}")
        if "input" not in value:
            raise _fail(f"{at}.toolUse.input: required")
    elif kind == "toolResult":
        _validate_tool_result(value, at)
    elif kind == "cachePoint":
        if not isinstance(value, dict) or value.get("type") != "default":
            raise _fail(f"{at}.cachePoint.type: must be default")
    elif kind == "reasoningContent":
        if role != "assistant":
            raise _fail(f"{at}: reasoningContent blocks belong in assistant messages")
        if not isinstance(value, dict) or len(value) != 1:
            raise _fail(f"{at}.reasoningContent: exactly one of reasoningText, redactedContent")
        text = value.get("reasoningText")
        if text is not None and (not isinstance(text, dict) or not isinstance(text.get("text"), str)):
            raise _fail(f"{at}.reasoningContent.reasoningText.text: required")
    return kind


def _validate_image(value: Any, at: str) -> None:
    if not isinstance(value, dict) or value.get("format") not in _IMAGE_FORMATS:
        raise _fail(f"{at}.image.format: must be one of png, jpeg, gif, webp")
    source = value.get("source")
    if not isinstance(source, dict) or set(source) != {"bytes"}:
        raise _fail(f"{at}.image.source: bytes required")
    _base64(source["bytes"], f"{at}.image.source")


def _validate_document(value: Any, at: str) -> None:
    if not isinstance(value, dict) or value.get("format") not in _DOCUMENT_FORMATS:
        raise _fail(f"{at}.document.format: not a supported document format")
    if not _DOC_NAME.match(str(value.get("name", ""))):
        raise _fail(
            f"{at}.document.name: The document file name can only contain alphanumeric characters, whitespace "
            "characters, hyphens, parentheses, and square brackets."
        )
    source = value.get("source")
    if not isinstance(source, dict) or set(source) != {"bytes"}:
        raise _fail(f"{at}.document.source: bytes required")
    _base64(source["bytes"], f"{at}.document.source")


def _validate_tool_result(value: Any, at: str) -> None:
    if not isinstance(value, dict) or not _TOOL_ID.match(str(value.get("toolUseId", ""))):
        raise _fail(f"{at}.toolResult.toolUseId: must match [a-zA-Z0-9_.:-]{{1,64}}")
    if value.get("status", "success") not in ("success", "error"):
        raise _fail(f"{at}.toolResult.status: must be success or error")
    content = value.get("content")
    if not isinstance(content, list) or not content:
        raise _fail(f"{at}.toolResult.content: must be a non-empty list")
    for k, item in enumerate(content):
        where = f"{at}.toolResult.content.{k}"
        if (
            not isinstance(item, dict)
            or len(item) != 1
            or next(iter(item)) not in ("text", "json", "image", "document")
        ):
            raise _fail(f"{where}: exactly one of text, json, image, document")
        if "text" in item and (not isinstance(item["text"], str) or not item["text"].strip()):
            raise _fail(f"The text field in the ToolResultContentBlock object at {where} is blank.")
        if "image" in item:
            _validate_image(item["image"], where)
        if "document" in item:
            _validate_document(item["document"], where)


def _validate_tool_config(config: Any) -> None:
    if not isinstance(config, dict) or set(config) - {"tools", "toolChoice"}:
        raise _fail("Malformed input request: toolConfig has unexpected keys")
    tools = config.get("tools")
    if not isinstance(tools, list) or not tools:
        raise _fail("The value at toolConfig.tools must be a non-empty list.")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or len(tool) != 1 or next(iter(tool)) not in ("toolSpec", "cachePoint"):
            raise _fail(f"toolConfig.tools.{i}: exactly one of toolSpec, cachePoint")
        spec = tool.get("toolSpec")
        if spec is None:
            continue
        if not isinstance(spec, dict) or not _TOOL_NAME.match(str(spec.get("name", ""))):
            raise _fail(f"toolConfig.tools.{i}.toolSpec.name: must match [a-zA-Z0-9_-]{{1,64}}")
        schema = spec.get("inputSchema")
        if not isinstance(schema, dict) or not isinstance(schema.get("json"), dict):
            raise _fail(f"toolConfig.tools.{i}.toolSpec.inputSchema.json: required")
        if "description" in spec and not (isinstance(spec["description"], str) and spec["description"]):
            raise _fail(f"toolConfig.tools.{i}.toolSpec.description: must not be empty")
    choice = config.get("toolChoice")
    if choice is not None and (
        not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool")
    ):
        raise _fail("toolConfig.toolChoice: exactly one of auto, any, tool")


def _validate_inference(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict) or set(config) - {"maxTokens", "temperature", "topP", "stopSequences"}:
        raise _fail("Malformed input request: inferenceConfig has unexpected keys")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _fail("inferenceConfig.maxTokens: must be an integer of at least 1")
    for key in ("temperature", "topP"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 1):
            raise _fail(f"inferenceConfig.{key}: must be between 0 and 1")
    stops = config.get("stopSequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops)
    ):
        raise _fail("inferenceConfig.stopSequences: must be a list of non-empty strings")
