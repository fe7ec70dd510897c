"""Event-loop lag: how late the loop runs a timer, which is how long every request in flight on
this worker waited behind whatever held the loop (a long computation, a full garbage collection).

A background task asks to be woken every ``INTERVAL_S`` and records how late it was. A lag over
``logging.loop_lag_ms`` is one ``waypost.loop`` warning line (at most one a second; the others
are counted), with the garbage collections that ran since the previous wake-up, so the line
says whether the collector was the cause. ``/health`` shows the counters (``snapshot``). The
cost is one timer per ``INTERVAL_S`` and a counter per collection.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger("waypost.loop")

INTERVAL_S = 0.025  # how often the probe wakes
WINDOW_S = 60.0  # ``recent_max_lag_ms`` covers the last one to two minutes
_LOG_EVERY_S = 1.0  # at most one stall line a second


class LoopLagProbe:
    def __init__(self, threshold_ms: float, *, interval_s: float = INTERVAL_S) -> None:
        self.threshold_s = threshold_ms / 1000
        self.interval_s = interval_s
        self.last_lag_s = 0.0
        self.max_lag_s = 0.0  # since start
        self.stalls = 0  # wake-ups later than the threshold, since start
        self._window_max = 0.0  # largest lag in the current window
        self._previous_window_max = 0.0
        self._window_ends = 0.0
        self._logged_at = -_LOG_EVERY_S
        self._unlogged = 0
        # Garbage collections since the last wake-up: count and time per generation.
        self._gc_started = 0.0
        self._gc_counts = [0, 0, 0]
        self._gc_seconds = [0.0, 0.0, 0.0]

    # -- garbage collector ------------------------------------------------------------------------

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        generation = info["generation"]
        self._gc_counts[generation] += 1
        self._gc_seconds[generation] += time.perf_counter() - self._gc_started

    # -- the probe --------------------------------------------------------------------------------

    async def run(self) -> None:
        """The background loop the lifespan starts; ends when cancelled."""
        loop = asyncio.get_running_loop()
        gc.callbacks.append(self._on_gc)
        self._window_ends = loop.time() + WINDOW_S
        try:
            while True:
                expected = loop.time() + self.interval_s
                await asyncio.sleep(self.interval_s)
                self.record(loop.time() - expected, loop.time())
        finally:
            gc.callbacks.remove(self._on_gc)

    def record(self, lag_s: float, now: float) -> None:
        """One wake-up ``lag_s`` late at loop time ``now``."""
        lag_s = max(0.0, lag_s)
        self.last_lag_s = lag_s
        self.max_lag_s = max(self.max_lag_s, lag_s)
        if now >= self._window_ends:
            self._previous_window_max, self._window_max = self._window_max, 0.0
            self._window_ends = now + WINDOW_S
        self._window_max = max(self._window_max, lag_s)
        if self.threshold_s > 0 and lag_s > self.threshold_s:
            self.stalls += 1
            if now - self._logged_at >= _LOG_EVERY_S:
                self._logged_at = now
                self._log_stall(lag_s)
            else:
                self._unlogged += 1
        counts, seconds = self._gc_counts, self._gc_seconds
        counts[0] = counts[1] = counts[2] = 0
        seconds[0] = seconds[1] = seconds[2] = 0.0

    def _log_stall(self, lag_s: float) -> None:
        fields: dict[str, Any] = {
            "lag_ms": round(lag_s * 1000, 1),
            "threshold_ms": round(self.threshold_s * 1000, 1),
            "gc_collections": list(self._gc_counts),
            "gc_ms": [round(s * 1000, 1) for s in self._gc_seconds],
        }
        if self._unlogged:
            fields["stalls_not_logged"] = self._unlogged
            self._unlogged = 0
        log.warning("event loop stalled", extra=fields)

    def snapshot(self) -> dict[str, Any]:
        """The counters ``/health`` shows."""
        return {
            "lag_ms": round(self.last_lag_s * 1000, 1),
            "recent_max_lag_ms": round(max(self._window_max, self._previous_window_max) * 1000, 1),
            "max_lag_ms": round(self.max_lag_s * 1000, 1),
            "stalls": self.stalls,
            "stall_threshold_ms": round(self.threshold_s * 1000, 1),
        }
