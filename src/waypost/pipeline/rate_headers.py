"""The remaining allowance, in the headers clients already read, in each provider's own formats:

* OpenAI callers: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; a reset is a
  duration in Go's notation (``6m0s``, ``1s``, ``20ms``, ``1h0m0s``).
* Anthropic callers: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
  {limit,remaining,reset}``; a reset is an RFC 3339 time (``2026-01-02T15:04:05Z``).

Each header family shows the most restrictive window that applies (the least remaining; on a
tie, the one that resets last). A reset is when the window is whole again: when everything
counted in it so far has left it. ``tokens`` is the tightest of every token limit; Anthropic's
``input-tokens`` and ``output-tokens`` the tightest of those limits and of the combined one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import lru_cache

from waypost.pipeline.rate_book import LiveWindow
from waypost.state.rate import BUCKETS, INPUT, NONE, OUTPUT, REQUESTS, TOKENS, Amounts, Level

# header family -> the dimensions that bound it
OPENAI_FAMILIES = (("requests", (REQUESTS,)), ("tokens", (TOKENS, INPUT, OUTPUT)))
ANTHROPIC_FAMILIES = (
    ("requests", (REQUESTS,)),
    ("tokens", (TOKENS, INPUT, OUTPUT)),
    ("input-tokens", (TOKENS, INPUT)),
    ("output-tokens", (TOKENS, OUTPUT)),
)

# (family, anthropic) -> the names of its limit, remaining and reset headers
NAMES: dict[tuple[str, bool], tuple[str, str, str]] = {
    **{
        (family, False): (
            f"x-ratelimit-limit-{family}",
            f"x-ratelimit-remaining-{family}",
            f"x-ratelimit-reset-{family}",
        )
        for family, _ in OPENAI_FAMILIES
    },
    **{
        (family, True): (
            f"anthropic-ratelimit-{family}-limit",
            f"anthropic-ratelimit-{family}-remaining",
            f"anthropic-ratelimit-{family}-reset",
        )
        for family, _ in ANTHROPIC_FAMILIES
    },
}


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration`` prints it, to the millisecond: ``20ms``, ``1s``,
    ``59.5s``, ``6m0s``, ``1h2m3s`` (what OpenAI sends)."""
    ms = math.ceil(seconds * 1000 - 1e-6)
    if ms < 1000:
        return f"{max(0, ms)}ms"
    whole, frac = divmod(ms, 1000)
    secs = f"{whole % 60}.{frac:03d}".rstrip("0") if frac else str(whole % 60)
    if whole < 60:
        return f"{secs}s"
    minutes = whole // 60
    if minutes < 60:
        return f"{minutes}m{secs}s"
    return f"{minutes // 60}h{minutes % 60}m{secs}s"


@lru_cache(maxsize=1024)
def _rfc3339(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def rfc3339(at: float) -> str:
    """``2026-01-02T15:04:05Z``: whole seconds, rounded up (never earlier than the reset)."""
    return _rfc3339(math.ceil(at))


@lru_cache(maxsize=256)
def _entries(limits: Amounts, anthropic: bool) -> tuple[tuple[str, int, int], ...]:
    """(family, dimension, limit) for each header family a window with ``limits`` bounds."""
    out = []
    for family, dimensions in ANTHROPIC_FAMILIES if anthropic else OPENAI_FAMILIES:
        out += [(family, d, limits[d]) for d in dimensions if limits[d] != NONE]
    return tuple(out)


def allowance_headers(
    anthropic: bool, windows: Sequence[LiveWindow], levels: Sequence[Level], now: float
) -> dict[str, str]:
    """The headers for the windows a request counted in (``levels``: where each stands)."""
    best: dict[str, tuple[int, float, int]] = {}  # family -> remaining, reset, limit
    for window, level in zip(windows, levels, strict=True):
        used = level.used
        reset = (level.newest + BUCKETS) * window.step if level.newest != NONE else now
        for family, d, limit in _entries(window.limits, anthropic):
            remaining = limit - used[d]
            held = best.get(family)
            if held is None or remaining < held[0] or (remaining == held[0] and reset > held[1]):
                best[family] = (remaining, reset, limit)
    headers: dict[str, str] = {}
    shown: dict[float, str] = {}  # families of one window share its reset: formatted once
    for family, (remaining, reset, limit) in best.items():
        names = NAMES[family, anthropic]
        headers[names[0]] = str(limit)
        headers[names[1]] = str(remaining) if remaining > 0 else "0"
        text = shown.get(reset)
        if text is None:
            if anthropic:
                text = shown[reset] = rfc3339(reset if reset > now else now)
            else:
                text = shown[reset] = go_duration(reset - now)
        headers[names[2]] = text
    return headers


@lru_cache(maxsize=256)
def _plan(
    limits: Amounts, anthropic: bool
) -> tuple[tuple[str, str, str, tuple[tuple[int, int, str], ...]], ...]:
    """For each header family a window with ``limits`` bounds: its limit, remaining and reset
    headers' names, and its (dimension, limit, the limit as text) entries."""
    plan = []
    for family, dimensions in ANTHROPIC_FAMILIES if anthropic else OPENAI_FAMILIES:
        entries = tuple((d, limits[d], str(limits[d])) for d in dimensions if limits[d] != NONE)
        if entries:
            plan.append((*NAMES[family, anthropic], entries))
    return tuple(plan)


def window_headers(
    anthropic: bool, window: LiveWindow, level: Level, now: float, into: dict[str, str]
) -> None:
    """``allowance_headers`` for a request that counted in one window, written into ``into``
    (the common case: one limit of one window; no choosing between windows, one reset)."""
    used = level.used
    text = ""
    for limit_name, remaining_name, reset_name, entries in _plan(window.limits, anthropic):
        d, limit, limit_text = entries[0]
        remaining = limit - used[d]
        for other, other_limit, other_text in entries[1:]:  # the least remaining; the first on a tie
            left = other_limit - used[other]
            if left < remaining:
                remaining, limit_text = left, other_text
        into[limit_name] = limit_text
        into[remaining_name] = str(remaining) if remaining > 0 else "0"
        if not text:
            reset = (level.newest + BUCKETS) * window.step if level.newest != NONE else now
            text = rfc3339(reset if reset > now else now) if anthropic else go_duration(reset - now)
        into[reset_name] = text
