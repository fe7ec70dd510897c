"""The event-loop lag probe (observability/loop_lag.py) and the collector set-up (heap.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from waypost.observability.heap import YOUNG_THRESHOLD, settle_heap
from waypost.observability.loop_lag import LoopLagProbe


def test_a_lag_over_the_threshold_is_a_stall_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    probe = LoopLagProbe(50)
    with caplog.at_level(logging.WARNING, logger="waypost.loop"):
        probe.record(0.002, now=1.0)
        probe.record(0.080, now=2.0)
        probe.record(0.090, now=2.1)  # within a second of the last line: counted, not logged
        probe.record(0.070, now=3.5)
    assert probe.stalls == 3
    lines = [r for r in caplog.records if r.name == "waypost.loop"]
    assert [r.getMessage() for r in lines] == ["event loop stalled"] * 2
    assert lines[0].lag_ms == 80.0  # type: ignore[attr-defined]
    assert lines[1].stalls_not_logged == 1  # type: ignore[attr-defined]
    snapshot = probe.snapshot()
    assert snapshot["lag_ms"] == 70.0
    assert snapshot["max_lag_ms"] == snapshot["recent_max_lag_ms"] == 90.0
    assert snapshot["stalls"] == 3
    assert snapshot["stall_threshold_ms"] == 50.0


def test_a_threshold_of_zero_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    probe = LoopLagProbe(0)
    with caplog.at_level(logging.WARNING, logger="waypost.loop"):
        probe.record(5.0, now=1.0)
    assert probe.stalls == 0
    assert probe.snapshot()["max_lag_ms"] == 5000.0
    assert not [r for r in caplog.records if r.name == "waypost.loop"]


def test_the_recent_maximum_forgets_old_windows() -> None:
    probe = LoopLagProbe(50)
    probe.record(0.5, now=0.0)  # opens the first window
    probe.record(0.01, now=61.0)  # a second window: the first is still recent
    assert probe.snapshot()["recent_max_lag_ms"] == 500.0
    probe.record(0.01, now=122.0)  # a third: the first is gone
    assert probe.snapshot()["recent_max_lag_ms"] == 10.0
    assert probe.snapshot()["max_lag_ms"] == 500.0


async def test_the_probe_sees_a_blocked_loop_and_the_collections_during_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = LoopLagProbe(20)
    task = asyncio.create_task(probe.run())
    try:
        with caplog.at_level(logging.WARNING, logger="waypost.loop"):
            await asyncio.sleep(0.05)
            gc.collect()
            time.sleep(0.3)  # holds the event loop, as a long computation would
            for _ in range(100):
                await asyncio.sleep(0.01)
                if probe.stalls:
                    break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert probe.stalls >= 1
    (line,) = [r for r in caplog.records if r.name == "waypost.loop"]
    assert line.lag_ms > 20  # type: ignore[attr-defined]
    assert line.gc_collections[2] >= 1  # type: ignore[attr-defined]
    assert probe._on_gc not in gc.callbacks  # the cancelled probe leaves the collector as it was


def test_settle_heap_moves_the_live_objects_out_of_the_collectors_way() -> None:
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        # Young collections made rarer: the request path leaves no cycles for them to find.
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
