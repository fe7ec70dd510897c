"""The response cache, the last stage (docs/policy.md, "The response cache").

* ``before``: for a cacheable chat request (``pipeline/cache_key.py``: which, and its key), an
  answer stored for the same request and tenant is replayed: the path encodes it in the caller's
  format, streamed or not, and no upstream is called. Being last, a hit has passed every check
  before it (authentication, rules, limits, budgets); model access and the request bounds, which
  the router checks on the way upstream, are checked here too. A miss goes upstream with a tap on
  its answer (``ctx.answer_tap``). Identical requests arriving while a miss is being answered
  wait for that answer instead of calling the upstream too (in this process).
* ``after``: a miss answered in full with status 200 is stored (its canonical response, usage
  and cost); a hit is accounted as nothing used upstream, with what it saved.

Per request: ``Cache-Control: no-store`` or ``X-Waypost-Cache: bypass`` neither reads nor stores;
``Cache-Control: no-cache`` or ``X-Waypost-Cache: refresh`` goes upstream and stores the new
answer. The answer says which happened in ``X-Cache-Status: HIT | MISS | BYPASS``, and names its
entry in ``X-Waypost-Cache-Key`` (for invalidation).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import cast

from waypost.core.context import Cost, RequestContext
from waypost.core.errors import BadRequest, GatewayError, ModelNotFound
from waypost.core.events import (
    Folder,
    MessageEnd,
    RawFrame,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
)
from waypost.core.types import ChatRequest, ChatResponse, Usage
from waypost.pipeline.cache_entry import Entry, decode_entry, encode_entry
from waypost.pipeline.cache_key import CHAT_ENDPOINTS, cache_key, replayable, sampled, tenant_of
from waypost.pipeline.stage import After, BaseStage, Before, Reply
from waypost.routing.router import Router
from waypost.settings import CacheSettings
from waypost.state.cache_store import CacheStore, MemoryCacheStore

log = logging.getLogger("waypost.cache")

STATE = "cache"  # ctx.state key: the request's Lookup
STATUS_HEADER = "x-cache-status"
KEY_HEADER = "x-waypost-cache-key"
DIRECTIVE_HEADER = "x-waypost-cache"
# A hit: nothing used upstream, priced (at nothing), not "unpriced".
CACHE_COST = Cost(0, {}, True, "cache")
DOWN_SECONDS = 5.0  # after the store failed (Redis), requests skip it this long
DECODED_BYTES = 8 << 20  # stored bytes whose decoded entries a worker keeps for hits


class Recorder:
    """The tap on a miss's answer: the response, or the stream's canonical events folded (the
    relayed bytes of a same-format stream are skipped; its canonical events come with them).
    Gives up on an answer that grows past what an entry may hold."""

    __slots__ = ("_ended", "_folder", "_limit", "_resp", "_size")

    def __init__(self, limit: int) -> None:
        self._folder: Folder | None = Folder()
        self._resp: ChatResponse | None = None
        self._ended = False
        self._size = 0
        self._limit = limit

    def response(self, resp: ChatResponse) -> None:
        self._resp = resp

    def events(self, batch: list[StreamEvent]) -> None:
        folder = self._folder
        if folder is None:
            return
        size = self._size
        for ev in batch:
            kind = type(ev)
            if kind is RawFrame:
                continue
            if kind is TextDelta or kind is ThinkingDelta:
                size += len(cast(TextDelta, ev).text)
            elif kind is ToolArgsDelta:
                size += len(cast(ToolArgsDelta, ev).fragment)
            elif kind is SignatureDelta:
                size += len(cast(SignatureDelta, ev).signature)
            elif kind is MessageEnd:
                self._ended = True
            folder.feed(ev)
        self._size = size
        if size > self._limit:
            self._folder = None

    @property
    def gave_up(self) -> bool:
        """The stream grew past what an entry may hold: nothing is kept of it."""
        return self._folder is None and self._resp is None

    def result(self) -> ChatResponse | None:
        """The whole answer, or None (cut short, or too big)."""
        if self._resp is not None:
            return self._resp
        if self._folder is not None and self._ended:
            return self._folder.result()
        return None


@dataclass(slots=True, eq=False)
class Lookup:
    """A cacheable request's entry: its key, the tags it is stored with, its TTL."""

    key: str
    tags: tuple[str, ...]
    ttl: float
    hit: bool = False
    recorder: Recorder | None = None
    # Set when this request leads identical ones: they wait for it, and get what it stores.
    flight: asyncio.Future[bytes | None] | None = field(default=None, repr=False)


@dataclass(slots=True)
class CacheCounts:
    """What this process's cache did since it started."""

    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    coalesced: int = 0  # of the hits: requests that waited for an identical one's answer
    stored: int = 0
    too_big: int = 0  # answers not stored: bigger than cache.max_entry_bytes
    store_errors: int = 0


