"""Rate-limit tests: both state backends (Redis at 127.0.0.1:6379, or $WAYPOST_TEST_REDIS_URL),
each Redis test under a key prefix of its own, removed afterwards; gateways run in the test's
process (``tests.harness``) or as ``waypost serve`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.server.test_process import environment, free_port, wait_until_live
from waypost.state.rate import MemoryRateCounters, RateCounters

__all__ = ["REDIS_URL", "forget_prefix", "need_redis", "unique_prefix"]


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[RateCounters]:
    """Rate counters of each backend, empty."""
    if request.param == "memory":
        yield MemoryRateCounters()
        return
    need_redis()
    from waypost.state.rate_redis import RedisRateCounters

    prefix = unique_prefix()
    backend = RedisRateCounters(REDIS_URL, prefix=prefix, socket_timeout=2.0)
    try:
        yield backend
    finally:
        await backend.close()
        await forget_prefix(prefix)


class Processes:
    """``waypost serve`` processes started from config documents; stopped (SIGTERM) at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, doc: dict[str, Any]) -> str:
        port = free_port()
        path = self.directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**doc, "server": {"port": port}}))
        log = (self.directory / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "waypost.cli", "serve", "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=environment(),
            start_new_session=True,
        )
        self.running.append(process)
        wait_until_live(port, process)
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.running.clear()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop()
