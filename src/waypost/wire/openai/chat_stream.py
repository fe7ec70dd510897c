"""OpenAI ``chat.completion.chunk`` streams <-> canonical stream events.

``StreamDecoder`` turns upstream chunks into events that obey the canonical grammar (one open
block at a time), serialising parallel tool calls whose argument fragments an upstream may
interleave. ``StreamEncoder`` renders events as the SSE frames an OpenAI client reads.
"""

from __future__ import annotations

from typing import Any

import orjson

from waypost.core.errors import GatewayError, StreamInterrupted, UpstreamError
from waypost.core.events import (
    BlockKind,
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    RawFrame,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
    fold,
)
from waypost.core.types import ChatResponse, FinishReason, TextPart, Usage
from waypost.wire.openai.chat_response import (
    arguments_text,
    error_message,
    error_object,
    finish_from_openai,
    message_text,
    response_id,
    response_message,
    stop_reason_to_openai,
    usage_from_openai,
    usage_to_openai,
)
from waypost.wire.sse import encode_sse

DONE = b"data: [DONE]\n\n"


class _ToolCall:
    __slots__ = ("block", "closed", "emitted", "fragments", "id", "name")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.fragments: list[str] = []
        self.emitted = 0  # how many fragments went out as events (the rest are buffered)
        self.block: int | None = None
        self.closed = False

    def looks_complete(self) -> bool:
        """Whether the arguments so far are a whole JSON value: nothing valid can follow."""
        text = "".join(self.fragments).rstrip()
        if not text or text[-1] not in "}]":
            return False
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
        return True