def directive(ctx: RequestContext) -> str:
    """What the request asks of the cache: ``use``, ``refresh`` or ``bypass``."""
    headers = ctx.headers
    value = headers.get(DIRECTIVE_HEADER)
    if value is not None:
        wanted = value.strip().lower()
        if wanted in ("bypass", "refresh"):
            return wanted
        raise BadRequest(
            f"X-Waypost-Cache: {value[:40]!r} is not a cache directive (bypass or refresh).",
            param="X-Waypost-Cache",
        )
    control = headers.get("cache-control")
    if control:
        names = {d.split("=", 1)[0].strip().lower() for d in control.split(",")}
        if "no-store" in names:
            return "bypass"
        if "no-cache" in names:
            return "refresh"
    return "use"


class CacheStage(BaseStage):
    name = "cache"

    def __init__(self, settings: CacheSettings, store: CacheStore, router: Router) -> None:
        self.settings = settings
        self.store = store
        # This process's memory answers at once: a lookup there needs no coroutine.
        self._memory = store if isinstance(store, MemoryCacheStore) else None
        self._router = router
        self.counts = CacheCounts()
        self._flights: dict[str, asyncio.Future[bytes | None]] = {}
        # Entries decoded lately, by key, with the bytes they came from: a hot answer replayed
        # again is copied, not decoded again (a third of a hit's cost in the cache stage).
        self._decoded: dict[str, tuple[bytes, Entry]] = {}
        self._decoded_bytes = 0
        self._down_until = 0.0

    # -- before routing -------------------------------------------------------------------------

    def before(self, ctx: RequestContext) -> Before:
        req = ctx.req
        settings = self.settings
        wanted = directive(ctx)
        if (
            wanted == "bypass"
            or ctx.endpoint not in CHAT_ENDPOINTS
            or not isinstance(req, ChatRequest)
            or req.choices != 1  # the canonical answer holds one choice
            or (not settings.sampled and sampled(req))
            or not replayable(req)
        ):
            self._bypass(ctx)
            return None
        try:
            resolved = self._router.registry.resolve(req.model).name
        except GatewayError:
            self._bypass(ctx)
            return None  # the router answers for a model that does not exist
        principal = ctx.principal
        if principal is not None and not principal.may_use(resolved):
            # The router's own answer, given before anything is looked up or waited for.
            raise ModelNotFound(
                f"The model {req.model!r} does not exist or you do not have access to it.", param="model"
            )
        ttl = self._ttl(req.model, resolved)
        if ttl <= 0:
            self._bypass(ctx)
            return None
        tenant, tags = tenant_of(principal, settings.tenant)
        models = (
            (f"model:{req.model}",) if resolved == req.model else (f"model:{req.model}", f"model:{resolved}")
        )
        lookup = Lookup(
            cache_key(req, tenant, ctx.decoder_notes, ctx.passthrough_headers), (*tags, *models), ttl
        )
        ctx.state[STATE] = lookup
        ctx.response_headers[KEY_HEADER] = lookup.key
        if wanted == "use":
            memory = self._memory
            if memory is None or (settings.coalesce and lookup.key in self._flights):
                return self._look_then_miss(ctx, req, lookup)  # a store or a request to wait for
            data = memory.get_now(lookup.key)  # this process's own: answers at once
            if data is not None:
                reply = self._replay(ctx, req, lookup, data, False)
                if reply is not None:
                    return reply
        self._miss(ctx, lookup)
        return None

    async def _look_then_miss(self, ctx: RequestContext, req: ChatRequest, lookup: Lookup) -> Reply | None:
        reply = await self._lookup(ctx, req, lookup)
        if reply is not None:
            return reply
        self._miss(ctx, lookup)
        return None

    def _miss(self, ctx: RequestContext, lookup: Lookup) -> None:
        """Not answered from the cache: the answer is recorded to be stored, and identical
        requests meanwhile wait for it (``coalesce``)."""
        if self.settings.coalesce and lookup.key not in self._flights:
            lookup.flight = self._flights[lookup.key] = asyncio.get_running_loop().create_future()
        lookup.recorder = Recorder(self.settings.max_entry_bytes)
        ctx.answer_tap = lookup.recorder
        ctx.cache_status = "miss"
        ctx.response_headers[STATUS_HEADER] = "MISS"
        self.counts.misses += 1
        return None

    def _bypass(self, ctx: RequestContext) -> None:
        ctx.cache_status = "bypass"
        ctx.response_headers[STATUS_HEADER] = "BYPASS"
        self.counts.bypasses += 1

    def _ttl(self, model: str, resolved: str) -> float:
        ttls = self.settings.model_ttl
        if ttls:
            ttl = ttls.get(model)
            if ttl is None:
                ttl = ttls.get(resolved)
            if ttl is not None:
                return ttl
        return self.settings.ttl

    async def _lookup(self, ctx: RequestContext, req: ChatRequest, lookup: Lookup) -> ChatResponse | None:
        """The stored answer replayed, or None: a miss. While an identical request is being
        answered, wait for its answer (up to ``coalesce_timeout``)."""
        key = lookup.key
        coalesced = False
        while True:
            data = await self._get(key)
            if data is None and self.settings.coalesce:
                flight = self._flights.get(key)
                if flight is not None:
                    try:
                        data = await asyncio.wait_for(asyncio.shield(flight), self.settings.coalesce_timeout)
                    except TimeoutError:
                        return None
                    if data is None:
                        continue  # the first failed: look again, and maybe lead
                    coalesced = True
            if data is None:
                return None
            return self._replay(ctx, req, lookup, data, coalesced)

    def _replay(
        self, ctx: RequestContext, req: ChatRequest, lookup: Lookup, data: bytes, coalesced: bool
    ) -> ChatResponse | None:
        """The stored answer ``data`` as this request's answer; None when it cannot be read."""
        entry = self._decode(lookup.key, data)
        if entry is None:
            return None
        # What the router checks on the way upstream holds for a hit too (a bound lowered
        # since the answer was stored).
        self._router.bounds.admit_chat(req)
        # A copy of its own per answer, with a fresh id (clients may tell answers apart by it).
        stored = entry.response
        resp = ChatResponse(  # not dataclasses.replace: half the cost, on every hit
            id=f"cache-{random.getrandbits(96):024x}",
            model=stored.model,
            content=list(stored.content),
            finish_reason=stored.finish_reason,
            stop_sequence=stored.stop_sequence,
            usage=stored.usage,
            created=int(time.time()),
            raw=stored.raw,
        )
        lookup.hit = True
        ctx.cache_status = "hit"
        ctx.saved_micros = entry.cost_micros
        ctx.cost = CACHE_COST
        ctx.response_headers[STATUS_HEADER] = "HIT"
        self.counts.hits += 1
        if coalesced:
            self.counts.coalesced += 1
        return resp

    def _decode(self, key: str, data: bytes) -> Entry | None:
        known = self._decoded.get(key)
        if known is not None and known[0] == data:
            return known[1]
        entry = decode_entry(data)
        if entry is None:
            return None
        if self._decoded_bytes + len(data) > DECODED_BYTES:
            self._decoded.clear()  # bounded: start over rather than track ages
            self._decoded_bytes = 0
        if known is not None:
            self._decoded_bytes -= len(known[0])
        self._decoded[key] = (data, entry)
        self._decoded_bytes += len(data)
        return entry

    # -- after the answer -----------------------------------------------------------------------

    def after(self, ctx: RequestContext) -> After:
        lookup: Lookup | None = ctx.state.pop(STATE, None)
        if lookup is None:
            return None
        if lookup.hit:
            # Nothing was used upstream: the audit row, limits and budgets count none of it.
            ctx.usage = Usage()
            ctx.cost = CACHE_COST
            return None
        return self._store_answer(ctx, lookup)

    async def _store_answer(self, ctx: RequestContext, lookup: Lookup) -> None:
        """A miss's answer into the store, and to the identical requests that waited for it."""
        data: bytes | None = None
        try:
            recorder = lookup.recorder
            resp = recorder.result() if recorder is not None else None
            if ctx.status == 200 and ctx.error is None:
                if resp is not None:
                    cost = ctx.cost.total_micros if ctx.cost is not None else 0
                    data = encode_entry(resp, ctx.usage or resp.usage, cost)
                    if data is not None:
                        await self._put(lookup, data)
                elif recorder is not None and recorder.gave_up:
                    self.counts.too_big += 1
        finally:
            flight = lookup.flight
            if flight is not None:
                if self._flights.get(lookup.key) is flight:
                    del self._flights[lookup.key]
                if not flight.done():
                    # The waiting requests replay the answer itself, stored or not (too big).
                    flight.set_result(data)

    # -- the store, skipped for a while when it fails -------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        if time.monotonic() < self._down_until:
            return None
        try:
            return await self.store.get(key)
        except Exception as exc:
            self._failed(exc)
            return None

    async def _put(self, lookup: Lookup, data: bytes) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            stored = await self.store.put(lookup.key, data, ttl=lookup.ttl, tags=lookup.tags)
        except Exception as exc:
            self._failed(exc)
            return
        if stored:
            self.counts.stored += 1
        else:
            self.counts.too_big += 1

    def _failed(self, exc: Exception) -> None:
        self.counts.store_errors += 1
        self._down_until = time.monotonic() + DOWN_SECONDS
        log.error(
            "the response cache's store failed (%s: %s); requests go upstream uncached for %gs",
            type(exc).__name__,
            exc,
            DOWN_SECONDS,
        )
