"""Responses API input items <-> canonical messages.

An input is a list of items: messages (``type: message``, or no ``type`` with a ``role``),
``function_call`` and ``function_call_output`` items, and ``reasoning`` items. Canonically:

* ``system`` and ``developer`` messages are system messages; user messages are user messages;
* the assistant side of a turn (reasoning items, assistant messages, function calls, in order)
  is one assistant message; consecutive ``function_call_output`` items are one user message of
  tool results (the canonical convention, ``core.types``);
* a reasoning item is a ``ThinkingPart`` read back with ``responses_output.thinking_part``.

Items that only a Responses upstream understands (built-in tool calls, ``additional_tools``...)
stay in the pass-through body and are dropped here with a note; ``item_reference`` and uploaded
file ids, which point at OpenAI's own storage, are refused.
"""

from __future__ import annotations

from typing import Any

from waypost.core.errors import BadRequest
from waypost.core.types import (
    DocumentPart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from waypost.wire.openai.chat_decode import parse_data_url
from waypost.wire.openai.fields import arguments_field, bad_type, list_field, missing, object_value, str_field
from waypost.wire.openai.responses_output import NAMESPACE_SEPARATOR, encrypted_content, thinking_part

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def _no_file_ids(param: str) -> BadRequest:
    return BadRequest(
        f"Invalid '{param}': uploaded file ids are not supported by this gateway; send the file's "
        "content (file_data, or image_url as a data: or https: URL) instead.",
        param=param,
    )


def _image(part: dict[str, Any], param: str) -> ImagePart:
    detail = str_field(part, "detail", f"{param}.detail")
    url = str_field(part, "image_url", f"{param}.image_url")
    if url is None:
        if part.get("file_id") is not None:
            raise _no_file_ids(f"{param}.file_id")
        raise missing(f"{param}.image_url")
    if url.startswith("data:"):
        data, media_type = parse_data_url(url, f"{param}.image_url")
        return ImagePart(data=data, media_type=media_type, detail=detail)
    return ImagePart(url=url, detail=detail)


def _file(part: dict[str, Any], param: str) -> DocumentPart:
    filename = str_field(part, "filename", f"{param}.filename")
    data = str_field(part, "file_data", f"{param}.file_data")
    if data is not None:
        if data.startswith("data:"):
            payload, media_type = parse_data_url(data, f"{param}.file_data")
        else:  # bare base64: the Responses API takes PDFs this way
            payload, media_type = data, "application/pdf"
        return DocumentPart(data=payload, media_type=media_type, filename=filename)
    url = str_field(part, "file_url", f"{param}.file_url")
    if url is not None:
        return DocumentPart(url=url, filename=filename)
    if part.get("file_id") is not None:
        raise _no_file_ids(f"{param}.file_id")
    raise missing(f"{param}.file_data")


def content_parts(value: Any, param: str, notes: list[str]) -> list[TextPart | ImagePart | DocumentPart]:
    """A message's (or a tool output's) ``content``: a string or a list of parts."""
    if value is None:
        return []
    if isinstance(value, str):
        return [TextPart(text=value)] if value else []
    if not isinstance(value, list):
        raise bad_type(param, "one of a string or array of objects", value)
    parts: list[TextPart | ImagePart | DocumentPart] = []
    for j, raw in enumerate(value):
        pparam = f"{param}[{j}]"
        part = object_value(raw, pparam)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(text=str_field(part, "text", f"{pparam}.text", required=True) or ""))
        elif kind == "refusal":
            parts.append(TextPart(text=str_field(part, "refusal", f"{pparam}.refusal", required=True) or ""))
        elif kind == "input_image":
            parts.append(_image(part, pparam))
        elif kind == "input_file":
            parts.append(_file(part, pparam))
        elif kind is None:
            raise missing(f"{pparam}.type")
        elif not isinstance(kind, str):
            raise bad_type(f"{pparam}.type", "a string", kind)
        else:
            _note(notes, f"content part type {kind!r} dropped")
    return parts


def _reasoning(item: dict[str, Any], param: str) -> ThinkingPart | None:
    texts: list[str] = []
    for key in ("content", "summary"):
        for j, raw in enumerate(list_field(item, key, f"{param}.{key}") or []):
            part = object_value(raw, f"{param}.{key}[{j}]")
            texts.append(str_field(part, "text", f"{param}.{key}[{j}].text") or "")
        if texts:  # the full reasoning text when given, else its summary
            break
    encrypted = str_field(item, "encrypted_content", f"{param}.encrypted_content")
    thinking = thinking_part("\n\n".join(t for t in texts if t), encrypted)
    return thinking if thinking.text or thinking.signature or thinking.data else None


