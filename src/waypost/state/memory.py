"""Counters in this process's memory: exact and immediate, for a gateway with one worker."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from waypost.state.counters import NO_BUCKET, Line, Refused, Start, Tally, Window

COMPACT_AFTER = 1024  # stale heap entries tolerated beyond twice the live holds


class _Counter:
    __slots__ = ("buckets", "expiries", "held_micros", "held_tokens", "holds", "seeded", "since")

    def __init__(self, since: float) -> None:
        self.buckets: dict[int, list[int]] = {}  # bucket -> [micros, tokens]
        self.held_micros = 0
        self.held_tokens = 0
        self.holds: dict[str, tuple[int, int, float]] = {}  # rid -> (micros, tokens, expiry)
        self.expiries: list[tuple[float, str]] = []  # a heap; stale entries are skipped
        self.since = since
        self.seeded = False

    def expire_at(self, expiry: float, rid: str) -> None:
        """Note when ``rid``'s hold runs out. The heap keeps entries of holds already settled
        until their time comes (``purge`` skips them); it is rebuilt from the live holds whenever
        such stale entries outnumber them, so it stays in proportion to the requests in flight,
        not to the requests of the last ``reservation_ttl`` seconds."""
        expiries = self.expiries
        heapq.heappush(expiries, (expiry, rid))
        if len(expiries) > 2 * len(self.holds) + COMPACT_AFTER:
            self.expiries = [(hold[2], held) for held, hold in self.holds.items()]
            heapq.heapify(self.expiries)

    def purge(self, now: float) -> None:
        """Drop the reservations whose time ran out."""
        expiries = self.expiries
        while expiries and expiries[0][0] <= now:
            expiry, rid = heapq.heappop(expiries)
            hold = self.holds.get(rid)
            if hold is not None and hold[2] == expiry:
                del self.holds[rid]
                self.held_micros -= hold[0]
                self.held_tokens -= hold[1]

    def spent(self, first: int) -> tuple[int, int, int]:
        """Micros and tokens spent in buckets from ``first`` on, and the oldest such bucket with
        spend; older buckets are dropped."""
        micros = tokens = 0
        oldest = NO_BUCKET
        buckets = self.buckets
        stale: list[int] | None = None
        for bucket, (m, t) in buckets.items():
            if bucket < first:
                if stale is None:
                    stale = []
                stale.append(bucket)
                continue
            micros += m
            tokens += t
            if (m or t) and (oldest == NO_BUCKET or bucket < oldest):
                oldest = bucket
        if stale is not None:
            for bucket in stale:
                del buckets[bucket]
        return micros, tokens, oldest

    def over(self, line: Line) -> Tally | None:
        """Where this counter stands when ``line`` does not fit in its limits, else None."""
        micros, tokens, oldest = self.spent(line.window.first)
        if (
            line.limit_micros is not None and micros + self.held_micros + line.micros > line.limit_micros
        ) or (line.limit_tokens is not None and tokens + self.held_tokens + line.tokens > line.limit_tokens):
            return Tally(micros, tokens, self.held_micros, self.held_tokens, oldest)
        return None

    def hold(self, rid: str, line: Line, expiry: float) -> None:
        """Hold ``line`` for ``rid`` (added to what it holds already) until ``expiry``."""
        held = self.holds.get(rid)
        if held is None:
            self.holds[rid] = (line.micros, line.tokens, expiry)
        else:
            self.holds[rid] = (held[0] + line.micros, held[1] + line.tokens, expiry)
        self.held_micros += line.micros
        self.held_tokens += line.tokens
        self.expire_at(expiry, rid)

    def tally(self, first: int) -> Tally:
        micros, tokens, oldest = self.spent(first)
        return Tally(micros, tokens, self.held_micros, self.held_tokens, oldest)


class MemoryCounters:
    immediate = True

    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}

    def _get(self, key: str, now: float) -> _Counter:
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(now)
        return counter

    # -- synchronous: no I/O, so callable from a stream's ``progress`` --------------------------

    def reserve_now(
        self, rid: str, lines: Sequence[Line], *, now: float, ttl: float, strict: bool = True
    ) -> Refused | None:
        if len(lines) == 1:  # one budget applies: the usual request, without the loops
            line = lines[0]
            counter = self._get(line.window.key, now)
            counter.purge(now)
            if strict and (tally := counter.over(line)) is not None:
                return Refused(0, tally)
            counter.hold(rid, line, now + ttl)
            return None
        counters = [self._get(line.window.key, now) for line in lines]
        for counter in counters:
            counter.purge(now)
        if strict:
            for i, (line, counter) in enumerate(zip(lines, counters, strict=True)):
                if (tally := counter.over(line)) is not None:
                    return Refused(i, tally)
        expiry = now + ttl
        for line, counter in zip(lines, counters, strict=True):
            counter.hold(rid, line, expiry)
        return None

    def settle_now(self, rid: str, lines: Sequence[Line], *, now: float) -> list[Tally]:
        before: list[Tally] = []
        for line in lines:
            window = line.window
            counter = self._get(window.key, now)
            held = counter.holds.pop(rid, None)
            if held is not None:
                counter.held_micros -= held[0]
                counter.held_tokens -= held[1]
            counter.purge(now)
            before.append(counter.tally(window.first))
            if line.micros or line.tokens:
                bucket = counter.buckets.setdefault(window.bucket, [0, 0])
                bucket[0] += line.micros
                bucket[1] += line.tokens
        return before

    def tally_now(self, windows: Sequence[Window], *, now: float) -> list[Tally]:
        out = []
        for window in windows:
            counter = self._counters.get(window.key)
            if counter is None:
                out.append(Tally())
                continue
            counter.purge(now)
            out.append(counter.tally(window.first))
        return out

    # -- the Counters protocol ------------------------------------------------------------------

    async def reserve(
        self, rid: str, lines: Sequence[Line], *, now: float, ttl: float, strict: bool = True
    ) -> Refused | None:
        return self.reserve_now(rid, lines, now=now, ttl=ttl, strict=strict)

    async def settle(self, rid: str, lines: Sequence[Line], *, now: float) -> list[Tally]:
        return self.settle_now(rid, lines, now=now)

    async def tally(self, windows: Sequence[Window], *, now: float) -> list[Tally]:
        return self.tally_now(windows, now=now)

    async def start(self, windows: Sequence[Window], *, now: float) -> list[Start]:
        out = []
        for window in windows:
            counter = self._get(window.key, now)
            out.append(Start(counter.since, counter.seeded))
        return out

    async def seed(self, window: Window, buckets: Mapping[int, tuple[int, int]]) -> bool:
        counter = self._get(window.key, 0.0)
        if counter.seeded:
            return False
        for bucket, (micros, tokens) in buckets.items():
            if micros or tokens:
                totals = counter.buckets.setdefault(bucket, [0, 0])
                totals[0] += micros
                totals[1] += tokens
        counter.seeded = True
        return True

    async def drop(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._counters.pop(key, None)

    async def close(self) -> None:
        return None
