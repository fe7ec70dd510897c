"""Canonical events -> the typed event stream of the Responses API (``stream: true``).

The stream is ``response.created``, ``response.in_progress``, then per output item
``response.output_item.added``, its content events and ``response.output_item.done``, then
``response.completed`` (or ``response.incomplete``) carrying the whole response; a failure after
the first byte ends it with ``error`` and ``response.failed`` instead. Every event has a
``sequence_number`` counting from 0.

The final response is the body ``encode_response`` makes of the folded events, and the items
streamed are made by the same functions, so a stream and its final response agree item for
item. Two things are deferred to keep them agreeing: a text or reasoning item is added at its
first content (an empty block makes no item, as in the body), and an item's
``output_item.done`` waits until the next item starts or the response ends, because the last
item of a response cut short is ``incomplete`` and that is known only at the finish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from waypost.core.errors import GatewayError
from waypost.core.events import (
    BlockKind,
    BlockStart,
    BlockStop,
    Folder,
    MessageEnd,
    RawFrame,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from waypost.core.types import ChatRequest, ThinkingPart
from waypost.wire.openai.responses_body import encode_response, response_object
from waypost.wire.openai.responses_decode import StreamDecoder
from waypost.wire.openai.responses_mapping import error_event, failed_error, status_for, usage_to_responses
from waypost.wire.openai.responses_output import (
    call_id,
    function_call_item,
    item_id,
    message_item,
    namespaces_of,
    output_items,
    output_text,
    reasoning_item,
)
from waypost.wire.sse import encode_sse

__all__ = ["StreamDecoder", "StreamEncoder"]


@dataclass(slots=True)
class _Item:
    """The output item of the open canonical block."""

    kind: BlockKind
    block: int
    output_index: int | None = None  # None until the item is added to the stream
    id: str = ""
    text: str = ""
    call_id: str = ""
    name: str = ""
    signature: str = ""
    data: str | None = None
    summary_open: bool = False
    fragments: bool = False  # a tool call got argument text


class StreamEncoder:
    """Canonical events -> Responses SSE bytes; ``response`` is the final response object once
    the stream completed, was cut short, or failed (what the endpoint stores)."""

    def __init__(
        self, req: ChatRequest, *, response_id: str, created_at: int, body: Mapping[str, Any] | None
    ) -> None:
        self._req = req
        self._id = response_id
        self._created_at = created_at
        self._body = body
        self._namespaces = namespaces_of(req)
        self._seq = 0
        self._folder = Folder()
        self._started = False
        self._ended = False
        self._next_output = 0
        self._open: _Item | None = None
        self._pending: dict[str, Any] | None = None  # the last item, its ``done`` not yet sent
        self._pending_index = 0
        self.response: dict[str, Any] | None = None

    def feed(self, ev: StreamEvent) -> bytes:
        if self._ended or isinstance(ev, RawFrame):
            # Raw frames are the same-format relay's business, never mixed with encoded events.
            return b""
        self._folder.feed(ev)
        out: list[bytes] = []
        self._start(out)
        if isinstance(ev, TextDelta):
            self._text(ev, out)
        elif isinstance(ev, ToolArgsDelta):
            self._arguments(ev, out)
        elif isinstance(ev, ThinkingDelta):
            self._thinking(ev, out)
        elif isinstance(ev, SignatureDelta):
            item = self._open
            if item is not None and item.block == ev.index and item.kind == "thinking" and ev.signature:
                item.signature += ev.signature
                self._add(item, out)
        elif isinstance(ev, BlockStart):
            self._block_start(ev, out)
        elif isinstance(ev, BlockStop):
            if self._open is not None and self._open.block == ev.index:
                self._close(out)
        elif isinstance(ev, MessageEnd):
            self._end(out)
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        """``error`` then ``response.failed`` for a failure after the first byte; the end."""
        if self._ended:
            return b""
        out: list[bytes] = []
        self._start(out)
        self._ended = True
        partial = self._folder.result()
        self.response = self._response(
            "failed",
            output_items(partial.content, self._id, last_status="incomplete", namespaces=self._namespaces),
            usage_to_responses(partial.usage),
            error=failed_error(err),
        )
        out.append(self._emit(error_event(err, self._seq)))
        out.append(self._event("response.failed", response=self.response))
        return b"".join(out)

    # -- framing ---------------------------------------------------------------------------------

    def _emit(self, payload: dict[str, Any]) -> bytes:
        self._seq += 1
        return encode_sse(orjson.dumps(payload), payload["type"])

    def _event(self, etype: str, **fields: Any) -> bytes:
        return self._emit({"type": etype, "sequence_number": self._seq, **fields})

    def _item_event(self, etype: str, item: _Item, **fields: Any) -> bytes:
        return self._event(etype, item_id=item.id, output_index=item.output_index, **fields)

    def _response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        *,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return response_object(
            self._req,
            response_id=self._id,
            created_at=self._created_at,
            body=self._body,
            model=self._req.model or self._folder.response.model,
            status=status,
            output=output,
            usage=usage,
            error=error,
        )

    # -- the response ------------------------------------------------------------------------------

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        start = self._response("in_progress", [], None)
        out.append(self._event("response.created", response=start))
        out.append(self._event("response.in_progress", response=start))

    def _end(self, out: list[bytes]) -> None:
        self._close(out)
        resp = self._folder.result()
        status, _ = status_for(resp.finish_reason)
        self._flush(out, status)
        self.response = encode_response(
            resp, self._req, response_id=self._id, created_at=self._created_at, body=self._body
        )
        out.append(self._event(f"response.{status}", response=self.response))
        self._ended = True

    # -- items -------------------------------------------------------------------------------------

    def _block_start(self, ev: BlockStart, out: list[bytes]) -> None:
        self._close(out)
        item = _Item(ev.kind, ev.index, data=ev.data)
        self._open = item
        if ev.kind == "tool_call":
            item.name = ev.tool_name or ""
            item.call_id = ev.tool_call_id or ""
            self._add(item, out)
        elif ev.kind == "redacted_thinking" and ev.data:
            self._add(item, out)

    def _add(self, item: _Item, out: list[bytes]) -> None:
        """Send the item's ``output_item.added`` (once), after the previous item's ``done``."""
        if item.output_index is not None:
            return
        self._flush(out, "completed")
        n = item.output_index = self._next_output
        self._next_output += 1
        added: dict[str, Any]
        if item.kind == "text":
            item.id = item_id("msg", self._id, n)
            added = message_item(item.id, None, "in_progress")
        elif item.kind == "tool_call":
            item.id = item_id("fc", self._id, n)
            item.call_id = call_id(item.call_id, self._id, n)
            added = function_call_item(item.id, item.call_id, item.name, "", "in_progress", self._namespaces)
        else:
            item.id = item_id("rs", self._id, n)
            added = reasoning_item(item.id, None)
        out.append(self._event("response.output_item.added", output_index=n, item=added))
        if item.kind == "text":
            out.append(
                self._item_event("response.content_part.added", item, content_index=0, part=output_text(""))
            )

    def _text(self, ev: TextDelta, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.block != ev.index or item.kind != "text" or not ev.text:
            return
        self._add(item, out)
        item.text += ev.text
        out.append(
            self._item_event("response.output_text.delta", item, content_index=0, delta=ev.text, logprobs=[])
        )

    def _thinking(self, ev: ThinkingDelta, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.block != ev.index or item.kind != "thinking" or not ev.text:
            return
        self._add(item, out)
        if not item.summary_open:
            item.summary_open = True
            part = {"type": "summary_text", "text": ""}
            out.append(
                self._item_event("response.reasoning_summary_part.added", item, summary_index=0, part=part)
            )
        item.text += ev.text
        out.append(
            self._item_event("response.reasoning_summary_text.delta", item, summary_index=0, delta=ev.text)
        )

    def _arguments(self, ev: ToolArgsDelta, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.block != ev.index or item.kind != "tool_call" or not ev.fragment:
            return
        item.fragments = True
        item.text += ev.fragment
        out.append(self._item_event("response.function_call_arguments.delta", item, delta=ev.fragment))

    def _close(self, out: list[bytes]) -> None:
        """The open block ended: its content is done; its item's ``done`` waits (``_flush``)."""
        item, self._open = self._open, None
        if item is None or item.output_index is None:
            return  # a block with nothing to say made no item
        if item.kind == "text":
            out.append(
                self._item_event(
                    "response.output_text.done", item, content_index=0, text=item.text, logprobs=[]
                )
            )
            part = output_text(item.text)
            out.append(self._item_event("response.content_part.done", item, content_index=0, part=part))
        elif item.kind == "tool_call":
            if not item.fragments:
                # The body says "{}" for a call without arguments (core.events.Folder): so do we.
                item.text = "{}"
                out.append(self._item_event("response.function_call_arguments.delta", item, delta="{}"))
            out.append(self._item_event("response.function_call_arguments.done", item, arguments=item.text))
        elif item.summary_open:
            done = {"type": "summary_text", "text": item.text}
            out.append(
                self._item_event(
                    "response.reasoning_summary_text.done", item, summary_index=0, text=item.text
                )
            )
            out.append(
                self._item_event("response.reasoning_summary_part.done", item, summary_index=0, part=done)
            )
        self._pending, self._pending_index = self._done_item(item), item.output_index

    def _done_item(self, item: _Item) -> dict[str, Any]:
        """The item as ``output_item.done`` carries it; its status is set by ``_flush``."""
        if item.kind == "text":
            return message_item(item.id, item.text, "completed")
        if item.kind == "tool_call":
            return function_call_item(
                item.id, item.call_id, item.name, item.text, "completed", self._namespaces
            )
        if item.kind == "redacted_thinking":
            return reasoning_item(item.id, ThinkingPart(redacted=True, data=item.data))
        return reasoning_item(item.id, ThinkingPart(text=item.text, signature=item.signature or None))

    def _flush(self, out: list[bytes], status: str) -> None:
        """Send the held ``output_item.done``: completed, unless it is the last item of a response
        cut short."""
        done, self._pending = self._pending, None
        if done is None:
            return
        if "status" in done:
            done["status"] = status
        out.append(self._event("response.output_item.done", output_index=self._pending_index, item=done))
