"""The hot path's whole tally: one dictionary entry per kind of request.

A request that is over adds to one row, found with one key: (route, model, provider, status,
client format, the caller's groups, cache result, then the opt-in extra labels' values). The row
holds the count, tokens by type, cost, attempts, and the buckets of the three request histograms
(latency, time to first token, overhead). ``spread`` turns the rows into each metric's tally
when the metrics are flushed (``metrics.Metrics.flush``): a dozen series' arithmetic is done
once per row and flush, not once per request.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from waypost.core.context import RequestContext
from waypost.observability.metrics_catalog import LATENCY_BUCKETS, OVERHEAD_BUCKETS, TTFT_BUCKETS

Key = tuple[Any, ...]
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")

# The row: counters first, then each histogram's buckets (the last one +Inf) and its sum.
COUNT, INPUT, OUTPUT, CACHE_READ, CACHE_WRITE, REASONING, COST, ATTEMPTS = range(8)
_DURATION = 8
_TTFT = _DURATION + len(LATENCY_BUCKETS) + 2
_OVERHEAD = _TTFT + len(TTFT_BUCKETS) + 2
_WIDTH = _OVERHEAD + len(OVERHEAD_BUCKETS) + 2
HISTOGRAMS = ((_DURATION, LATENCY_BUCKETS), (_TTFT, TTFT_BUCKETS), (_OVERHEAD, OVERHEAD_BUCKETS))


@dataclass(slots=True)
class Into:
    """The per-metric tallies the rows spread into, and where each metric's extra labels sit
    among the key's extra values."""

    requests: dict[Key, Any]
    duration: dict[Key, Any]
    ttft: dict[Key, Any]
    overhead: dict[Key, Any]
    tokens: dict[Key, Any]
    cost: dict[Key, Any]
    group_tokens: dict[Key, Any]
    group_cost: dict[Key, Any]
    cache: dict[Key, Any]
    attempts: dict[Key, Any]
    extra_requests: tuple[int, ...] = ()
    extra_tokens: tuple[int, ...] = ()
    extra_cost: tuple[int, ...] = ()


@dataclass(slots=True)
class RequestRows:
    into: Into
    rows: dict[Key, list[float]] = field(default_factory=dict)

    def add(self, key: Key, ctx: RequestContext, now: float, one_attempt: bool) -> None:
        """Count ``ctx`` under ``key``; ``one_attempt``: it took one attempt, which served it."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0] * _WIDTH
        row[COUNT] += 1
        started = ctx.started
        seconds = now - started
        row[_DURATION + bisect_left(LATENCY_BUCKETS, seconds)] += 1
        row[_TTFT - 1] += seconds
        first = ctx.first_byte_at
        if first is not None and ctx.stream:
            seconds = first - started
            row[_TTFT + bisect_left(TTFT_BUCKETS, seconds)] += 1
            row[_OVERHEAD - 1] += seconds
        overhead = ctx.overhead
        if overhead is not None:
            row[_OVERHEAD + bisect_left(OVERHEAD_BUCKETS, overhead)] += 1
            row[_WIDTH - 1] += overhead
        if one_attempt:
            row[ATTEMPTS] += 1
        usage = ctx.usage
        if usage is not None:
            cache_read, cache_write = usage.cache_read_tokens, usage.cache_write_tokens
            row[INPUT] += max(0, usage.input_tokens - cache_read - cache_write)
            row[OUTPUT] += usage.output_tokens
            if cache_read or cache_write or usage.reasoning_tokens:
                row[CACHE_READ] += cache_read
                row[CACHE_WRITE] += cache_write
                row[REASONING] += usage.reasoning_tokens
        cost = ctx.cost
        if cost is not None:
            row[COST] += cost.total_micros

    def spread(self) -> None:
        """Move every row into the per-metric tallies."""
        if not self.rows:
            return
        items = list(self.rows.items())
        self.rows.clear()
        t = self.into
        for key, row in items:
            route, model, provider, status, fmt, groups, cache = key[:7]
            extra = key[7:]
            n = row[COUNT]
            _add(t.requests, (route, model, provider, status, fmt, *_pick(extra, t.extra_requests)), n)
            pair = (route, model)
            _merge(t.duration, pair, row, _DURATION, len(LATENCY_BUCKETS))
            _merge(t.ttft, pair, row, _TTFT, len(TTFT_BUCKETS))
            _merge(t.overhead, (route,), row, _OVERHEAD, len(OVERHEAD_BUCKETS))
            if row[ATTEMPTS]:
                _add(t.attempts, (model, provider), row[ATTEMPTS])
            if cache is not None:
                _add(t.cache, (model, cache), n)
            token_extra = _pick(extra, t.extra_tokens)
            for i, kind in enumerate(TOKEN_TYPES):
                amount = row[INPUT + i]
                if amount:
                    _add(t.tokens, (model, provider, kind, *token_extra), amount)
                    for group in groups:
                        _add(t.group_tokens, (group, kind), amount)
            if row[COST]:
                _add(t.cost, (model, provider, *_pick(extra, t.extra_cost)), row[COST])
                for group in groups:
                    _add(t.group_cost, (group,), row[COST])


def _add(tally: dict[Key, Any], key: Key, amount: float) -> None:
    tally[key] = tally.get(key, 0) + amount


def _pick(extra: Key, where: tuple[int, ...]) -> Key:
    return tuple(extra[i] for i in where) if where else ()


def _merge(tally: dict[Key, Any], key: Key, row: list[float], start: int, bounds: int) -> None:
    """Add a row's histogram (``bounds`` + 1 buckets, then the sum, from ``start``) to ``tally``."""
    end = start + bounds + 2
    if not any(row[start : end - 1]):
        return
    mine = tally.get(key)
    if mine is None:
        tally[key] = row[start:end]
        return
    for i in range(bounds + 2):
        mine[i] += row[start + i]