def _text_field(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


class StreamDecoder:
    """Upstream SSE chunks (parsed ``data:`` JSON) -> canonical events. Call ``finish()`` on [DONE]."""

    def __init__(self) -> None:
        self._started = False
        self._skipped: dict[str, Any] | None = None  # a chunk with nothing to say, before the start
        self._done = False
        self._next_block = 0
        self._open: tuple[BlockKind, int] | None = None  # the open text/thinking block
        self._sealed = False  # the open thinking block got its signature
        self._tools: list[_ToolCall] = []
        self._by_index: dict[int, _ToolCall] = {}
        self._by_id: dict[str, _ToolCall] = {}
        self._open_tool: _ToolCall | None = None
        self._tool_calls_seen = False  # legacy function_call deltas are then mirrors
        self._finish: Any = None
        self._usage: Usage | None = None

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        if self._done:
            return []
        if not isinstance(chunk, dict):
            raise StreamInterrupted("upstream sent a stream chunk that is not a JSON object")
        if chunk.get("error") is not None:
            raise StreamInterrupted(error_message(chunk["error"]))
        out: list[StreamEvent] = []
        if not self._started:
            if not chunk.get("choices") and chunk.get("usage") is None:
                # Nothing to say yet (Azure's content-filter report, a keep-alive): its id and
                # model are often empty, so the message starts with the next chunk.
                self._skipped = chunk
                return out
            self._start(chunk, out)
        raw_usage = chunk.get("usage")
        if raw_usage is not None:  # most chunks carry none (or null): skip the call
            usage = usage_from_openai(raw_usage)
            if usage is not None:
                if self._usage is None:
                    self._usage = usage
                else:
                    self._usage.merge(usage)
        choices = chunk.get("choices")
        if type(choices) is list:
            for choice in choices:
                # n > 1 is not modelled: only the first choice is relayed.
                if type(choice) is dict and choice.get("index", 0) in (0, None):
                    self._choice(choice, out)
        return out

    def finish(self) -> list[StreamEvent]:
        """The upstream ended cleanly: close what is open and end the message."""
        if self._done:
            return []
        self._done = True
        out: list[StreamEvent] = []
        if not self._started:
            if self._skipped is None:
                raise StreamInterrupted("upstream stream ended before sending any chunk")
            self._start(self._skipped, out)
        self._advance_tools(out, final=True)
        self._close_open(out)
        if self._usage is not None:
            out.append(UsageUpdate(self._usage))
        out.append(Finish(finish_from_openai(self._finish, has_tool_calls=bool(self._tools))))
        out.append(MessageEnd())
        return out

    def _start(self, chunk: dict[str, Any], out: list[StreamEvent]) -> None:
        self._started = True
        created = chunk.get("created")
        out.append(
            MessageStart(
                id=_text_field(chunk, "id"),
                model=_text_field(chunk, "model"),
                created=created if isinstance(created, int) and not isinstance(created, bool) else 0,
            )
        )

    # -- choices -------------------------------------------------------------------------------

    def _choice(self, choice: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = choice.get("delta")
        if type(delta) is dict and len(delta) <= 2:
            # The common chunk is plain text ({"content": ...}, maybe with "role"): skip the
            # walk through every optional field.
            content = delta.get("content")
            if type(content) is str and (len(delta) == 1 or "role" in delta):
                if content:
                    open_block = self._open
                    index = open_block[1] if open_block is not None and open_block[0] == "text" else None
                    out.append(TextDelta(self._ensure_open("text", out) if index is None else index, content))
                reason = choice.get("finish_reason")
                if reason and isinstance(reason, str):
                    self._finish = reason
                return
        if isinstance(delta, dict):
            self._reasoning(delta, out)
            for key in ("content", "refusal"):
                text = _text_field(delta, key)
                if text:
                    out.append(TextDelta(self._ensure_open("text", out), text))
            calls = delta.get("tool_calls")
            if isinstance(calls, list) and calls:
                self._tool_calls_seen = True
                for pos, call in enumerate(calls):
                    if isinstance(call, dict):
                        self._tool_delta(call, pos, out)
            legacy = delta.get("function_call")
            # Beside tool_calls (in this delta or earlier ones), a legacy function_call is a
            # mirror of the same call (llama.cpp sends both), never another one.
            if isinstance(legacy, dict) and not self._tool_calls_seen:
                self._tool_delta({"index": -1, "function": legacy}, 0, out)
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self._finish = reason

    def _reasoning(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        text = _text_field(delta, "reasoning_content") or _text_field(delta, "reasoning")
        if text:
            out.append(ThinkingDelta(self._ensure_open("thinking", out), text))
        blocks = delta.get("thinking_blocks")
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "redacted_thinking":
                self._settle_tools(out)
                self._close_open(out)
                index = self._new_block()
                data = block.get("data")
                out.append(
                    BlockStart(index, "redacted_thinking", data=data if isinstance(data, str) else None)
                )
                out.append(BlockStop(index))
                continue
            block_text = _text_field(block, "thinking")
            if block_text and not text:  # reasoning_content beside it carries the same text
                out.append(ThinkingDelta(self._ensure_open("thinking", out), block_text))
            signature = _text_field(block, "signature")
            if signature:
                out.append(SignatureDelta(self._ensure_open("thinking", out), signature))
                self._sealed = True

    # -- text and thinking blocks -----------------------------------------------------------------

    def _new_block(self) -> int:
        index = self._next_block
        self._next_block += 1
        return index

    def _ensure_open(self, kind: BlockKind, out: list[StreamEvent]) -> int:
        if self._open is not None and self._open[0] == kind and not (kind == "thinking" and self._sealed):
            return self._open[1]
        self._settle_tools(out)
        self._close_open(out)
        index = self._new_block()
        out.append(BlockStart(index, kind))
        self._open = (kind, index)
        return index

    def _close_open(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open[1]))
            self._open = None
            self._sealed = False

    # -- tool calls ----------------------------------------------------------------------------------

    def _resolve(self, call: dict[str, Any], fn: dict[str, Any]) -> _ToolCall:
        index = call.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            index = None
        call_id = _text_field(call, "id")
        name = _text_field(fn, "name")
        if call_id and call_id in self._by_id:
            return self._by_id[call_id]
        known = self._by_index.get(index) if index is not None else None
        # Some servers send the id on every delta; a *new* id with a name at a used index is a
        # new call from a server that numbers every parallel call 0.
        if known is not None and not (call_id and name and known.id != call_id):
            return known
        if known is None and index is None and not call_id and self._tools:
            return self._tools[-1]
        state = _ToolCall(call_id or f"call_{len(self._tools)}", name)
        self._tools.append(state)
        if index is not None:
            self._by_index[index] = state
        self._by_id[state.id] = state
        return state

    def _tool_delta(self, call: dict[str, Any], pos: int, out: list[StreamEvent]) -> None:
        fn = call.get("function")
        fn = fn if isinstance(fn, dict) else {}
        state = self._resolve(call, fn)
        if not state.name:
            state.name = _text_field(fn, "name")
        fragment = arguments_text(fn.get("arguments"))
        if fragment and not state.closed:
            # Fragments for a call that was already closed can only be whitespace after a whole
            # JSON value (see looks_complete) or a server bug; the block cannot be reopened.
            state.fragments.append(fragment)
            if state is self._open_tool:
                self._flush(state, out)
        self._advance_tools(out, final=False)

    def _flush(self, state: _ToolCall, out: list[StreamEvent]) -> None:
        if state.block is not None and state.emitted < len(state.fragments):
            out.append(ToolArgsDelta(state.block, "".join(state.fragments[state.emitted :])))
            state.emitted = len(state.fragments)

    def _settle_tools(self, out: list[StreamEvent]) -> None:
        """Another kind of block starts: every call seen so far is over."""
        if self._tools:
            self._advance_tools(out, final=True)

    def _advance_tools(self, out: list[StreamEvent], *, final: bool) -> None:
        """Open calls one at a time, in order of first appearance, closing the open one once a
        later call exists and its arguments are complete (or at the end)."""
        while True:
            current = self._open_tool
            if current is not None:
                later = self._tools[-1] is not current
                if final or (later and current.looks_complete()):
                    self._close_tool(current, out)
                    continue
                return
            pending = next((t for t in self._tools if t.block is None), None)
            if pending is None or not (pending.name or final):
                return
            self._close_open(out)
            pending.block = self._new_block()
            out.append(
                BlockStart(pending.block, "tool_call", tool_call_id=pending.id, tool_name=pending.name)
            )
            self._open_tool = pending
            self._flush(pending, out)

    def _close_tool(self, state: _ToolCall, out: list[StreamEvent]) -> None:
        assert state.block is not None
        self._flush(state, out)
        if not "".join(state.fragments).strip():
            # Clients (Anthropic's above all) choke on a tool call without arguments.
            out.append(ToolArgsDelta(state.block, "{}"))
        out.append(BlockStop(state.block))
        state.closed = True
        self._open_tool = None


class StreamEncoder:
    """Canonical events -> the SSE frames of an OpenAI ``chat.completion.chunk`` stream."""

    def __init__(
        self, model: str, *, include_usage: bool, response_id: str | None = None, created: int = 0
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self._id = response_id
        self._created = created
        self._started = False
        self._finished = False
        self._ended = False
        self._tool_index: dict[int, int] = {}  # canonical block index -> OpenAI tool_calls index
        self._usage = Usage()

    def feed(self, ev: StreamEvent) -> bytes:
        if self._ended or isinstance(ev, RawFrame):
            # Raw frames are the same-format relay's business, never mixed with encoded events.
            return b""
        if isinstance(ev, MessageStart):
            if self._id is None and ev.id:
                self._id = response_id(ev.id)
            if not self._created:
                self._created = ev.created
            if not self.model:
                self.model = ev.model
            self._usage.merge(ev.usage)
            return self._start()
        head = self._start()
        if isinstance(ev, TextDelta):
            return head + (self._chunk({"content": ev.text}) if ev.text else b"")
        if isinstance(ev, ThinkingDelta):
            return head + (self._chunk({"reasoning_content": ev.text}) if ev.text else b"")
        if isinstance(ev, ToolArgsDelta):
            n = self._tool_index.get(ev.index)
            if n is None or not ev.fragment:
                return head
            return head + self._chunk({"tool_calls": [{"index": n, "function": {"arguments": ev.fragment}}]})
        if isinstance(ev, BlockStart):
            return head + self._block_start(ev)
        if isinstance(ev, SignatureDelta):
            block = {"type": "thinking", "thinking": "", "signature": ev.signature}
            return head + self._chunk({"thinking_blocks": [block]})
        if isinstance(ev, UsageUpdate):
            self._usage.merge(ev.usage)
            return head
        if isinstance(ev, Finish):
            return head + self._finish(ev.reason)
        if isinstance(ev, MessageEnd):
            return head + self._end()
        return head  # BlockStop: OpenAI streams have no block boundaries

    def error(self, err: GatewayError) -> bytes:
        """The frame for a failure after the stream began; no [DONE] follows it."""
        self._ended = True
        return encode_sse(orjson.dumps(error_object(err)))

    def relay_end(self, start: MessageStart | None, usage: Usage) -> bytes:
        """The end of a same-format relay whose upstream sent no usage, which the relay leaves
        out (providers/openai.py): the usage chunk with ``usage`` when the client asked for it,
        then ``[DONE]``. ``start`` is the upstream message's start (its id and time)."""
        self._ended = True
        if not self.include_usage:
            return DONE
        head = start or MessageStart(id="", model="")
        chunk = {
            "id": head.id,
            "object": "chat.completion.chunk",
            "created": head.created or self._created,
            "model": self.model or head.model,
            "choices": [],
            "usage": usage_to_openai(usage),
        }
        return encode_sse(orjson.dumps(chunk)) + DONE

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        if self._id is None:
            self._id = response_id("")
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def _block_start(self, ev: BlockStart) -> bytes:
        if ev.kind == "tool_call":
            n = len(self._tool_index)
            self._tool_index[ev.index] = n
            call = {
                "index": n,
                "id": ev.tool_call_id or f"call_{n}",
                "type": "function",
                "function": {"name": ev.tool_name or "", "arguments": ""},
            }
            return self._chunk({"tool_calls": [call]})
        if ev.kind == "redacted_thinking":
            return self._chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": ev.data or ""}]})
        return b""

    def _finish(self, reason: FinishReason | None) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        return self._chunk({}, finish_reason=stop_reason_to_openai(reason))

    def _end(self) -> bytes:
        out = self._finish(FinishReason.TOOL_CALLS if self._tool_index else FinishReason.STOP)
        if self.include_usage:
            out += encode_sse(
                orjson.dumps(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_to_openai(self._usage),
                    }
                )
            )
        self._ended = True
        return out + DONE

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return encode_sse(orjson.dumps(chunk))


# The message fields an answer of plain text may have: the decoder reads nothing else from it
# (a refusal beside text is dropped, annotations are not modelled).
_PLAIN_FIELDS = frozenset({"role", "content", "refusal", "annotations"})


def decode_response(body: Any) -> ChatResponse:
    """An upstream ``chat.completion`` body -> ``ChatResponse``; raises ``UpstreamError`` if unusable.

    The body is read as the one chunk that says everything (its message as the delta) and the
    events are folded: a body and a stream of the same answer cannot decode differently (one
    reasoning spelling, one rule for a legacy ``function_call`` beside ``tool_calls``). The most
    common answer, text alone, is built directly, as the fold would build it (tests compare the
    two): a fifth of the cost."""
    choice, message = response_message(body)
    plain = _plain_text(body, choice, message)
    if plain is not None:
        return plain
    return _folded(body, choice, message)


def _plain_text(body: dict[str, Any], choice: dict[str, Any], message: dict[str, Any]) -> ChatResponse | None:
    """The response to an answer that is only text, or None for any other."""
    text = message.get("content")
    if type(text) is not str or not text:
        return None
    for key, value in message.items():
        # Any other field is only read when it has something in it (tool calls, reasoning).
        if key not in _PLAIN_FIELDS and value is not None and value != []:
            return None
    # What the fold merges into an empty usage: the reported one, whose counts are never negative.
    usage = usage_from_openai(body.get("usage")) or Usage()
    reason = choice.get("finish_reason")
    created = body.get("created")
    return ChatResponse(
        id=_text_field(body, "id"),
        model=_text_field(body, "model"),
        content=[TextPart(text=text)],
        finish_reason=finish_from_openai(
            reason if isinstance(reason, str) and reason else None, has_tool_calls=False
        ),
        usage=usage,
        created=created if isinstance(created, int) and not isinstance(created, bool) else 0,
    )


def _folded(body: dict[str, Any], choice: dict[str, Any], message: dict[str, Any]) -> ChatResponse:
    delta = dict(message)
    text = message_text(message.get("content"))
    delta["content"] = text
    if text:
        delta.pop("refusal", None)  # the refusal is the text only when there is none
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        # Each call of a body is its own: numbered by position, as a stream's deltas are.
        delta["tool_calls"] = [{**c, "index": i} if isinstance(c, dict) else c for i, c in enumerate(calls)]
    chunk = {
        "id": body.get("id"),
        "model": body.get("model"),
        "created": body.get("created"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason")}],
        "usage": body.get("usage"),
    }
    decoder = StreamDecoder()
    try:
        return fold([*decoder.feed(chunk), *decoder.finish()])
    except StreamInterrupted as err:
        raise UpstreamError(err.message) from err
