"""Canonical ``ChatRequest`` -> request body for an OpenAI-compatible Chat Completions upstream.

A request that arrived in OpenAI format is forwarded almost untouched (the fast path: the client's
body, ``core.passthrough``), so fields we do not model survive. Anything else is rebuilt from the
canonical model; what cannot be carried is returned beside the body (``Encoded.dropped``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from waypost.wire.encoded import Encoded, passthrough_body
from waypost.wire.openai.chat_decode import FORMAT
from waypost.wire.openai.chat_response import thinking_block

TOOL_ERROR_PREFIX = "[tool error] "
# The two fields an upstream may take the output token limit in (the first wins when a client
# sends both), each mapped to the other.
_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens")
_OTHER_LIMIT_FIELD = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}
_CACHE_NOTE = "cache_control dropped: OpenAI caches automatically"
# The Chat Completions body fields that carry each canonical field: what the fast path
# re-encodes for a stage's edit (``core.passthrough``).
PASSTHROUGH_FIELDS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "max_tokens": _LIMIT_FIELDS,
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "stop": ("stop",),
    "tools": ("tools", "functions"),
    "tool_choice": ("tool_choice", "function_call", "parallel_tool_calls"),
    "response_format": ("response_format",),
    "thinking": ("reasoning_effort",),
    "seed": ("seed",),
    "presence_penalty": ("presence_penalty",),
    "frequency_penalty": ("frequency_penalty",),
    "user": ("user",),
    "metadata": ("metadata",),
    "choices": ("n",),
}


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def effort_for_budget(budget_tokens: int) -> str:
    """A thinking token budget in OpenAI's ``reasoning_effort`` vocabulary."""
    if budget_tokens <= 2048:
        return "low"
    if budget_tokens <= 8192:
        return "medium"
    return "high"


def _reasoning_effort(thinking: Thinking | None) -> str | None:
    if thinking is None:
        return None
    if thinking.effort:
        return thinking.effort
    if not thinking.enabled or thinking.budget_tokens is None:
        # Disabled or "adaptive": the upstream's default is the closest match, and sending
        # reasoning_effort to a model without reasoning is an error on some servers.
        return None
    return effort_for_budget(thinking.budget_tokens)


def _forward(raw: Mapping[str, Any], model: str, stream: bool, max_tokens_field: str) -> dict[str, Any]:
    body = dict(raw)
    body["model"] = model
    other = _OTHER_LIMIT_FIELD.get(max_tokens_field)
    if other is not None and other in body:
        # The client used the field this upstream does not take (a server that knows only
        # max_tokens ignores max_completion_tokens and generates to the end; OpenAI's reasoning
        # models refuse max_tokens): carry the limit in the one it takes. With both present,
        # max_completion_tokens is the limit, as the decoder reads it.
        values = [body.pop(name, None) for name in _LIMIT_FIELDS]
        limit = next((value for value in values if value is not None), None)
        if limit is not None:
            body[max_tokens_field] = limit
    if stream:
        body["stream"] = True
        options = raw.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        # Always asked for, so streamed spend is metered; the client's own wish is in
        # ``req.include_usage`` and decides whether the usage chunk is relayed.
        options["include_usage"] = True
        body["stream_options"] = options
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)  # OpenAI rejects stream_options without stream
    return body


