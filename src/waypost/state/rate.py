"""Rate-limit counters: rolling windows and concurrency slots, checked and taken in one atomic
step (docs/policy.md, "Rate limits").

A window counts four things (requests, tokens, input tokens, output tokens) in ``BUCKETS``
buckets spanning its period: a request counts in the bucket of the moment it was admitted, and
leaves the window when that bucket does, so the window is rolling at a 60th of its period. Each
counter keeps running totals, so a check costs the same whatever the traffic.

``acquire`` takes a request's lines, window lines and slot lines of every limit that applies:
either each has room (its count in the window plus the request's amount within each of its
limits; fewer requests in flight than its concurrency) and all are taken, or none is touched and
the first without room is named, with where every line stands. A refused request consumes
nothing. ``settle`` corrects a request's reservation to what it really used (in the bucket it
counted in, while that is still in the window) and frees its slots. A slot never freed (its
worker died) frees itself after its time to live.

``memory`` keeps them in the process (exact for one worker); ``rate_redis`` in Redis, each
operation one Lua script (exact across workers and replicas).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from waypost.settings import StateSettings

BUCKETS = 60  # per window: a minute counts by the second, a day by 24 minutes
REQUESTS, TOKENS, INPUT, OUTPUT = range(4)
CONCURRENCY = 4  # the "dimension" a refused slot line names
DIMENSIONS = ("requests", "tokens", "input_tokens", "output_tokens", "concurrency")
NONE = -1  # no limit on this dimension; no bucket
SWEEP_EVERY = 60.0  # seconds between sweeps of the memory backend's idle counters

Amounts = tuple[int, int, int, int]
ZERO: Amounts = (0, 0, 0, 0)


@dataclass(slots=True)
class WindowLine:
    """A request's part in one window: where it counts, and that window's limits."""

    key: str  # e.g. "rl:12:60" (the backend adds its prefix)
    bucket: int  # the bucket it counts in (now)
    first: int  # the oldest bucket still in the window: bucket - BUCKETS + 1
    ttl: int  # seconds the counter outlives its last write (the period and a bucket)
    amounts: Amounts  # requests, tokens, input tokens, output tokens
    limits: Amounts  # NONE where the window sets no limit

    @property
    def span(self) -> int:
        return self.bucket - self.first + 1


@dataclass(slots=True)
class SlotLine:
    """A request's concurrency slot on one limit."""

    key: str
    limit: int
    ttl: float  # seconds after which a slot never freed frees itself


Line = WindowLine | SlotLine


@dataclass(slots=True)
class Level:
    """Where a line stands: counted in its window (this request included once admitted), or, for
    a slot line, ``(in flight, 0, 0, 0)``; and the newest bucket with usage (``NONE``: none)."""

    used: Amounts
    newest: int = NONE


@dataclass(slots=True)
class Verdict:
    """The outcome of ``acquire``: one level per line (after the request when admitted, before it
    when refused) and, when refused, which line and which of its limits had no room, and the
    bucket whose leaving the window makes room (``NONE``: a slot line, or never)."""

    levels: tuple[Level, ...]
    refused: int = NONE
    dimension: int = NONE
    frees_at: int = NONE

    @property
    def admitted(self) -> bool:
        return self.refused == NONE


@dataclass(slots=True)
class Correction:
    """A request's reservation in one window, corrected to what it used: ``deltas`` (real minus
    reserved) go to the bucket it counted in while that is in the window; once it has left, only
    what it used beyond its reservation counts, now."""

    key: str
    bucket: int  # where the request counted
    first: int  # the window's oldest bucket now
    current: int  # the bucket now
    ttl: int
    deltas: Amounts


