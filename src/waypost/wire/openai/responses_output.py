"""Responses API output items <-> canonical parts, shared by the body and stream translators.

Each canonical part is one output item, in order: a ``TextPart`` a ``message`` item with one
``output_text`` part, a ``ToolCallPart`` a ``function_call`` item, a ``ThinkingPart`` a
``reasoning`` item (its text as one ``summary_text``). Parts with nothing to say (empty text,
thinking without text or signature) make no item, so a stream and its body number items alike.
Item ids derive from the response id (``msg_<suffix>_<n>``, ``fc_...``, ``rs_...``): the wire
makes no random ids.

Reasoning signatures
--------------------
A reasoning item's ``encrypted_content`` is what the model needs back to continue its reasoning.
Canonically it is a ``ThinkingPart.signature`` prefixed ``openai:`` (``OPENAI_REASONING_PREFIX``),
so that the dialects of other providers drop it instead of replaying it. A Responses client sees:

* OpenAI's own blob as OpenAI sent it (it may take it to OpenAI directly);
* another provider's signature (Anthropic's, ``gemini:...``) as ``waypost:signature:<sig>``;
* Anthropic redacted thinking as ``waypost:redacted:<data>``.

``thinking_part`` reads all three back, for reasoning items a client sends as input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from waypost.core.types import ChatRequest, Part, TextPart, ThinkingPart, ToolCallPart
from waypost.wire.conventions import OPENAI_REASONING_PREFIX

FOREIGN_SIGNATURE = "waypost:signature:"
FOREIGN_REDACTED = "waypost:redacted:"
ItemStatus = Literal["completed", "incomplete"]
# A namespace tool's functions travel to other providers as ``<namespace>__<name>``.
NAMESPACE_SEPARATOR = "__"
Namespaces = Mapping[str, tuple[str, str]]  # flattened name -> (namespace, name)


def namespaces_of(req: ChatRequest) -> dict[str, tuple[str, str]]:
    """The flattened names of the namespace tools a Responses client sent (in ``tools`` or in an
    ``additional_tools`` input item), so that calls to them go back under their namespace."""
    body = req.passthrough.body if req.passthrough is not None else {}
    groups = list(body.get("tools") or [])
    value = body.get("input")
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict) and item.get("type") == "additional_tools":
            groups += item.get("tools") or []
    out: dict[str, tuple[str, str]] = {}
    for group in groups:
        if (
            isinstance(group, dict)
            and group.get("type") == "namespace"
            and isinstance(group.get("name"), str)
        ):
            for tool in group.get("tools") or []:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    out[f"{group['name']}{NAMESPACE_SEPARATOR}{tool['name']}"] = (group["name"], tool["name"])
    return out


# -- ids ---------------------------------------------------------------------------------------


def item_id(kind: str, response_id: str, output_index: int) -> str:
    """The id of an output item (``kind`` is ``msg``, ``fc`` or ``rs``) of a response."""
    return f"{kind}_{response_id.removeprefix('resp_')}_{output_index}"


def call_id(part_id: str, response_id: str, output_index: int) -> str:
    """A function call's ``call_id``: the upstream's, else one derived like the item ids."""
    return part_id or item_id("call", response_id, output_index)


# -- reasoning signatures ----------------------------------------------------------------------


def encrypted_content(part: ThinkingPart) -> str | None:
    """The ``encrypted_content`` a Responses client gets for a thinking part (module docstring)."""
    if part.redacted:
        return FOREIGN_REDACTED + part.data if part.data else None
    signature = part.signature
    if not signature:
        return None
    if signature.startswith(OPENAI_REASONING_PREFIX):
        return signature[len(OPENAI_REASONING_PREFIX) :]
    return FOREIGN_SIGNATURE + signature


def thinking_part(text: str, encrypted: str | None) -> ThinkingPart:
    """A reasoning item (its text and ``encrypted_content``) as a canonical thinking part."""
    if not encrypted:
        return ThinkingPart(text=text)
    if encrypted.startswith(FOREIGN_REDACTED):
        return ThinkingPart(redacted=True, data=encrypted[len(FOREIGN_REDACTED) :])
    if encrypted.startswith(FOREIGN_SIGNATURE):
        return ThinkingPart(text=text, signature=encrypted[len(FOREIGN_SIGNATURE) :])
    return ThinkingPart(text=text, signature=OPENAI_REASONING_PREFIX + encrypted)


def has_item(part: Part) -> bool:
    """Whether a response part becomes an output item (see the module docstring)."""
    if isinstance(part, TextPart):
        return bool(part.text)
    if isinstance(part, ThinkingPart):
        return bool(part.data) if part.redacted else bool(part.text or part.signature)
    return isinstance(part, ToolCallPart)


# -- canonical -> items --------------------------------------------------------------------------


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item: str, text: str | None, status: str) -> dict[str, Any]:
    """A ``message`` item; ``text`` None while its part has not begun (a stream's ``added``)."""
    content = [] if text is None else [output_text(text)]
    return {"id": item, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(
    item: str, call: str, name: str, arguments: str, status: str, namespaces: Namespaces | None = None
) -> dict[str, Any]:
    out = {"id": item, "type": "function_call", "status": status, "arguments": arguments, "call_id": call}
    if namespaces and (split := namespaces.get(name)) is not None:
        out["namespace"], out["name"] = split
    else:
        out["name"] = name
    return out


def reasoning_item(item: str, part: ThinkingPart | None) -> dict[str, Any]:
    """A ``reasoning`` item; ``part`` None for a stream's ``added`` (nothing known yet)."""
    out: dict[str, Any] = {"id": item, "type": "reasoning", "summary": []}
    if part is None:
        return out
    if part.text and not part.redacted:
        out["summary"] = [{"type": "summary_text", "text": part.text}]
    encrypted = encrypted_content(part)
    if encrypted is not None:
        out["encrypted_content"] = encrypted
    return out


def part_item(
    part: Part, response_id: str, output_index: int, status: str, namespaces: Namespaces | None = None
) -> dict[str, Any]:
    """The output item of one part that ``has_item``."""
    if isinstance(part, TextPart):
        return message_item(item_id("msg", response_id, output_index), part.text, status)
    if isinstance(part, ToolCallPart):
        return function_call_item(
            item_id("fc", response_id, output_index),
            call_id(part.id, response_id, output_index),
            part.name,
            part.arguments or "{}",
            status,
            namespaces,
        )
    assert isinstance(part, ThinkingPart)
    return reasoning_item(item_id("rs", response_id, output_index), part)


def output_items(
    parts: list[Part], response_id: str, *, last_status: ItemStatus, namespaces: Namespaces | None = None
) -> list[dict[str, Any]]:
    """The ``output`` array of a response; the last item gets ``last_status`` (a response cut
    short leaves its last item incomplete), the others are completed."""
    kept = [p for p in parts if has_item(p)]
    return [
        part_item(p, response_id, n, last_status if n == len(kept) - 1 else "completed", namespaces)
        for n, p in enumerate(kept)
    ]


# -- items -> canonical (upstream answers: untrusted, lenient) -----------------------------------


def text_field(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def content_text(part: Any) -> str:
    """The text of a message content part: ``output_text`` text or a ``refusal``."""
    if isinstance(part, dict) and part.get("type") == "refusal":
        return text_field(part, "refusal")
    return text_field(part, "text")


def reasoning_texts(item: Any, key: Literal["summary", "content"]) -> list[str]:
    parts = item.get(key) if isinstance(item, dict) else None
    return [text_field(p, "text") for p in parts] if isinstance(parts, list) else []


def joined_reasoning(texts: list[str]) -> str:
    """Reasoning parts as one text: the non-empty ones, a blank line between them."""
    return "\n\n".join(t for t in texts if t)


def reasoning_text(item: Any) -> str:
    """A reasoning item's text: its summary, else its raw reasoning content (open models)."""
    return joined_reasoning(reasoning_texts(item, "summary")) or joined_reasoning(
        reasoning_texts(item, "content")
    )
