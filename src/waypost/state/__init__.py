"""Shared state: counters every worker and replica agree on (budgets; limits, the cache and
cooldowns later). ``memory`` keeps them in the process (one worker), ``redis`` in Redis, with
atomic scripts and socket timeouts (workers and replicas)."""

from __future__ import annotations

from waypost.settings import StateSettings
from waypost.state.counters import Counters, Line, Refused, Start, Tally, Window
from waypost.state.memory import MemoryCounters

__all__ = ["Counters", "Line", "MemoryCounters", "Refused", "Start", "Tally", "Window", "build_counters"]


def build_counters(settings: StateSettings) -> Counters:
    """The configured backend's counters; nothing connects until the first use."""
    if settings.backend == "redis":
        from waypost.state.redis_backend import RedisCounters

        return RedisCounters(
            settings.redis_url, prefix=settings.key_prefix, socket_timeout=settings.socket_timeout
        )
    return MemoryCounters()