class RateCounters(Protocol):
    async def acquire(self, rid: str, lines: Sequence[Line], *, now: float) -> Verdict:
        """Take every line (under ``rid`` for slots), or none."""
        ...

    async def settle(
        self, rid: str, corrections: Sequence[Correction], slots: Sequence[str], *, now: float
    ) -> None:
        """Apply the corrections and free ``rid``'s slots on the ``slots`` keys."""
        ...

    async def peek(self, lines: Sequence[Line], *, now: float) -> list[Level]:
        """Where each line stands, taking nothing."""
        ...

    async def close(self) -> None: ...


def build_rate_counters(settings: StateSettings) -> RateCounters:
    """The configured backend's counters; nothing connects until the first use."""
    if settings.backend == "redis":
        from waypost.state.rate_redis import RedisRateCounters

        return RedisRateCounters(
            settings.redis_url, prefix=settings.key_prefix, socket_timeout=settings.socket_timeout
        )
    return MemoryRateCounters()


class _Window:
    __slots__ = ("buckets", "hi", "lo", "totals")

    def __init__(self, first: int) -> None:
        self.buckets: dict[int, list[int]] = {}
        self.totals = [0, 0, 0, 0]
        self.lo = first  # no bucket below this holds anything
        self.hi = NONE  # the newest bucket written

    def advance(self, first: int, span: int) -> None:
        """Drop the buckets that left the window."""
        lo = self.lo
        if lo >= first:
            return
        if first - lo >= span:
            self.buckets.clear()
            self.totals = [0, 0, 0, 0]
        else:
            buckets, totals = self.buckets, self.totals
            for b in range(lo, first):
                cell = buckets.pop(b, None)
                if cell is not None:
                    for d in range(4):
                        totals[d] -= cell[d]
        self.lo = first

    def level(self, first: int) -> Level:
        t = self.totals
        return Level((t[0], t[1], t[2], t[3]), self.hi if self.hi >= first else NONE)

    def frees_at(self, line: WindowLine, dimension: int, used: int) -> int:
        """The oldest bucket whose leaving makes room for the line's amount, or ``NONE``."""
        need = used + line.amounts[dimension] - line.limits[dimension]
        freed = 0
        for b in range(line.first, max(self.hi, line.first) + 1):
            cell = self.buckets.get(b)
            if cell is not None:
                freed += cell[dimension]
                if freed >= need:
                    return b
        return NONE