class _Turns:
    """Builds the message list, merging an assistant turn's items and consecutive tool outputs."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes
        self.messages: list[Message] = []

    def _open(self, role: str) -> Message:
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == role and role == "assistant":
            return last
        if (
            last is not None
            and role == "user"
            and last.role == "user"
            and last.content
            and all(isinstance(p, ToolResultPart) for p in last.content)
        ):
            return last
        message = Message(role="assistant" if role == "assistant" else "user")
        self.messages.append(message)
        return message

    def add(self, raw: Any, param: str) -> None:
        item = object_value(raw, param)
        kind = item.get("type")
        if kind is None or kind == "message":
            self._message(item, param)
        elif kind == "function_call":
            name = str_field(item, "name", f"{param}.name", required=True) or ""
            namespace = str_field(item, "namespace", f"{param}.namespace")
            if namespace:
                name = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
            call = str_field(item, "call_id", f"{param}.call_id", required=True) or ""
            self._open("assistant").content.append(
                ToolCallPart(id=call, name=name, arguments=arguments_field(item, f"{param}.arguments"))
            )
        elif kind == "function_call_output":
            call = str_field(item, "call_id", f"{param}.call_id", required=True) or ""
            output = item.get("output")
            if output is None:
                raise missing(f"{param}.output")
            parts = content_parts(output, f"{param}.output", self.notes)
            self._open("user").content.append(ToolResultPart(tool_call_id=call, content=list(parts)))
        elif kind == "reasoning":
            part = _reasoning(item, param)
            if part is not None:
                self._open("assistant").content.append(part)
        elif kind == "additional_tools":
            return  # tools, not conversation: the request decoder reads them (``responses_request``)
        elif kind == "item_reference":
            raise BadRequest(
                f"Invalid '{param}': item references are not supported by this gateway; send the "
                "items themselves, or continue with previous_response_id.",
                param=f"{param}.type",
            )
        elif not isinstance(kind, str):
            raise bad_type(f"{param}.type", "a string", kind)
        else:
            _note(self.notes, f"input item type {kind!r} dropped: only a Responses API upstream takes it")

    def _message(self, item: dict[str, Any], param: str) -> None:
        role = item.get("role")
        if role is None:
            raise missing(f"{param}.role")
        canonical = _ROLES.get(role) if isinstance(role, str) else None
        if canonical is None:
            raise BadRequest(
                f"Invalid value for '{param}.role': {role!r}. Supported values are: 'user', "
                "'assistant', 'system' and 'developer'.",
                param=f"{param}.role",
            )
        if "content" not in item:
            raise missing(f"{param}.content")
        parts = content_parts(item["content"], f"{param}.content", self.notes)
        if canonical == "assistant":
            self._open("assistant").content.extend(parts)
        else:
            self.messages.append(Message(role=canonical, content=list(parts)))  # type: ignore[arg-type]


def items_to_messages(items: list[Any], notes: list[str]) -> list[Message]:
    """The ``input`` items (already a list) as canonical messages; ``notes`` gets what was dropped."""
    turns = _Turns(notes)
    for i, raw in enumerate(items):
        turns.add(raw, f"input[{i}]")
    return turns.messages


# -- canonical -> input items (an upstream that speaks the Responses API) ----------------------


def _part_out(part: Part, role: str) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        url = part.url or f"data:{part.media_type or 'image/png'};base64,{part.data}"
        image: dict[str, Any] = {"type": "input_image", "image_url": url, "detail": part.detail or "auto"}
        return image
    if isinstance(part, DocumentPart):
        if part.text is not None:
            return {"type": "input_text", "text": part.text}
        doc: dict[str, Any] = {"type": "input_file"}
        if part.url:
            doc["file_url"] = part.url
        else:
            doc["file_data"] = f"data:{part.media_type or 'application/pdf'};base64,{part.data}"
        doc["filename"] = part.filename or part.title or "document.pdf"
        return doc
    return None


def messages_to_items(messages: list[Message], dropped: list[str]) -> tuple[str | None, list[dict[str, Any]]]:
    """Canonical messages as ``instructions`` (the leading system text) and input items."""
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    leading = True
    for message in messages:
        if message.role == "system" and leading:
            instructions.append(message.text())
            continue
        leading = False
        if message.role == "assistant":
            for part in message.content:
                if isinstance(part, ToolCallPart):
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": part.id,
                            "name": part.name,
                            "arguments": part.arguments,
                        }
                    )
                elif isinstance(part, ThinkingPart):
                    encrypted = encrypted_content(part)
                    if encrypted is None or encrypted.startswith(("waypost:",)):
                        _note(
                            dropped,
                            "thinking not signed by OpenAI dropped: only OpenAI reads its reasoning back",
                        )
                        continue
                    items.append(
                        {
                            "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": part.text}] if part.text else [],
                            "encrypted_content": encrypted,
                        }
                    )
                elif (out := _part_out(part, "assistant")) is not None:
                    items.append({"type": "message", "role": "assistant", "content": [out]})
            continue
        content: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, ToolResultPart):
                if content:
                    items.append({"type": "message", "role": message.role, "content": content})
                    content = []
                outputs = [o for p in part.content if (o := _part_out(p, "user")) is not None]
                only_text = all(o["type"] == "input_text" for o in outputs)
                output: Any = "".join(o["text"] for o in outputs) if only_text else outputs
                items.append({"type": "function_call_output", "call_id": part.tool_call_id, "output": output})
            elif (out := _part_out(part, message.role)) is not None:
                content.append(out)
        if content:
            role = "developer" if message.role == "system" else message.role
            items.append({"type": "message", "role": role, "content": content})
    return ("\n\n".join(t for t in instructions if t) or None), items
