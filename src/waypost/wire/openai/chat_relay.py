"""What the same-format relay changes in an OpenAI-compatible upstream's answer before an OpenAI
client reads it: the model the client asked for, and the known quirks of compatible servers,
so that every upstream reads like OpenAI's own API (docs/providers/openai-compatible.md).

``RelayedChunks`` looks at each parsed chunk (Chat Completions or legacy Completions) and says
whether it is relayed as it came (the common case, which costs a few dictionary lookups), left
out, or relayed as rewritten bytes; ``normalise_body`` does the same for a non-streamed body.
What is rewritten:

* the ``model``, to the name the client asked for (an alias, or a dated snapshot upstream);
* tool-call deltas: a call's ``id``, ``type`` and ``function.name`` come once, on its first delta,
  then only ``arguments`` fragments (llama.cpp repeats them in every delta, and clients then
  concatenate the name); every delta gets an ``index``; a call that arrives whole still does;
* the legacy ``function_call`` a server sends beside ``tool_calls`` as a mirror of the same call
  is dropped (the npm SDK otherwise keeps only it);
* ``reasoning`` becomes ``reasoning_content``, the name Waypost speaks everywhere;
* chunks with empty ``choices`` and no usage are left out; usage sent on every chunk stays on
  one usage chunk of its own (when the client asked for it), after the chunk with the
  ``finish_reason`` (held back when a server sends it first) and before ``[DONE]``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from waypost.wire.openai.chat_response import arguments_text
from waypost.wire.sse import encode_sse

_MODEL_MEMBER = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')


def model_member(data: bytes, model: str) -> bytes | None:
    """The bytes of the ``"model": "<model>"`` member as ``data`` (one JSON object) has it, or
    ``None`` when they cannot be found (the name written in an escaped form, say)."""
    for match in _MODEL_MEMBER.finditer(data):
        member = match.group()
        try:
            value = orjson.loads(member[member.index(b":") + 1 :])
        except orjson.JSONDecodeError:
            continue
        if value == model:
            return member
    return None


class _Call:
    """One tool call as relayed: its index for the client and what it has already been told."""

    __slots__ = ("id", "index", "named", "opened")

    def __init__(self, call_id: str, index: int) -> None:
        self.id = call_id
        self.index = index
        self.opened = False  # the id and type went out
        self.named = False  # the name went out


class _Choice:
    """The tool calls of one choice of the answer."""

    __slots__ = ("by_id", "by_index", "calls")

    def __init__(self) -> None:
        self.calls: list[_Call] = []
        self.by_index: dict[int, _Call] = {}
        self.by_id: dict[str, _Call] = {}

    def resolve(self, index: Any, call_id: str, name: str) -> _Call:
        """The call a delta continues, or a new one (the rules of ``StreamDecoder``)."""
        if isinstance(index, bool) or not isinstance(index, int):
            index = None
        if call_id and call_id in self.by_id:
            return self.by_id[call_id]
        known = self.by_index.get(index) if index is not None else None
        # A new id with a name at a used index is a new call from a server that numbers every
        # parallel call 0.
        if known is not None and not (call_id and name and known.id != call_id):
            return known
        if known is None and index is None and not call_id and self.calls:
            return self.calls[-1]
        call = _Call(call_id or f"call_{len(self.calls)}", len(self.calls))
        self.calls.append(call)
        if index is not None:
            self.by_index[index] = call
        self.by_id[call.id] = call
        return call


class RelayedChunks:
    """One relayed stream's chunks, for an OpenAI client (Chat Completions or legacy Completions).

    ``model`` is the name the client asked for; ``include_usage`` whether it asked for the usage
    chunk (Waypost always asks the upstream for it, to meter the stream).
    """

    __slots__ = (
        "_choices",
        "_finished",
        "_held",
        "_last",
        "_member",
        "_rename",
        "_rewrite_model",
        "_upstream_model",
        "_usage",
        "_usage_relayed",
        "include_usage",
        "model",
    )

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self._member = b'"model":' + orjson.dumps(model)
        self._upstream_model: str | None = None  # the name the upstream's chunks carry
        self._rename: tuple[bytes, bytes] | None = None  # (as the upstream wrote it, as relayed)
        self._rewrite_model = False  # the name could not be found in the bytes: rewrite chunks
        self._choices: dict[int | None, _Choice] = {}
        self._finished = False  # a finish_reason went out
        self._held: dict[str, Any] | None = None  # a usage chunk that came before the finish
        self._usage: Any = None  # the latest usage seen on a chunk with choices
        self._usage_relayed = False
        self._last: dict[str, Any] = {}  # the latest chunk, for a usage chunk made up at the end

    def edit(self, raw: bytes) -> bytes:
        """Relayed bytes with the upstream's model name replaced by the client's."""
        rename = self._rename
        return raw if rename is None else raw.replace(rename[0], rename[1])

    def feed(self, chunk: dict[str, Any], data: bytes) -> bytes | None:
        """What the client gets for ``chunk`` (``data``: its JSON text): ``None`` for the chunk as
        it came (then passed through ``edit``), ``b""`` for nothing, else the frames to send."""
        self._last = chunk
        changed = False
        model = chunk.get("model")
        if model != self.model and self.model:
            changed = self._model_changes(model, data)
        usage = chunk.get("usage")
        choices = chunk.get("choices")
        if type(choices) is not list or not choices:
            if usage is None or not isinstance(usage, dict):
                return b""  # nothing for the client: a keep-alive, a content-filter report
            self._usage_relayed = True
            if not self.include_usage:
                return b""
            if choices is None:
                chunk["choices"] = []
                changed = True
            if not self._finished:
                self._held = chunk  # OpenAI sends the usage chunk last: after the finish
                return b""
            return self._encode(chunk) if changed else None
        for choice in choices:
            if type(choice) is not dict:
                continue
            delta = choice.get("delta")
            if type(delta) is dict and (
                "tool_calls" in delta or "function_call" in delta or "reasoning" in delta
            ):
                changed = self._delta(choice.get("index"), delta) or changed
            if choice.get("finish_reason"):
                self._finished = True
        if usage is not None:
            # Usage on a chunk with choices (some servers send it on every one, growing): the
            # client gets it once, on the usage chunk of its own.
            if isinstance(usage, dict):
                self._usage = usage
            if self.include_usage:
                chunk["usage"] = None
            else:
                del chunk["usage"]
            changed = True
        return self._encode(chunk) if changed else None

    def closing(self) -> bytes:
        """The frames to send before ``[DONE]``: the usage chunk held back, or one made from the
        usage the upstream sent on its other chunks."""
        if not self.include_usage:
            return b""
        if self._held is not None:
            return self._encode(self._held)
        if self._usage_relayed or self._usage is None:
            return b""
        last = self._last
        usage_chunk = {
            "id": last.get("id", ""),
            "object": last.get("object", "chat.completion.chunk"),
            "created": last.get("created", 0),
            "model": self.model,
            "choices": [],
            "usage": self._usage,
        }
        return encode_sse(orjson.dumps(usage_chunk))

    def _model_changes(self, model: Any, data: bytes) -> bool:
        """Whether the chunk must be rewritten for its model; learns the rename on first sight."""
        if not isinstance(model, str):
            return True  # none, or not a name: the client's SDK needs one
        if self._upstream_model is None and not self._rewrite_model and model:
            member = model_member(data, model)
            if member is None:
                self._rewrite_model = True
            else:
                self._upstream_model = model
                self._rename = (member, self._member)
        return self._rewrite_model or model != self._upstream_model

    def _encode(self, chunk: dict[str, Any]) -> bytes:
        if self.model:
            chunk["model"] = self.model
        return encode_sse(orjson.dumps(chunk))

    def _delta(self, choice_index: Any, delta: dict[str, Any]) -> bool:
        """Normalise one delta in place; whether it changed."""
        changed = _reasoning_content(delta)
        calls = delta.get("tool_calls")
        if type(choice_index) is not int:
            choice_index = None
        state = self._choices.get(choice_index)
        if delta.get("function_call") is not None and (calls or state is not None):
            del delta["function_call"]  # a mirror of the call in tool_calls
            changed = True
        if type(calls) is not list:
            return changed
        if state is None:
            state = self._choices[choice_index] = _Choice()
        relayed: list[Any] = []
        for call in calls:
            entry = _call_delta(state, call) if type(call) is dict else None
            if entry is not None:
                relayed.append(entry)
        if relayed != calls:
            changed = True
            if relayed:
                delta["tool_calls"] = relayed
            else:
                del delta["tool_calls"]
        return changed


def _call_delta(state: _Choice, call: dict[str, Any]) -> dict[str, Any] | None:
    """One tool-call delta as OpenAI sends it, or ``None`` when it says nothing new."""
    index = call.get("index")
    if len(call) == 2 and type(index) is int:
        # OpenAI's own continuation, {"index": n, "function": {"arguments": "..."}}: as it came.
        known = state.by_index.get(index)
        fn = call.get("function")
        if (
            known is not None
            and known.index == index
            and known.named
            and type(fn) is dict
            and len(fn) == 1
            and type(fn.get("arguments")) is str
        ):
            return call
    fn = call.get("function")
    fn = fn if type(fn) is dict else {}
    call_id = call.get("id")
    call_id = call_id if isinstance(call_id, str) else ""
    name = fn.get("name")
    name = name if isinstance(name, str) else ""
    known = state.resolve(call.get("index"), call_id, name)
    entry = dict(call)
    entry["index"] = known.index
    function = dict(fn)
    if known.opened:
        entry.pop("id", None)
        entry.pop("type", None)
    else:
        known.opened = True
        entry["id"] = known.id
        entry["type"] = "function"
    if known.named or not name:
        function.pop("name", None)
    else:
        known.named = True
    arguments = fn.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        function["arguments"] = arguments_text(arguments)
    entry["function"] = function
    if len(entry) == 2 and not function.get("arguments") and "name" not in function:
        return None  # only the index of a call already under way: nothing to say
    return entry


def _reasoning_content(message: dict[str, Any]) -> bool:
    """``reasoning`` renamed ``reasoning_content`` (dropped when both are there); whether it was."""
    if "reasoning" not in message:
        return False
    reasoning = message.pop("reasoning")
    if "reasoning_content" not in message and reasoning is not None:
        message["reasoning_content"] = reasoning
    return True


def normalise_body(body: dict[str, Any], model: str) -> bool:
    """A non-streamed ``chat.completion`` (or legacy ``text_completion``) body as OpenAI sends it,
    for the model ``model``, changed in place; whether anything changed."""
    changed = False
    if model and body.get("model") != model:
        body["model"] = model
        changed = True
    choices = body.get("choices")
    for choice in choices if type(choices) is list else ():
        message = choice.get("message") if type(choice) is dict else None
        if type(message) is not dict:
            continue
        changed = _reasoning_content(message) or changed
        calls = message.get("tool_calls")
        if "function_call" in message and calls:
            del message["function_call"]  # a mirror of the call in tool_calls
            changed = True
        for call in calls if type(calls) is list else ():
            if type(call) is not dict:
                continue
            if call.get("type") is None:
                call["type"] = "function"
                changed = True
            fn = call.get("function")
            if type(fn) is dict and "arguments" in fn and not isinstance(fn["arguments"], str):
                fn["arguments"] = arguments_text(fn["arguments"]) or "{}"
                changed = True
    return changed
