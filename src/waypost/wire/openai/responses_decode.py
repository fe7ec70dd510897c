"""An upstream's Responses API answers (a native ``/v1/responses``) -> canonical events.

``StreamDecoder`` takes the stream's events (parsed ``data:`` JSON) one by one. Every output
item it knows becomes canonical blocks: each ``output_text`` or ``refusal`` part of a
``message`` a text block, a ``function_call`` a tool-call block, a ``reasoning`` item a thinking
block whose text is its summary (else its raw reasoning content) and whose signature is its
``encrypted_content`` (see ``responses_output``). Items of the API's built-in tools have no
canonical form and are skipped. Items arrive one after another, as OpenAI sends them; a delta
for an item already closed is dropped.

Deltas go out as they come; an item's ``done`` event (or the final response, for items the
stream never showed) supplies what the deltas missed, so a server that sends whole items only
decodes the same. ``decode_response`` reads a body as the final event of a stream that showed
nothing, which makes a body and a stream of the same answer fold alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from waypost.core.errors import StreamInterrupted, UpstreamError
from waypost.core.events import (
    BlockKind,
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
    fold,
)
from waypost.core.types import ChatResponse
from waypost.wire.openai.chat_response import arguments_text
from waypost.wire.openai.responses_mapping import (
    error_from_responses,
    finish_from_status,
    usage_from_responses,
)
from waypost.wire.openai.responses_output import (
    content_text,
    joined_reasoning,
    reasoning_text,
    reasoning_texts,
    text_field,
    thinking_part,
)

_START = frozenset({"response.created", "response.in_progress", "response.queued"})
_END = frozenset({"response.completed", "response.incomplete"})
Key = tuple[int, int]  # (output_index, content_index); items without parts use content_index -1


@dataclass(slots=True)
class _Block:
    kind: BlockKind
    index: int
    text: str = ""  # what went out as deltas
    closed: bool = False
    source: Literal["summary", "content"] | None = None  # where a reasoning block's text comes from
    part: int = 0  # the reasoning part the last delta belonged to


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StreamDecoder:
    """Upstream Responses SSE events -> canonical events; ``finish()`` at the end of the body."""

    __slots__ = ("_blocks", "_done", "_ended", "_items", "_next", "_open", "_refused", "_started", "_tools")

    def __init__(self) -> None:
        self._started = False
        self._ended = False
        self._next = 0
        self._open: _Block | None = None
        self._blocks: dict[Key, _Block] = {}
        self._items: dict[int, str] = {}  # output_index -> item type
        self._done: set[int] = set()
        self._tools = False
        self._refused = False

    def feed(self, event: dict[str, Any]) -> list[StreamEvent]:
        if not isinstance(event, dict):
            raise StreamInterrupted("upstream sent a stream event that is not a JSON object")
        etype = event.get("type")
        if etype == "error":
            raise error_from_responses(event)
        if etype == "response.failed":
            response = event.get("response")
            raise error_from_responses(response.get("error") if isinstance(response, dict) else None)
        if self._ended:
            return []
        out: list[StreamEvent] = []
        response = event.get("response")
        self._start(response if isinstance(response, dict) else {}, out)
        if etype in _END:
            self._complete(etype, response if isinstance(response, dict) else {}, out)
            return out
        oi = _int(event.get("output_index"))
        if oi is None or etype in _START:
            return out
        self._item_event(etype, oi, _int(event.get("content_index")), event, out)
        return out

    def finish(self) -> list[StreamEvent]:
        """The upstream body ended: a stream without its final response broke off."""
        if not self._ended:
            raise StreamInterrupted("upstream stream ended before response.completed")
        return []

    def _item_event(
        self, etype: Any, oi: int, ci: int | None, event: dict[str, Any], out: list[StreamEvent]
    ) -> None:
        """An event about one output item (``output_index`` ``oi``, content part ``ci``)."""
        if etype == "response.output_item.added":
            self._item_added(oi, event.get("item"), out)
        elif etype == "response.output_item.done":
            self._item_done(oi, event.get("item"), out)
        elif etype == "response.function_call_arguments.delta":
            call = self._blocks.get((oi, -1))
            if call is not None and call.kind == "tool_call":
                self._delta(call, text_field(event, "delta"), out)
        elif etype == "response.reasoning_summary_text.delta":
            self._reasoning_delta(oi, "summary", _int(event.get("summary_index")) or 0, event, out)
        elif etype == "response.reasoning_text.delta":
            self._reasoning_delta(oi, "content", ci or 0, event, out)
        elif ci is None:
            return
        elif etype == "response.content_part.added":
            part = event.get("part")
            if self._items.get(oi) == "message":
                self._part(oi, ci, content_text(part), part, out)
        elif etype in ("response.output_text.delta", "response.refusal.delta"):
            text = self._blocks.get((oi, ci)) or self._open_block((oi, ci), "text", out)
            self._delta(text, text_field(event, "delta"), out)
        elif etype == "response.output_text.done":
            done = self._blocks.get((oi, ci))
            if done is not None:
                self._reconcile(done, text_field(event, "text"), out)
        elif etype == "response.content_part.done":
            done = self._blocks.get((oi, ci))
            if done is not None:
                self._reconcile(done, content_text(event.get("part")), out)
                self._close_block(done, out)

    # -- the response ------------------------------------------------------------------------------

    def _start(self, response: dict[str, Any], out: list[StreamEvent]) -> None:
        if self._started:
            return
        self._started = True
        created = response.get("created_at")
        out.append(
            MessageStart(
                id=text_field(response, "id"),
                model=text_field(response, "model"),
                created=int(created)
                if isinstance(created, int | float) and not isinstance(created, bool)
                else 0,
            )
        )

    def _complete(self, etype: str, response: dict[str, Any], out: list[StreamEvent]) -> None:
        output = response.get("output")
        for oi, item in enumerate(output if isinstance(output, list) else []):
            if oi not in self._done:  # items the stream never finished, or never showed
                self._item_done(oi, item, out)
        self._close(out)
        usage = usage_from_responses(response.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))
        status = response.get("status") or etype.removeprefix("response.")
        reason = finish_from_status(
            status, response.get("incomplete_details"), has_tool_calls=self._tools, refused=self._refused
        )
        out += [Finish(reason), MessageEnd()]
        self._ended = True

    # -- items -------------------------------------------------------------------------------------

    def _item_added(self, oi: int, item: Any, out: list[StreamEvent]) -> None:
        if not isinstance(item, dict) or oi in self._items:
            return
        kind = item.get("type")
        self._items[oi] = kind if isinstance(kind, str) else ""
        if kind == "function_call":
            block = self._open_block((oi, -1), "tool_call", out, item)
            self._delta(block, arguments_text(item.get("arguments")), out)
        elif kind == "reasoning":
            self._open_block((oi, -1), "thinking", out)

    def _item_done(self, oi: int, item: Any, out: list[StreamEvent]) -> None:
        if not isinstance(item, dict) or oi in self._done:
            return
        self._done.add(oi)
        kind = item.get("type")
        self._items.setdefault(oi, kind if isinstance(kind, str) else "")
        if kind == "message":
            content = item.get("content")
            for ci, part in enumerate(content if isinstance(content, list) else []):
                self._part(oi, ci, content_text(part), part, out)
                self._close_block(self._blocks[(oi, ci)], out)
        elif kind == "function_call":
            block = self._blocks.get((oi, -1)) or self._open_block((oi, -1), "tool_call", out, item)
            self._reconcile(block, arguments_text(item.get("arguments")), out)
            self._close_block(block, out)
        elif kind == "reasoning":
            block = self._blocks.get((oi, -1)) or self._open_block((oi, -1), "thinking", out)
            if block.source is None:
                final = reasoning_text(item)
            else:
                final = joined_reasoning(reasoning_texts(item, block.source))
            self._reconcile(block, final, out)
            encrypted = item.get("encrypted_content")
            signature = thinking_part("", encrypted if isinstance(encrypted, str) else None).signature
            if signature and not block.closed:
                out.append(SignatureDelta(block.index, signature))
            self._close_block(block, out)

    def _part(self, oi: int, ci: int, text: str, part: Any, out: list[StreamEvent]) -> None:
        """A message's content part began (or was given whole): its text block, with its text."""
        if isinstance(part, dict) and part.get("type") == "refusal":
            self._refused = True
        block = self._blocks.get((oi, ci)) or self._open_block((oi, ci), "text", out)
        self._reconcile(block, text, out)

    def _reasoning_delta(
        self,
        oi: int,
        source: Literal["summary", "content"],
        part: int,
        event: dict[str, Any],
        out: list[StreamEvent],
    ) -> None:
        block = self._blocks.get((oi, -1))
        delta = text_field(event, "delta")
        if block is None or block.kind != "thinking" or not delta:
            return
        if block.source is None:
            block.source = source
        elif block.source != source:
            return  # summary and raw reasoning both: the first one seen is the text
        if part != block.part and block.text:
            self._delta(block, "\n\n", out)  # as joined_reasoning joins the parts
        block.part = part
        self._delta(block, delta, out)

    # -- blocks ------------------------------------------------------------------------------------

    def _open_block(self, key: Key, kind: BlockKind, out: list[StreamEvent], item: Any = None) -> _Block:
        self._close(out)
        block = self._blocks[key] = _Block(kind, self._next)
        self._next += 1
        if kind == "tool_call":
            self._tools = True
            out.append(
                BlockStart(
                    block.index,
                    kind,
                    tool_call_id=text_field(item, "call_id") or text_field(item, "id"),
                    tool_name=text_field(item, "name"),
                )
            )
        else:
            out.append(BlockStart(block.index, kind))
        self._open = block
        return block

    def _delta(self, block: _Block, text: str, out: list[StreamEvent]) -> None:
        if not text or block.closed:
            return
        block.text += text
        if block.kind == "text":
            out.append(TextDelta(block.index, text))
        elif block.kind == "tool_call":
            out.append(ToolArgsDelta(block.index, text))
        else:
            out.append(ThinkingDelta(block.index, text))

    def _reconcile(self, block: _Block, final: str, out: list[StreamEvent]) -> None:
        """What the deltas missed of ``final``; deltas that disagree with it are kept as sent."""
        if final.startswith(block.text):
            self._delta(block, final[len(block.text) :], out)

    def _close_block(self, block: _Block, out: list[StreamEvent]) -> None:
        if self._open is block:
            self._close(out)
        block.closed = True

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open.index))
            self._open.closed = True
            self._open = None


def decode_response(body: Any) -> ChatResponse:
    """An upstream ``response`` object -> ``ChatResponse``; raises ``UpstreamError`` (or a rate
    limit or overload) for a failed or unfinished response or one that is not an object."""
    if not isinstance(body, dict):
        raise UpstreamError("upstream answered something other than a JSON object")
    status = body.get("status")
    if body.get("error") is not None or status == "failed":
        raise error_from_responses(body.get("error"), UpstreamError)
    if status not in (None, "completed", "incomplete"):
        raise UpstreamError(f"upstream response is {status!r}, not completed")
    etype = "response.incomplete" if status == "incomplete" else "response.completed"
    decoder = StreamDecoder()
    try:
        return fold([*decoder.feed({"type": etype, "response": body}), *decoder.finish()])
    except StreamInterrupted as err:
        raise UpstreamError(err.message) from err
