"""Bedrock Converse responses -> canonical responses.

Upstream bodies are untrusted: a body without ``output.message.content`` is an ``UpstreamError``;
unknown or odd blocks (citations' metadata, images, guard content) are skipped, not fatal.
Converse responses carry no id: the provider passes the request id Bedrock put in a header.

A body is read as the ConverseStream events that carry the same answer (``body_events``): the
stream decoder turns them into canonical events, which are folded, so the two paths cannot
disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from waypost.core.errors import UpstreamError
from waypost.core.events import StreamEvent, fold
from waypost.core.types import ChatResponse
from waypost.wire.bedrock.converse_stream import StreamDecoder
from waypost.wire.bedrock.mapping import PROVIDER
from waypost.wire.conventions import compact_json

Event = tuple[str, dict[str, Any]]


def decode_response(body: Any, *, model: str, response_id: str = "") -> ChatResponse:
    """A Converse response body -> canonical response."""
    if not isinstance(body, dict):
        raise UpstreamError("bedrock upstream response is not a JSON object", provider=PROVIDER)
    output = body.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        raise UpstreamError("bedrock upstream response has no output message content", provider=PROVIDER)
    decoder = StreamDecoder(model=model, response_id=response_id)
    events: list[StreamEvent] = []
    for event_type, data in body_events(body, content):
        events += decoder.event(event_type, data)
    events += decoder.finish()
    return fold(events)


def body_events(body: dict[str, Any], content: list[Any]) -> Iterator[Event]:
    """The ConverseStream events (type and payload) that carry the same answer as ``body``,
    whose output message has ``content``."""
    yield "messageStart", {"role": "assistant"}
    for index, block in enumerate(content):
        yield from _block_events(index, block)
    yield (
        "messageStop",
        {
            "stopReason": body.get("stopReason"),
            "additionalModelResponseFields": body.get("additionalModelResponseFields"),
        },
    )
    yield "metadata", {"usage": body.get("usage")}


def _block_events(index: int, block: Any) -> Iterator[Event]:
    """One Converse content block (a union: exactly one key is set) as its stream events."""
    if not isinstance(block, dict):
        return
    delta: dict[str, Any] | None = None
    text = block.get("text")
    use = block.get("toolUse")
    reasoning = block.get("reasoningContent")
    citations = block.get("citationsContent")
    if isinstance(text, str):
        delta = {"text": text}
    elif isinstance(use, dict):
        start = {"toolUseId": use.get("toolUseId"), "name": use.get("name")}
        yield "contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": start}}
        raw_input = use.get("input")
        if raw_input is not None:
            delta = {"toolUse": {"input": compact_json(raw_input)}}
    elif isinstance(reasoning, dict):
        redacted = reasoning.get("redactedContent")
        text_block = reasoning.get("reasoningText")
        if isinstance(redacted, str):
            delta = {"reasoningContent": {"redactedContent": redacted}}
        elif isinstance(text_block, dict):
            delta = {"reasoningContent": {k: text_block.get(k) for k in ("text", "signature")}}
    elif isinstance(citations, dict) and isinstance(citations.get("content"), list):
        cited = (c.get("text") for c in citations["content"] if isinstance(c, dict))
        delta = {"text": "".join(t for t in cited if isinstance(t, str))}
    if delta is None:
        if isinstance(use, dict):
            yield "contentBlockStop", {"contentBlockIndex": index}
        return
    yield "contentBlockDelta", {"contentBlockIndex": index, "delta": delta}
    yield "contentBlockStop", {"contentBlockIndex": index}
