"""Anthropic Messages request body (from a client) -> canonical ``ChatRequest``.

Shapes are validated as the API would (a wrong shape is a ``BadRequest`` naming the field by its
dotted path, e.g. ``messages.1.content.0.source``), but block and tool *types* we do not model
(server tools and their results, search results, tool references...) are dropped with a note:
Claude Code and newer SDKs send them routinely and they must never cause a 400. The original body
stays as the request's ``passthrough`` so an Anthropic upstream receives it untouched.
"""

from __future__ import annotations

from typing import Any, Literal

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
from waypost.wire.conventions import compact_json
from waypost.wire.steering import is_steering_key

# Top-level fields the canonical model carries; any other is kept only in the pass-through.
_MODELLED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
    }
)

_ResultContent = TextPart | ImagePart | DocumentPart


class _Decoder:
    __slots__ = ("notes",)

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- messages ---------------------------------------------------------------------------

    def system(self, value: Any, path: str) -> Message:
        if isinstance(value, str):
            return Message(role="system", content=[TextPart(text=value)] if value else [])
        blocks = _list(value, path, "a string or a list of text blocks")
        parts: list[Part] = []
        for i, block in enumerate(blocks):
            bpath = f"{path}.{i}"
            obj = _obj(block, bpath)
            btype = _block_type(obj, bpath)
            if btype != "text":
                self.note(f"dropped a '{btype}' block from a system prompt")
                continue
            parts.append(self.text(obj, bpath))
        return Message(role="system", content=parts)

    def message(self, value: Any, path: str) -> Message:
        obj = _obj(value, path)
        role = obj.get("role")
        if role not in ("user", "assistant", "system"):
            raise BadRequest(
                f"{path}.role: expected 'user', 'assistant' or 'system', got {role!r}",
                param=f"{path}.role",
            )
        if "content" not in obj:
            raise BadRequest(f"{path}.content: field required", param=f"{path}.content")
        content = obj["content"]
        if role == "system":
            return self.system(content, f"{path}.content")
        if isinstance(content, str):
            return Message(role=role, content=[TextPart(text=content)])
        blocks = _list(content, f"{path}.content", "a string or a list of content blocks")
        parts: list[Part] = []
        for i, block in enumerate(blocks):
            part = self.block(block, f"{path}.content.{i}")
            if part is not None:
                parts.append(part)
        return Message(role=role, content=parts)

    def block(self, value: Any, path: str) -> Part | None:
        obj = _obj(value, path)
        btype = _block_type(obj, path)
        if btype == "text":
            return self.text(obj, path)
        if btype == "image":
            return self.image(obj, path)
        if btype == "document":
            return self.document(obj, path)
        if btype == "tool_use":
            tool_id = _str(obj.get("id"), f"{path}.id")
            name = _str(obj.get("name"), f"{path}.name")
            arguments = compact_json(_obj(obj.get("input"), f"{path}.input"))
            return ToolCallPart(id=tool_id, name=name, arguments=arguments)
        if btype == "tool_result":
            return self.tool_result(obj, path)
        if btype == "thinking":
            text = _str(obj.get("thinking"), f"{path}.thinking", allow_empty=True)
            signature = _opt_str(obj.get("signature"), f"{path}.signature")
            return ThinkingPart(text=text, signature=signature or None)
        if btype == "redacted_thinking":
            data = _str(obj.get("data"), f"{path}.data")
            return ThinkingPart(redacted=True, data=data)
        self.note(f"dropped '{btype}' content blocks (not carried outside the Anthropic format)")
        return None

    def text(self, obj: dict[str, Any], path: str) -> TextPart:
        text = _str(obj.get("text"), f"{path}.text", allow_empty=True)
        if obj.get("citations"):
            self.note("dropped citations on text blocks")
        return TextPart(text=text, cache_control=_cache_control(obj, path))

    def image(self, obj: dict[str, Any], path: str) -> ImagePart | None:
        source = _obj(obj.get("source"), f"{path}.source")
        stype = source.get("type")
        cache = _cache_control(obj, path)
        if stype == "base64":
            return ImagePart(
                data=_str(source.get("data"), f"{path}.source.data"),
                media_type=_str(source.get("media_type"), f"{path}.source.media_type"),
                cache_control=cache,
            )
        if stype == "url":
            return ImagePart(url=_str(source.get("url"), f"{path}.source.url"), cache_control=cache)
        if isinstance(stype, str):
            self.note(f"dropped an image given by a '{stype}' source")
            return None
        raise BadRequest(f"{path}.source.type: field required", param=f"{path}.source.type")

    def document(self, obj: dict[str, Any], path: str) -> DocumentPart | None:
        source = _obj(obj.get("source"), f"{path}.source")
        stype = source.get("type")
        title = _opt_str(obj.get("title"), f"{path}.title")
        cache = _cache_control(obj, path)
        spath = f"{path}.source"
        if stype == "base64":
            return DocumentPart(
                data=_str(source.get("data"), f"{spath}.data"),
                media_type=_str(source.get("media_type"), f"{spath}.media_type"),
                title=title,
                cache_control=cache,
            )
        if stype == "text":
            return DocumentPart(
                text=_str(source.get("data"), f"{spath}.data", allow_empty=True),
                media_type=_opt_str(source.get("media_type"), f"{spath}.media_type") or "text/plain",
                title=title,
                cache_control=cache,
            )
        if stype == "url":
            return DocumentPart(url=_str(source.get("url"), f"{spath}.url"), title=title, cache_control=cache)
        if stype == "content":
            # A document assembled from content blocks: its text survives, its structure does not.
            inner = source.get("content")
            if isinstance(inner, str):
                text = inner
            else:
                items = _list(inner, f"{spath}.content", "a string or a list of content blocks")
                text = "\n\n".join(
                    b["text"] for b in items if isinstance(b, dict) and isinstance(b.get("text"), str)
                )
                self.note("flattened a content-sourced document to its text")
            return DocumentPart(text=text, media_type="text/plain", title=title, cache_control=cache)
        if isinstance(stype, str):
            self.note(f"dropped a document given by a '{stype}' source")
            return None
        raise BadRequest(f"{spath}.type: field required", param=f"{spath}.type")

    def tool_result(self, obj: dict[str, Any], path: str) -> ToolResultPart:
        tool_use_id = _str(obj.get("tool_use_id"), f"{path}.tool_use_id")
        is_error = obj.get("is_error", False)
        if not isinstance(is_error, bool):
            is_error = bool(is_error) if is_error is not None else False
        content: list[_ResultContent] = []
        raw = obj.get("content")
        if isinstance(raw, str):
            if raw:
                content.append(TextPart(text=raw))
        elif raw is not None:
            items = _list(raw, f"{path}.content", "a string or a list of content blocks")
            for i, item in enumerate(items):
                ipath = f"{path}.content.{i}"
                iobj = _obj(item, ipath)
                itype = _block_type(iobj, ipath)
                part: _ResultContent | None
                if itype == "text":
                    part = self.text(iobj, ipath)
                elif itype == "image":
                    part = self.image(iobj, ipath)
                elif itype == "document":
                    part = self.document(iobj, ipath)
                else:
                    self.note(f"dropped '{itype}' blocks inside tool results")
                    part = None
                if part is not None:
                    content.append(part)
        return ToolResultPart(
            tool_call_id=tool_use_id,
            content=content,
            is_error=is_error,
            cache_control=_cache_control(obj, path),
        )

    # -- tools and options ------------------------------------------------------------------

    def tools(self, value: Any) -> list[Tool]:
        out: list[Tool] = []
        for i, item in enumerate(_list(value, "tools", "a list of tools")):
            path = f"tools.{i}"
            obj = _obj(item, path)
            ttype = obj.get("type")
            if ttype not in (None, "custom"):
                self.note(f"dropped server tool '{ttype}' (only Anthropic upstreams run it)")
                continue
            schema = _obj(obj.get("input_schema"), f"{path}.input_schema")
            strict = obj.get("strict")
            out.append(
                Tool(
                    name=_str(obj.get("name"), f"{path}.name"),
                    description=_opt_str(obj.get("description"), f"{path}.description"),
                    parameters=schema,
                    strict=strict if isinstance(strict, bool) else None,
                    cache_control=_cache_control(obj, path),
                )
            )
        return out

    def tool_choice(self, value: Any) -> ToolChoice:
        obj = _obj(value, "tool_choice")
        ctype = obj.get("type")
        modes: dict[str, Literal["auto", "none", "required", "tool"]] = {
            "auto": "auto",
            "any": "required",
            "tool": "tool",
            "none": "none",
        }
        if not isinstance(ctype, str) or ctype not in modes:
            raise BadRequest(
                f"tool_choice.type: expected 'auto', 'any', 'tool' or 'none', got {ctype!r}",
                param="tool_choice.type",
            )
        name = _str(obj.get("name"), "tool_choice.name") if ctype == "tool" else None
        disable = obj.get("disable_parallel_tool_use")
        parallel = (not disable) if isinstance(disable, bool) else None
        return ToolChoice(mode=modes[ctype], name=name, parallel=parallel)

    def thinking(self, value: Any) -> Thinking | None:
        obj = _obj(value, "thinking")
        ttype = obj.get("type")
        if ttype == "enabled":
            budget = _positive_int(obj.get("budget_tokens"), "thinking.budget_tokens")
            return Thinking(enabled=True, budget_tokens=budget)
        if ttype == "adaptive":
            return Thinking(enabled=True, adaptive=True)
        if ttype == "disabled":
            return Thinking(enabled=False)
        if isinstance(ttype, str):
            # e.g. "between_tools": the nearest canonical meaning is "the model decides".
            self.note(f"thinking type '{ttype}' carried as adaptive thinking")
            return Thinking(enabled=True, adaptive=True)
        raise BadRequest("thinking.type: field required", param="thinking.type")

    def output_config(self, value: Any, req: ChatRequest) -> None:
        obj = _obj(value, "output_config")
        effort = obj.get("effort")
        if effort is not None:
            effort = _str(effort, "output_config.effort")
            if req.thinking is None:
                req.thinking = Thinking(enabled=True, adaptive=True, effort=effort)
            else:
                req.thinking.effort = effort
        fmt = obj.get("format")
        if fmt is not None:
            fobj = _obj(fmt, "output_config.format")
            if fobj.get("type") == "json_schema":
                schema = _obj(fobj.get("schema"), "output_config.format.schema")
                req.response_format = ResponseFormat(type="json_schema", schema=schema)
            else:
                self.note(f"dropped output_config.format of type {fobj.get('type')!r}")


