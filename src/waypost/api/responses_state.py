"""The conversations the Responses API keeps (docs/responses.md, "Conversation state").

A response made with ``store`` (the default) is kept for its user: the request's own input
items, its instructions and the response object as the client got it. The record is written
before the bytes carrying the response object leave (the body, or the stream's final event:
``Keeper``, around the ``send`` of the answer), so a follow-up sent the moment the client has
the response finds it on any replica; a write that fails or takes too long is logged, and the
answer still ends as it should.

``previous_response_id`` reads the conversation back in one query (``ResponseRepo.chain``):
each earlier turn's input items then its output items, oldest first, go before the request's
own input. Earlier instructions are not carried over (as OpenAI does). What is stored is
masked like audit bodies (``metering/masking.py``), but for reasoning items' ``encrypted_content``,
which is the provider's ciphertext, not anything a caller wrote; nothing of the caller's
credentials or headers is stored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.types import Message, Send

from waypost.core.context import RequestContext
from waypost.metering.masking import Masker
from waypost.settings import ResponsesSettings
from waypost.store.responses import ResponseRepo, StoredResponse, Turn

log = logging.getLogger("waypost.responses")

STATE = "responses"  # ctx.state key: the request's ``Exchange``
PURGE_BATCH = 5000  # expired responses deleted per transaction
PURGE_PAUSE = 0.05  # seconds between two deleting transactions: other writers get their turn
# The id prefix of each kind of input item, for items the client sent without one.
_ITEM_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
# Input items whose listed form (``ResponseItem``) requires a status.
_WITH_STATUS = frozenset({"message", "function_call", "function_call_output"})
# The events that carry a stream's final response object.
_FINAL_EVENTS = (b"response.completed", b"response.incomplete", b"response.failed")
_FINAL_TYPES = frozenset(e.decode() for e in _FINAL_EVENTS)
# What stands in for a reasoning item's ``encrypted_content`` while the rest is masked: never a
# key shape, never a member name.
_SEALED = "\x00waypost-encrypted-"


def new_response_id() -> str:
    """``resp_`` and 48 hex digits: the time in milliseconds first (the table's key grows at its
    end), then 144 random bits."""
    return f"resp_{time.time_ns() // 1_000_000:012x}{random.getrandbits(144):036x}"


@dataclass(slots=True)
class Exchange:
    """One Responses API request's own state (``ctx.state[STATE]``)."""

    response_id: str
    created_at: int
    body: Mapping[str, Any] | None  # the client's body, echoed in the response object
    keep: bool  # the response is stored (the request's ``store`` and ``responses.store``)
    previous_id: str | None = None
    # The earlier conversation's items, oldest first (``previous_response_id``).
    context: list[Any] | None = None
    note: str | None = None  # what the conversation lost (an earlier turn no longer stored)


# -- items ---------------------------------------------------------------------------------------


def as_items(value: Any) -> list[Any] | None:
    """A request's ``input`` as a list of items (a string is one user message); None when it
    is neither a string nor a list (the decoder names the problem)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else None


def listed_items(value: Any, response_id: str) -> list[Any]:
    """The request's input items as the API lists them: each with its type, an id (derived from
    the response's when the client gave none), its content as parts, and a status."""
    items = as_items(value) or []
    suffix = response_id.removeprefix("resp_")
    out: list[Any] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            out.append(item)
            continue
        listed = dict(item)
        kind = listed.setdefault("type", "message")
        if not isinstance(listed.get("id"), str):
            listed["id"] = f"{_ITEM_PREFIX.get(kind, 'item')}_{suffix}_in{n}"
        content = listed.get("content")
        if kind == "message" and isinstance(content, str):
            part: dict[str, Any] = (
                {"type": "output_text", "text": content, "annotations": []}
                if listed.get("role") == "assistant"
                else {"type": "input_text", "text": content}
            )
            listed["content"] = [part]
        elif kind == "message" and isinstance(content, list):
            # An earlier answer sent back as input may leave out what the listed form requires.
            listed["content"] = [
                {**p, "annotations": []}
                if isinstance(p, dict) and p.get("type") == "output_text" and "annotations" not in p
                else p
                for p in content
            ]
        if kind in _WITH_STATUS:
            listed.setdefault("status", "completed")
        out.append(listed)
    return out


def context_items(turns: Sequence[Turn]) -> list[Any]:
    """The items of a conversation's turns (given newest first, as ``ResponseRepo.chain`` reads
    them): each turn's input items then its output items, oldest turn first."""
    items: list[Any] = []
    for turn in reversed(turns):
        items.extend(orjson.loads(turn.input))
        output = orjson.loads(turn.response).get("output")
        if isinstance(output, list):
            items.extend(output)
    return items


def lost_note(turns: Sequence[Turn]) -> str | None:
    """A note when the oldest turn read names an earlier one that is no longer stored."""
    oldest = turns[-1]
    if oldest.previous_id is None:
        return None
    return (
        f"previous_response_id: the conversation before response '{oldest.id}' is no longer stored "
        "(expired or deleted); it continued without it"
    )


# -- what is stored ------------------------------------------------------------------------------


