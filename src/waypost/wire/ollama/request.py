"""Canonical ``ChatRequest`` -> body for Ollama's native ``POST /api/chat``.

Ollama's chat format is flat: each message has one ``content`` string, inline images as a
``images`` list of base64 strings, assistant ``tool_calls`` whose ``arguments`` are a JSON
*object*, and tool results as ``role: "tool"`` messages identified by ``tool_name`` (Ollama
has no call ids). Sampling parameters live in ``options``. Whatever cannot be carried is
returned as notes beside the body (``Encoded.dropped``).
"""

from __future__ import annotations

from typing import Any

import orjson

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
    ToolResultPart,
)
from waypost.wire.encoded import Encoded

FORMAT = "ollama"
TOOL_ERROR_PREFIX = "[tool error] "
_CACHE_NOTE = "cache_control dropped: Ollama has no prompt-cache control"
_IMAGE_URL_NOTE = "image given by URL dropped: Ollama accepts only inline (base64) images"

# ``think`` takes a boolean, or a level for models that grade their reasoning (gpt-oss).
_THINK_LEVELS: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def tool_arguments_object(arguments: str, notes: list[str]) -> dict[str, Any]:
    """Canonical argument text as the JSON object Ollama requires."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        _note(notes, "tool call arguments that were not valid JSON were sent as {}")
        return {}
    if not isinstance(value, dict):
        _note(notes, "tool call arguments that were not a JSON object were sent as {}")
        return {}
    return value


class _Encoder:
    def __init__(self, notes: list[str], tool_names: dict[str, str]) -> None:
        self.notes = notes
        self.tool_names = tool_names  # call id -> tool name, from the assistant turns

    def messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.name:
                _note(self.notes, "message names dropped: Ollama messages have no name")
            if m.role == "system":
                out.append({"role": "system", "content": self._system_text(m)})
            elif m.role == "assistant":
                out.append(self._assistant(m))
            else:
                out.extend(self._user(m))
        return out

    def _system_text(self, m: Message) -> str:
        texts: list[str] = []
        for p in m.content:
            if isinstance(p, TextPart):
                self._cache(p.cache_control)
                texts.append(p.text)
            else:
                _note(self.notes, f"{p.kind} content in a system message dropped")
        return "\n\n".join(texts)

    def _cache(self, cache_control: dict[str, Any] | None) -> None:
        if cache_control:
            _note(self.notes, _CACHE_NOTE)

    def _user(self, m: Message) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        rest: list[Part] = []
        for p in m.content:
            if isinstance(p, ToolResultPart):
                # Tool messages must directly follow the assistant turn that made the calls.
                out.append(self._tool_message(p))
            else:
                rest.append(p)
        if rest or not out:
            texts, images = self._content(rest, "a user message")
            msg: dict[str, Any] = {"role": "user", "content": "\n\n".join(texts)}
            if images:
                msg["images"] = images
            out.append(msg)
        return out

    def _tool_message(self, result: ToolResultPart) -> dict[str, Any]:
        self._cache(result.cache_control)
        texts, images = self._content(list(result.content), "a tool result")
        text = "\n\n".join(texts)
        if result.is_error:
            text = TOOL_ERROR_PREFIX + text
        msg: dict[str, Any] = {"role": "tool", "content": text}
        name = self.tool_names.get(result.tool_call_id)
        if name:
            msg["tool_name"] = name
        if images:
            msg["images"] = images
        return msg

    def _content(self, parts: list[Part], where: str) -> tuple[list[str], list[str]]:
        texts: list[str] = []
        images: list[str] = []
        for p in parts:
            if isinstance(p, TextPart):
                self._cache(p.cache_control)
                texts.append(p.text)
            elif isinstance(p, ImagePart):
                self._cache(p.cache_control)
                if p.data:
                    images.append(p.data)
                elif p.url:
                    # Never fetched: the gateway does not download what a request points at.
                    _note(self.notes, _IMAGE_URL_NOTE)
            elif isinstance(p, DocumentPart):
                self._cache(p.cache_control)
                if p.text is not None:
                    texts.append(f"{p.title}\n\n{p.text}" if p.title else p.text)
                else:
                    _note(self.notes, "documents dropped: Ollama accepts only text and images")
            else:
                _note(self.notes, f"{p.kind} content in {where} dropped")
        return texts, images

    def _assistant(self, m: Message) -> dict[str, Any]:
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        for p in m.content:
            if isinstance(p, TextPart):
                texts.append(p.text)
            elif isinstance(p, ToolCallPart):
                args = tool_arguments_object(p.arguments, self.notes)
                calls.append({"function": {"name": p.name, "arguments": args}})
            elif isinstance(p, ThinkingPart):
                if p.redacted:
                    _note(self.notes, "redacted thinking dropped: Ollama cannot read it")
                elif p.text:
                    thinking.append(p.text)
            else:
                _note(self.notes, f"{p.kind} content in an assistant message dropped")
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
        if thinking:
            msg["thinking"] = "".join(thinking)
        if calls:
            msg["tool_calls"] = calls
        return msg


def _tool(t: Tool, notes: list[str]) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    fn["parameters"] = t.parameters
    if t.strict:
        _note(notes, "strict tool schemas dropped: Ollama does not enforce them")
    if t.cache_control:
        _note(notes, _CACHE_NOTE)
    return {"type": "function", "function": fn}


def _format(rf: ResponseFormat) -> str | dict[str, Any] | None:
    if rf.type == "json_object":
        return "json"
    if rf.type == "json_schema":
        return rf.schema if rf.schema else "json"
    return None


def _think(thinking: Thinking | None, notes: list[str]) -> bool | str | None:
    """``think`` for the request, or None to leave the model's default.

    Adaptive thinking leaves the default: thinking models think unless told not to, and
    sending ``think: true`` to a model without thinking is an error."""
    if thinking is None:
        return None
    if not thinking.enabled:
        return False
    if thinking.effort:
        return _THINK_LEVELS.get(thinking.effort, True)
    if thinking.budget_tokens is not None:
        _note(notes, "thinking budget dropped: Ollama has no thinking token budget")
        return True
    return None


def _options(req: ChatRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if req.max_tokens is not None:
        options["num_predict"] = req.max_tokens
    if req.temperature is not None:
        options["temperature"] = req.temperature
    if req.top_p is not None:
        options["top_p"] = req.top_p
    if req.top_k is not None:
        options["top_k"] = req.top_k
    if req.stop:
        options["stop"] = list(req.stop)
    if req.seed is not None:
        options["seed"] = req.seed
    if req.presence_penalty is not None:
        options["presence_penalty"] = req.presence_penalty
    if req.frequency_penalty is not None:
        options["frequency_penalty"] = req.frequency_penalty
    return options


def encode_request(req: ChatRequest, model: str, *, stream: bool) -> Encoded:
    """A body for ``POST /api/chat``. ``stream`` is always sent: Ollama streams by default."""
    notes: list[str] = []
    tool_names = {
        p.id: p.name
        for m in req.messages
        if m.role == "assistant"
        for p in m.content
        if isinstance(p, ToolCallPart)
    }
    body: dict[str, Any] = {
        "model": model,
        "messages": _Encoder(notes, tool_names).messages(req.messages),
        "stream": stream,
    }
    choice = req.tool_choice
    if req.tools and not (choice is not None and choice.mode == "none"):
        # "none" is carried by not offering the tools: Ollama has no tool_choice.
        body["tools"] = [_tool(t, notes) for t in req.tools]
        if choice is not None and choice.mode in ("required", "tool"):
            _note(notes, "tool_choice dropped: Ollama cannot force a tool call")
        if choice is not None and choice.parallel is False:
            _note(notes, "parallel_tool_calls dropped: Ollama cannot limit parallel tool calls")
    if req.response_format is not None:
        fmt = _format(req.response_format)
        if fmt is not None:
            body["format"] = fmt
    options = _options(req)
    if options:
        body["options"] = options
    think = _think(req.thinking, notes)
    if think is not None:
        body["think"] = think
    if req.metadata:
        _note(notes, "metadata dropped: Ollama has no request metadata")
    if req.user is not None:
        _note(notes, "user dropped: Ollama has no end-user field")
    return Encoded(body, tuple(notes))