class _Encoder:
    def __init__(self, notes: list[str], *, reasoning_history: bool) -> None:
        self.notes = notes
        self.reasoning_history = reasoning_history

    def messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                out.append(self._system(m))
            elif m.role == "assistant":
                out.append(self._assistant(m))
            else:
                out.extend(self._user(m))
        return out

    def _named(self, msg: dict[str, Any], m: Message) -> dict[str, Any]:
        if m.name:
            msg["name"] = m.name
        return msg

    def _system(self, m: Message) -> dict[str, Any]:
        texts: list[str] = []
        for p in m.content:
            if isinstance(p, TextPart):
                texts.append(p.text)
                if p.cache_control:
                    _note(self.notes, _CACHE_NOTE)
            else:
                _note(self.notes, f"{p.kind} content in a system message dropped")
        return self._named({"role": "system", "content": "\n\n".join(texts)}, m)

    def _user(self, m: Message) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        carried: list[Part] = []
        rest: list[Part] = []
        for p in m.content:
            if isinstance(p, ToolResultPart):
                # Tool messages must directly follow the assistant turn that made the calls.
                out.append(self._tool_message(p, carried))
            else:
                rest.append(p)
        parts = carried + rest
        if parts or not out:
            out.append(self._named({"role": "user", "content": self._user_content(parts)}, m))
        return out

    def _tool_message(self, result: ToolResultPart, carried: list[Part]) -> dict[str, Any]:
        if result.cache_control:
            _note(self.notes, _CACHE_NOTE)
        texts: list[str] = []
        attachments: list[Part] = []
        for p in result.content:
            if isinstance(p, TextPart):
                texts.append(p.text)
                if p.cache_control:
                    _note(self.notes, _CACHE_NOTE)
            else:
                attachments.append(p)
        text = "".join(texts)
        if attachments:
            carried.extend(attachments)
            # OpenAI accepts images only from the user role ("Image URLs are only allowed for
            # messages with role 'user'"), so they travel in the user message that follows.
            _note(self.notes, "tool result images and documents moved to the following user message")
            if not text:
                text = "(attachments follow in the next message)"
        if result.is_error:
            text = TOOL_ERROR_PREFIX + text
        return {"role": "tool", "tool_call_id": result.tool_call_id, "content": text}

    def _user_content(self, parts: list[Part]) -> str | list[dict[str, Any]]:
        encoded: list[dict[str, Any]] = []
        for p in parts:
            item = self._part(p)
            if item is not None:
                encoded.append(item)
        if not encoded:
            return ""
        if len(encoded) == 1 and encoded[0]["type"] == "text":
            return str(encoded[0]["text"])
        return encoded

    def _part(self, p: Part) -> dict[str, Any] | None:
        if getattr(p, "cache_control", None):
            _note(self.notes, _CACHE_NOTE)
        if isinstance(p, TextPart):
            return {"type": "text", "text": p.text}
        if isinstance(p, ImagePart):
            return self._image(p)
        if isinstance(p, DocumentPart):
            return self._document(p)
        _note(self.notes, f"{p.kind} content in a user message dropped")
        return None

    def _image(self, p: ImagePart) -> dict[str, Any] | None:
        if p.data:
            url = f"data:{p.media_type or 'image/png'};base64,{p.data}"
        elif p.url:
            url = p.url
        else:
            _note(self.notes, "empty image dropped")
            return None
        spec: dict[str, Any] = {"url": url}
        if p.detail:
            spec["detail"] = p.detail
        return {"type": "image_url", "image_url": spec}

    def _document(self, p: DocumentPart) -> dict[str, Any] | None:
        if p.text is not None:
            text = f"{p.title}\n\n{p.text}" if p.title else p.text
            return {"type": "text", "text": text}
        if p.data:
            media_type = p.media_type or "application/pdf"
            filename = p.filename or p.title or "document.pdf"
            return {
                "type": "file",
                "file": {"filename": filename, "file_data": f"data:{media_type};base64,{p.data}"},
            }
        _note(self.notes, "document given by URL dropped: Chat Completions accepts only inline files")
        return None

    def _assistant(self, m: Message) -> dict[str, Any]:
        texts: list[str] = []
        thinking: list[ThinkingPart] = []
        calls: list[dict[str, Any]] = []
        for p in m.content:
            if isinstance(p, TextPart):
                texts.append(p.text)
            elif isinstance(p, ToolCallPart):
                calls.append(
                    {
                        "id": p.id,
                        "type": "function",
                        "function": {"name": p.name, "arguments": p.arguments or "{}"},
                    }
                )
            elif isinstance(p, ThinkingPart):
                thinking.append(p)
            else:
                _note(self.notes, f"{p.kind} content in an assistant message dropped")
        text = "".join(texts)
        msg: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
        if calls:
            msg["tool_calls"] = calls
        if thinking and self.reasoning_history:
            reasoning = "".join(t.text for t in thinking if not t.redacted)
            if reasoning:
                msg["reasoning_content"] = reasoning
            msg["thinking_blocks"] = [thinking_block(t) for t in thinking]
        elif thinking:
            _note(self.notes, "thinking in earlier assistant turns dropped")
        return self._named(msg, m)