def decode_request(body: Any) -> ChatRequest:
    """A client's Messages request body -> canonical request (``source_format="anthropic"``)."""
    obj = _obj(body, "body")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: a non-empty string is required", param="model")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages: a non-empty list is required", param="messages")
    if "max_tokens" not in obj:
        raise BadRequest("max_tokens: field required", param="max_tokens")
    max_tokens = _int(obj["max_tokens"], "max_tokens", minimum=0)

    dec = _Decoder()
    messages: list[Message] = []
    if obj.get("system") is not None:
        system = dec.system(obj["system"], "system")
        if system.content:
            messages.append(system)
    messages += [dec.message(m, f"messages.{i}") for i, m in enumerate(raw_messages)]

    req = ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        source_format="anthropic",
        passthrough=Passthrough(obj),
    )
    req.temperature = _opt_number(obj.get("temperature"), "temperature")
    req.top_p = _opt_number(obj.get("top_p"), "top_p")
    if obj.get("top_k") is not None:
        req.top_k = _int(obj["top_k"], "top_k", minimum=0)
    stops = obj.get("stop_sequences")
    if stops is not None:
        req.stop = [
            _str(s, f"stop_sequences.{i}", allow_empty=True)
            for i, s in enumerate(_list(stops, "stop_sequences", "a list of strings"))
        ]
    stream = obj.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream: expected a boolean", param="stream")
    req.stream = bool(stream)
    metadata = obj.get("metadata")
    if metadata is not None:
        user_id = _obj(metadata, "metadata").get("user_id")
        req.user = _opt_str(user_id, "metadata.user_id")
    if obj.get("tools") is not None:
        req.tools = dec.tools(obj["tools"])
    if obj.get("tool_choice") is not None:
        req.tool_choice = dec.tool_choice(obj["tool_choice"])
    if obj.get("thinking") is not None:
        req.thinking = dec.thinking(obj["thinking"])
    if obj.get("output_config") is not None:
        dec.output_config(obj["output_config"], req)

    # Steering fields never reach an upstream (pipeline.bounds drops or refuses them).
    others = sorted(k for k in obj if k not in _MODELLED_FIELDS and not is_steering_key(k))
    if others:
        dec.note("fields kept only for Anthropic upstreams: " + ", ".join(others))
    req.notes += dec.notes
    return req


# -- shape checks (each raises BadRequest naming the field) -----------------------------------


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{path}: expected an object", param=path)
    return value


def _list(value: Any, path: str, expected: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{path}: expected {expected}", param=path)
    return value


def _block_type(obj: dict[str, Any], path: str) -> str:
    btype = obj.get("type")
    if not isinstance(btype, str) or not btype:
        raise BadRequest(f"{path}.type: field required", param=f"{path}.type")
    return btype


def _str(value: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not allow_empty):
        raise BadRequest(f"{path}: expected a non-empty string", param=path)
    return value


def _opt_str(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{path}: expected a string", param=path)
    return value


def _int(value: Any, path: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadRequest(f"{path}: expected an integer >= {minimum}", param=path)
    return value


def _positive_int(value: Any, path: str) -> int:
    return _int(value, path, minimum=1)


def _opt_number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{path}: expected a number", param=path)
    return float(value)


def _cache_control(obj: dict[str, Any], path: str) -> dict[str, Any] | None:
    value = obj.get("cache_control")
    if value is None:
        return None
    return _obj(value, f"{path}.cache_control")