def masked(values: list[Any], masker: Masker) -> list[Any] | None:
    """``values`` with secrets masked as audit bodies are, each reasoning item's
    ``encrypted_content`` kept as it is; None when a mask pattern left text that is not JSON."""
    sealed: list[str] = []

    def seal(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, inner in value.items():
                if key == "encrypted_content" and isinstance(inner, str):
                    out[key] = f"{_SEALED}{len(sealed)}"
                    sealed.append(inner)
                else:
                    out[key] = seal(inner)
            return out
        if isinstance(value, list):
            return [seal(v) for v in value]
        return value

    def unseal(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: sealed[int(inner.removeprefix(_SEALED))]
                if key == "encrypted_content" and isinstance(inner, str) and inner.startswith(_SEALED)
                else unseal(inner)
                for key, inner in value.items()
            }
        if isinstance(value, list):
            return [unseal(v) for v in value]
        return value

    text = masker.mask(orjson.dumps(seal(values)).decode())
    try:
        parsed = orjson.loads(text)
        return list(unseal(parsed)) if sealed else list(parsed)
    except (orjson.JSONDecodeError, ValueError, IndexError):  # a pattern matched JSON's own text
        return None


def record_of(
    ctx: RequestContext,
    exchange: Exchange,
    response: dict[str, Any],
    settings: ResponsesSettings,
    masker: Masker,
) -> StoredResponse | None:
    """The row that keeps ``response``, or None when it is not to be kept (logged)."""
    principal = ctx.principal
    if principal is None:
        return None
    response_id = response.get("id")
    if not isinstance(response_id, str) or not response_id:
        response_id = exchange.response_id
    body = exchange.body or {}
    instructions = body.get("instructions")
    parts = masked([instructions, listed_items(body.get("input"), response_id), response], masker)
    if parts is None:
        log.warning(
            "response %s not stored: audit.mask_patterns left its text unreadable",
            response_id,
            extra={"request_id": ctx.request_id},
        )
        return None
    texts = [orjson.dumps(p).decode() for p in parts]
    size = sum(len(t) for t in texts)
    if size > settings.max_stored_bytes:
        log.warning(
            "response %s not stored: %d bytes, above responses.max_stored_bytes (%d)",
            response_id,
            size,
            settings.max_stored_bytes,
            extra={"request_id": ctx.request_id},
        )
        return None
    now = datetime.now(UTC)
    model = response.get("model")
    return StoredResponse(
        id=response_id,
        user_id=principal.user_id,
        previous_id=exchange.previous_id,
        model=model if isinstance(model, str) else "",
        instructions=texts[0] if instructions is not None else None,
        input=texts[1],
        response=texts[2],
        created_at=now,
        expires_at=now + timedelta(seconds=settings.retention),
    )


# -- keeping an answer as it leaves ----------------------------------------------------------------


def final_response(data: bytes) -> dict[str, Any] | None:
    """The response object of a stream's final event (completed, incomplete or failed) among
    the SSE events in ``data``, if there is one."""
    if not any(marker in data for marker in _FINAL_EVENTS):
        return None
    found = None
    for line in data.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        try:
            event = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("type") in _FINAL_TYPES:
            response = event.get("response")
            if isinstance(response, dict):
                found = response
    return found


@dataclass(slots=True)
class Keeper:
    """The ``send`` of an answer to keep: it sees the response object leave (the body, or a
    stream's final event) and stores it before passing on the bytes that carry it, so that a
    client that acts on the final event (a follow-up with ``previous_response_id``) finds it."""

    send: Send
    ctx: RequestContext
    exchange: Exchange
    repo: ResponseRepo
    settings: ResponsesSettings
    masker: Masker
    _status: int = 0
    _streamed: bool = False
    _kept: bool = False
    _parts: list[bytes] = field(default_factory=list)

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = message["status"]
            self._streamed = any(
                k == b"content-type" and v.startswith(b"text/event-stream") for k, v in message["headers"]
            )
        elif kind == "http.response.body" and self._status == 200 and not self._kept:
            data = message.get("body", b"")
            if self._streamed:
                if (final := final_response(data)) is not None:
                    await self._keep(final)
            else:
                self._parts.append(data)
                if not message.get("more_body", False):
                    await self._keep(_json_object(b"".join(self._parts)))
        await self.send(message)

    async def _keep(self, response: dict[str, Any] | None) -> None:
        self._kept = True
        if response is None:
            return
        ctx = self.ctx
        try:
            row = record_of(ctx, self.exchange, response, self.settings, self.masker)
            if row is not None:
                async with asyncio.timeout(self.settings.write_timeout):
                    await self.repo.save(row)
        except Exception as exc:  # the answer leaves whatever happens to its record
            log.warning(
                "response not stored (%s: %s)", type(exc).__name__, exc, extra={"request_id": ctx.request_id}
            )


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


# -- retention -----------------------------------------------------------------------------------


async def purge_expired(repo: ResponseRepo, now: datetime | None = None) -> int:
    """Delete every expired response, in short transactions; how many went."""
    cutoff = now or datetime.now(UTC)
    total = 0
    while True:
        gone = await repo.delete_expired(cutoff, PURGE_BATCH)
        total += gone
        if gone < PURGE_BATCH:
            break
        await asyncio.sleep(PURGE_PAUSE)
    if total:
        log.info("stored responses: %d expired response(s) deleted", total)
    return total


async def run_purge(repo: ResponseRepo, every: float) -> None:
    """Delete expired responses at start and every ``every`` seconds, until cancelled."""
    while True:
        try:
            await purge_expired(repo)
        except Exception as exc:
            log.warning(
                "stored responses: purge failed (%s: %s); trying again later", type(exc).__name__, exc
            )
        await asyncio.sleep(every)
