"""The rolling counters behind quota conditions: what each caller (its user) used over the last
``window`` seconds, from its successful requests, in the state backend (``state.backend``: this
process's memory, or Redis shared by every worker and replica). Never the audit log.

Each distinct (window, per model) among the rules' quota conditions is one counter per caller
(and model), kept with ``waypost.state``'s windowed counters: 60 buckets across the window, so a
request leaves a one-hour window within a minute of its hour. The cost and tokens go in one
counter, the requests in a second (``tokens`` of that one counts requests). Reading all of a
caller's counters is one call to the backend, and so is recording a request's usage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from waypost.state.counters import NO_BUCKET, Counters, Line, Tally, Window

BUCKETS = 60  # per window: a request leaves the window within 1/60th of it
SWEEP_EVERY = 60.0  # seconds between drops of idle counters (memory backend)
MICROS_PER_USD = 1_000_000


@dataclass(frozen=True, slots=True)
class QuotaSpec:
    """A rolling window of ``window`` seconds, per caller, and per model when ``per_model``."""

    window: int
    per_model: bool

    @property
    def step(self) -> int:
        return max(1, math.ceil(self.window / BUCKETS))

    @property
    def buckets(self) -> int:
        return math.ceil(self.window / self.step)

    def windows(self, caller: str, model: str, now: float) -> tuple[Window, Window]:
        """Its usage counter (cost, tokens) and its requests counter, as of ``now``."""
        step = self.step
        bucket = int(now // step)
        first = bucket - self.buckets + 1
        expires = (bucket + 1) * step + self.window + 1
        key = f"rules:{self.window}:{caller}" + (f":m:{model}" if self.per_model else "")
        return Window(key, bucket, first, expires), Window(key + ":n", bucket, first, expires)

    def next_free(self, tally: Tally, now: float) -> int:
        """Seconds until the oldest usage counted leaves the window (0: nothing counted)."""
        if tally.oldest == NO_BUCKET:
            return 0
        return max(1, math.ceil((tally.oldest + self.buckets) * self.step - now))


@dataclass(frozen=True, slots=True)
class QuotaView:
    """A caller's usage in one window, and when its oldest part leaves it, per metric."""

    cost_micros: int = 0
    tokens: int = 0
    requests: int = 0
    usage_frees_in: int = 0  # seconds: cost and tokens
    requests_free_in: int = 0

    EMPTY: ClassVar[QuotaView]

    def value(self, metric: str) -> float | int:
        """``cost`` in USD, ``tokens``, ``requests``."""
        if metric == "cost":
            return self.cost_micros / MICROS_PER_USD
        return self.tokens if metric == "tokens" else self.requests

    def next_free(self, metric: str) -> int:
        return self.requests_free_in if metric == "requests" else self.usage_frees_in


QuotaView.EMPTY = QuotaView()


def caller_key(user_id: int | None) -> str:
    return f"u{user_id}" if user_id is not None else "anonymous"


class Quotas:
    """The counters of a set of quota specs over one backend."""

    def __init__(
        self, counters: Counters, specs: Iterable[QuotaSpec], expiries: dict[str, int] | None = None
    ) -> None:
        self.counters = counters
        self.specs: tuple[QuotaSpec, ...] = tuple(sorted(set(specs), key=lambda s: (s.window, s.per_model)))
        self.per_model = any(s.per_model for s in self.specs)
        # The memory backend forgets nothing by itself: counters idle past their window are
        # dropped here (Redis expires them). ``expiries`` outlives a reload of the rules.
        self._expiries = (expiries if expiries is not None else {}) if counters.immediate else None
        self._swept = time.time()

    def _windows(self, caller: str, model: str, now: float) -> list[Window]:
        out: list[Window] = []
        for spec in self.specs:
            out += spec.windows(caller, model, now)
        return out

    async def read(self, caller: str, model: str, now: float) -> dict[QuotaSpec, QuotaView]:
        """The caller's usage in every spec's window (``model``: the per-model counters')."""
        tallies = await self.counters.tally(self._windows(caller, model, now), now=now)
        return self.views(tallies, now)

    def views(self, tallies: Sequence[Tally], now: float) -> dict[QuotaSpec, QuotaView]:
        out: dict[QuotaSpec, QuotaView] = {}
        for i, spec in enumerate(self.specs):
            usage, requests = tallies[2 * i], tallies[2 * i + 1]
            out[spec] = QuotaView(
                cost_micros=usage.spent_micros,
                tokens=usage.spent_tokens,
                requests=requests.spent_tokens,
                usage_frees_in=spec.next_free(usage, now),
                requests_free_in=spec.next_free(requests, now),
            )
        return out

    async def record(self, caller: str, model: str, micros: int, tokens: int, now: float) -> None:
        """A successful request's usage, in every spec's window."""
        lines: list[Line] = []
        for spec in self.specs:
            usage, requests = spec.windows(caller, model, now)
            lines.append(Line(usage, micros=micros, tokens=tokens))
            lines.append(Line(requests, tokens=1))
        await self.counters.settle("", lines, now=now)
        if self._expiries is not None:
            for line in lines:
                self._expiries[line.window.key] = line.window.expires_at
            if now - self._swept >= SWEEP_EVERY:
                await self._sweep(now)

    async def _sweep(self, now: float) -> None:
        self._swept = now
        expiries = self._expiries
        assert expiries is not None
        idle = [key for key, at in expiries.items() if at <= now]
        for key in idle:
            del expiries[key]
        if idle:
            await self.counters.drop(idle)


def specs_of(quota_conditions: Iterable[tuple[int, bool]]) -> set[QuotaSpec]:
    return {QuotaSpec(window, per_model) for window, per_model in quota_conditions}


def usd_text(micros: int) -> str:
    """``12.50``, ``0.000042``: at least cents, every micro-dollar there is (no currency sign)."""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    digits = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{'-' if micros < 0 else ''}{whole}.{digits}"


def as_mapping(views: Mapping[QuotaSpec, QuotaView]) -> dict[str, dict[str, float | int]]:
    """Views as JSON (the test endpoint shows them)."""
    return {
        f"{spec.window}s" + (" per model" if spec.per_model else ""): {
            "cost_usd": view.cost_micros / MICROS_PER_USD,
            "tokens": view.tokens,
            "requests": view.requests,
        }
        for spec, view in views.items()
    }