def _tool(t: Tool, notes: list[str]) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    fn["parameters"] = t.parameters
    if t.strict is not None:
        fn["strict"] = t.strict
    if t.cache_control:
        _note(notes, _CACHE_NOTE)
    return {"type": "function", "function": fn}


def _tool_choice(tc: ToolChoice) -> str | dict[str, Any]:
    if tc.mode == "tool" and tc.name:
        return {"type": "function", "function": {"name": tc.name}}
    if tc.mode == "tool":
        return "required"
    return tc.mode


def _response_format(rf: ResponseFormat) -> dict[str, Any]:
    if rf.type != "json_schema":
        return {"type": rf.type}
    spec: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {"type": "object"}}
    if rf.strict is not None:
        spec["strict"] = rf.strict
    return {"type": "json_schema", "json_schema": spec}


def encode_request(
    req: ChatRequest,
    model: str,
    *,
    stream: bool,
    max_tokens_field: str = "max_completion_tokens",
    reasoning_history: bool = True,
) -> Encoded:
    """A body for an OpenAI-compatible upstream, and what of ``req`` it could not carry.

    ``max_tokens_field`` is the field the upstream takes the token limit in: OpenAI's reasoning
    models accept only ``max_completion_tokens``, most other compatible servers only
    ``max_tokens``. The fast path, which forwards what the client sent, renames the other one to
    it. ``reasoning_history=False`` leaves out ``reasoning_content``/``thinking_blocks`` on
    assistant turns for servers that reject them (not on the fast path).
    """
    passthrough = req.passthrough
    if req.source_format == FORMAT and passthrough is not None:
        client = passthrough.body
        if passthrough.edited:
            client = passthrough_body(
                passthrough,
                PASSTHROUGH_FIELDS,
                lambda: _build(req, model, stream, max_tokens_field, reasoning_history, []),
            )
        return Encoded(_forward(client, model, stream, max_tokens_field))
    notes: list[str] = []
    return Encoded(_build(req, model, stream, max_tokens_field, reasoning_history, notes), tuple(notes))


def _build(
    req: ChatRequest,
    model: str,
    stream: bool,
    max_tokens_field: str,
    reasoning_history: bool,
    notes: list[str],
) -> dict[str, Any]:
    """The body built from the canonical request; what it cannot carry is added to ``notes``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": _Encoder(notes, reasoning_history=reasoning_history).messages(req.messages),
    }
    if req.max_tokens is not None:
        body[max_tokens_field] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.top_k is not None:
        body["top_k"] = req.top_k
    if req.stop:
        body["stop"] = list(req.stop)
    if req.tools:
        # OpenAI rejects tool_choice and parallel_tool_calls in a request without tools.
        body["tools"] = [_tool(t, notes) for t in req.tools]
        if req.tool_choice is not None:
            body["tool_choice"] = _tool_choice(req.tool_choice)
            if req.tool_choice.parallel is not None:
                body["parallel_tool_calls"] = req.tool_choice.parallel
    if req.response_format is not None:
        body["response_format"] = _response_format(req.response_format)
    effort = _reasoning_effort(req.thinking)
    if effort is not None:
        body["reasoning_effort"] = effort
    if req.seed is not None:
        body["seed"] = req.seed
    if req.presence_penalty is not None:
        body["presence_penalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        body["frequency_penalty"] = req.frequency_penalty
    if req.user is not None:
        body["user"] = req.user
    if req.metadata:
        # OpenAI answers 400 to metadata unless store=true, which would keep the conversation.
        _note(notes, "metadata dropped: OpenAI accepts it only with store=true")
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body
