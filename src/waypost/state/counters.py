"""Windowed counters with reservations: what budgets (and later limits) keep in shared state.

A counter is named by a ``Window``: its key, the bucket new spend goes into now, and the oldest
bucket that still counts. A calendar budget has one bucket per period (the month, say), a rolling
one 24 steps of its length, a total one a single bucket. Spend is added to the current bucket;
buckets older than the window are dropped as they are met.

A reservation holds an amount on several counters at once under one id, atomically: either every
counter has room (its spend in the window, plus what is held on it, plus the amount, within its
limit) and the amount is held on all of them, or none is touched and the first that had no room
is named. Settling an id releases what it held and adds what was really spent. A reservation that
is never settled (its worker died) is dropped after its time to live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

NO_BUCKET = -1

# Windows, lines and tallies are made for every request that a budget or a limit counts: named
# tuples, several times cheaper to make than frozen dataclasses, and as immutable.


class Window(NamedTuple):
    """One counter, and which of its buckets count now."""

    key: str  # e.g. "budget:12:0" (the backend adds its prefix)
    bucket: int  # where spend goes now
    first: int  # the oldest bucket that still counts
    expires_at: int = 0  # Unix seconds after which the whole counter may be dropped; 0: kept


class Line(NamedTuple):
    """One counter's part in a reservation or a settlement."""

    window: Window
    micros: int = 0
    tokens: int = 0
    limit_micros: int | None = None  # None: no limit in micro-dollars on this counter
    limit_tokens: int | None = None


class Tally(NamedTuple):
    """A counter as it stands: spent in its window, held by reservations, and the oldest bucket
    with spend in it (``NO_BUCKET``: none)."""

    spent_micros: int = 0
    spent_tokens: int = 0
    held_micros: int = 0
    held_tokens: int = 0
    oldest: int = NO_BUCKET


@dataclass(frozen=True, slots=True)
class Refused:
    """The reservation was not made: ``lines[index]`` had no room; how that counter stood."""

    index: int
    tally: Tally


@dataclass(frozen=True, slots=True)
class Start:
    """When a counter started counting live (set on first use), and whether it was seeded."""

    since: float
    seeded: bool


class Counters(Protocol):
    """A state backend's counters. ``immediate``: every operation completes without I/O, so
    synchronous code may use the ``*_now`` methods (the memory backend)."""

    immediate: bool

    async def reserve(
        self, rid: str, lines: Sequence[Line], *, now: float, ttl: float, strict: bool = True
    ) -> Refused | None:
        """Hold each line's amount on its counter under ``rid`` (added to what ``rid`` already
        holds there), or nothing: ``Refused`` names the first line without room. ``strict=False``
        holds without checking the limits."""
        ...

    async def settle(self, rid: str, lines: Sequence[Line], *, now: float) -> list[Tally]:
        """Release what ``rid`` holds on each line's counter and add the line's amount as spent;
        each counter's tally from just before (so a caller sees which thresholds it crossed)."""
        ...

    async def tally(self, windows: Sequence[Window], *, now: float) -> list[Tally]: ...

    async def start(self, windows: Sequence[Window], *, now: float) -> list[Start]:
        """Each counter's start (``now`` for one not started yet, which it then is)."""
        ...

    async def seed(self, window: Window, buckets: Mapping[int, tuple[int, int]]) -> bool:
        """Add recorded spend (bucket -> micros, tokens) to a counter not seeded yet; whether
        this call did it (of several workers seeding one counter, one does)."""
        ...

    async def drop(self, keys: Sequence[str]) -> None:
        """Forget counters (a deleted budget; a reset's previous generation)."""
        ...

    async def close(self) -> None: ...