class MemoryRateCounters:
    """Counters in this process's memory: exact and immediate, for a gateway with one worker
    (and a Redis gateway's fallback while Redis does not answer)."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._expiry: dict[str, float] = {}  # window key -> when it may go (its last write + ttl)
        self._slots: dict[str, dict[str, float]] = {}  # slot key -> rid -> when it frees itself
        self._sweep_at = 0.0  # the next sweep, in the callers' clock (time.time())

    def acquire_now(self, rid: str, lines: Sequence[Line], *, now: float) -> Verdict:
        # The hot path of a gateway with one worker: plain loops, one dictionary lookup per line.
        if now >= self._sweep_at:
            self._sweep(now)
        windows, slots = self._windows, self._slots
        found: list[_Window | dict[str, float] | None] = []
        levels: list[Level] = []
        refused = dimension = NONE
        for i, line in enumerate(lines):
            if type(line) is WindowLine:
                window = windows.get(line.key)
                found.append(window)
                if window is None:
                    used = ZERO
                    level = Level(used)
                else:
                    first = line.first
                    if window.lo < first:
                        window.advance(first, line.bucket - first + 1)
                    t = window.totals
                    used = (t[0], t[1], t[2], t[3])
                    level = Level(used, window.hi if window.hi >= first else NONE)
                levels.append(level)
                if refused == NONE:
                    a, cap = line.amounts, line.limits
                    for d in range(4):
                        if cap[d] != NONE and used[d] + a[d] > cap[d]:
                            refused, dimension = i, d
                            break
            else:
                assert isinstance(line, SlotLine)
                held = slots.get(line.key)
                found.append(held)
                count = 0
                if held:
                    if len(held) >= line.limit:  # only then can a slot that freed itself matter
                        for gone in [r for r, until in held.items() if until <= now]:
                            del held[gone]
                    count = len(held)
                levels.append(Level((count, 0, 0, 0)))
                if refused == NONE and count >= line.limit:
                    refused, dimension = i, CONCURRENCY
        if refused != NONE:
            line, place = lines[refused], found[refused]
            frees = NONE
            if type(line) is WindowLine and isinstance(place, _Window):
                frees = place.frees_at(line, dimension, levels[refused].used[dimension])
            return Verdict(tuple(levels), refused, dimension, frees)
        for line, level, place in zip(lines, levels, found, strict=True):
            if type(line) is WindowLine:
                window = place if isinstance(place, _Window) else None
                if window is None:
                    window = windows[line.key] = _Window(line.first)
                bucket = line.bucket
                cell = window.buckets.get(bucket)
                if cell is None:
                    cell = window.buckets[bucket] = [0, 0, 0, 0]
                a, t = line.amounts, window.totals
                for d in range(4):
                    if a[d]:
                        cell[d] += a[d]
                        t[d] += a[d]
                if bucket > window.hi:
                    window.hi = bucket
                self._expiry[line.key] = now + line.ttl
                level.used = (t[0], t[1], t[2], t[3])
                level.newest = bucket
            else:
                assert isinstance(line, SlotLine)
                held = place if isinstance(place, dict) else None
                if held is None:
                    held = slots[line.key] = {}
                held[rid] = now + line.ttl
                level.used = (level.used[0] + 1, 0, 0, 0)
        return Verdict(tuple(levels))

    def settle_now(
        self, rid: str, corrections: Sequence[Correction], slots: Sequence[str], *, now: float
    ) -> None:
        for c in corrections:
            window = self._windows.get(c.key)
            if window is None:
                window = self._windows[c.key] = _Window(c.first)
            window.advance(c.first, c.current - c.first + 1)
            target = c.bucket if c.bucket >= c.first else c.current
            for d, delta in enumerate(c.deltas):
                if delta == 0 or (delta < 0 and target != c.bucket):
                    continue
                cell = window.buckets.get(target)
                if cell is None:
                    if delta < 0:
                        continue
                    cell = window.buckets[target] = [0, 0, 0, 0]
                new = max(0, cell[d] + delta)
                window.totals[d] += new - cell[d]
                cell[d] = new
                window.hi = max(window.hi, target)
            self._expiry[c.key] = max(self._expiry.get(c.key, 0.0), now + c.ttl)
        for key in slots:
            held = self._slots.get(key)
            if held is not None:
                held.pop(rid, None)
                if not held:
                    del self._slots[key]

    def peek_now(self, lines: Sequence[Line], *, now: float) -> list[Level]:
        out: list[Level] = []
        for line in lines:
            if isinstance(line, WindowLine):
                window = self._windows.get(line.key)
                if window is None:
                    out.append(Level(ZERO))
                else:
                    window.advance(line.first, line.span)
                    out.append(window.level(line.first))
            else:
                held = self._slots.get(line.key, {})
                out.append(Level((sum(1 for until in held.values() if until > now), 0, 0, 0)))
        return out

    def _sweep(self, now: float) -> None:
        """Forget windows idle past their period (per-user defaults would otherwise pile up)."""
        self._sweep_at = now + SWEEP_EVERY
        for key in [k for k, until in self._expiry.items() if until <= now]:
            del self._expiry[key]
            self._windows.pop(key, None)

    # -- the RateCounters protocol --------------------------------------------------------------

    async def acquire(self, rid: str, lines: Sequence[Line], *, now: float) -> Verdict:
        return self.acquire_now(rid, lines, now=now)

    async def settle(
        self, rid: str, corrections: Sequence[Correction], slots: Sequence[str], *, now: float
    ) -> None:
        self.settle_now(rid, corrections, slots, now=now)

    async def peek(self, lines: Sequence[Line], *, now: float) -> list[Level]:
        return self.peek_now(lines, now=now)

    async def close(self) -> None:
        return None
