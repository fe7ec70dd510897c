"""Logging whole requests and responses (``logging.bodies``; docs/policy.md, "Logging whole
requests and responses"): one info line per request on logger ``waypost.bodies``, in the JSON
log, never in the audit table (``audit.log_bodies`` is that).

The request is the body the client sent; the response is what the client got, byte for byte as
sent: one JSON body, or a stream's events (the answer's writers append to the list this stage
leaves at ``ctx.state["bodies"]``). Both are masked before they are written: credential members,
key-shaped strings and ``audit.mask_patterns`` (``metering/masking.py``), then cut to
``logging.bodies_max_chars``. The stage is first in the pipeline, so its ``after`` runs last,
for every request that reached the pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import Message, Send

from waypost.core.context import RequestContext
from waypost.metering.masking import Masker
from waypost.pipeline.stage import After, BaseStage, Before
from waypost.settings import Settings

log = logging.getLogger("waypost.bodies")

KEPT = "bodies"  # ctx.state key: the response's bytes as they were sent (a ``Kept``)
# Bytes kept beyond what is shown: masking runs before the cut, so a key straddling the cut must
# still be whole; and a character is up to 4 bytes of UTF-8.
MASK_MARGIN = 4096


class Kept:
    """The first bytes of an answer, up to ``limit``; the rest only counted, so a long stream
    logged with ``logging.bodies`` is not held whole in memory until it ends."""

    __slots__ = ("dropped", "limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0  # bytes sent past ``limit``

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if room <= 0:
            self.dropped += len(data)
            return
        if len(data) > room:
            self.dropped += len(data) - room
            data = data[:room]
        self.parts.append(data)
        self.size += len(data)


class BodyLogStage(BaseStage):
    name = KEPT

    def __init__(self, masker: Masker, max_chars: int) -> None:
        self.masker = masker
        self.max_chars = max_chars

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLogStage | None:
        if not settings.logging.bodies:
            return None
        return cls(Masker(settings.audit.mask_patterns), settings.logging.bodies_max_chars)

    def before(self, ctx: RequestContext) -> Before:
        if log.isEnabledFor(logging.INFO):  # no copies kept for a line nobody reads
            ctx.state[KEPT] = Kept(self.max_chars * 4 + MASK_MARGIN)
        return None

    def after(self, ctx: RequestContext) -> After:
        sent: Kept | None = ctx.state.get(KEPT)
        if sent is None:
            return None
        err = ctx.error
        fields: dict[str, Any] = {
            "request_id": ctx.request_id,
            "endpoint": ctx.endpoint,
            "model": getattr(ctx.req, "model", None),
            "status": ctx.status,
            "stream": ctx.stream,
            "request_body": self.shown(_text(ctx.body)),
            "response_body": self.shown(b"".join(sent.parts).decode("utf-8", "replace"), sent.dropped)
            if sent.size
            else None,
        }
        if err is not None:
            fields["error"] = type(err).__name__
            fields["detail"] = self.masker.mask(err.message)
        log.info("request and response bodies", extra=fields)
        return None

    def shown(self, text: str, dropped_bytes: int = 0) -> str:
        """``text`` masked, then cut (masking first: a cut key would no longer look like one).
        ``dropped_bytes``: what followed ``text`` but was not kept."""
        masked = self.masker.mask(text)
        if len(masked) <= self.max_chars and not dropped_bytes:
            return masked
        more = f"{len(masked) - self.max_chars} more characters" if len(masked) > self.max_chars else ""
        if dropped_bytes:
            more += f"{' and ' if more else ''}{dropped_bytes} more bytes"
        return f"{masked[: self.max_chars]}... [{more}]"


def _text(body: Any) -> str:
    if body is None:
        return ""
    try:
        return orjson.dumps(body).decode()
    except TypeError:
        return str(body)


def keeping(send: Send, kept: Kept) -> Send:
    """``send``, adding each body it sends to ``kept``."""

    async def send_kept(message: Message) -> None:
        if message["type"] == "http.response.body":
            kept.add(message.get("body", b""))
        await send(message)

    return send_kept
