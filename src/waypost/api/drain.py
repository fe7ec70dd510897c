"""The end of an app's service: at the stop signal (SIGTERM, SIGINT) readiness turns 503, and once
``server.shutdown_grace`` has passed, every data-plane request still running is cut, each in its
own format (a stream with an error event, a request not yet answered with a 503), so that its
client learns why and its audit row is still written with the reason (``ShuttingDown``).

uvicorn cuts what still runs too, but later (``BACKSTOP``) and by cancelling: a cancelled stream
would end as a broken connection. The data-plane requests are cut here first, each told why.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from waypost.core.errors import ShuttingDown

# Seconds after the grace period at which uvicorn cancels what is still running (control-plane
# requests; a cut request still writing its row): the cut requests end well within it.
BACKSTOP = 5.0


class Drain:
    """One app's stop: ``begin`` at the signal, ``cut`` when the grace period ends."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.stopping = False  # the stop signal came
        self.cutting = False  # the grace period is over: a cancelled request was cut by it
        self._tasks: set[asyncio.Task[Any]] = set()  # the data-plane requests running
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """The app started serving on the running loop (the lifespan's)."""
        self._loop = asyncio.get_running_loop()

    def track(self) -> asyncio.Task[Any] | None:
        """Note the current data-plane request; ``untrack`` it once it has its answer."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        return task

    def untrack(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._tasks.discard(task)

    def begin(self) -> None:
        """The stop signal arrived: the grace period starts. Safe to call from a signal handler,
        and more than once (the first counts)."""
        self.stopping = True
        loop = self._loop
        if loop is not None and self._timer is None and not loop.is_closed():
            loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        if self._timer is None:
            assert self._loop is not None
            self._timer = self._loop.call_later(self.grace, self.cut)

    def cut(self) -> None:
        """The grace period is over: cancel the data-plane requests still running; each ends with
        ``error()`` in its format (api/chat.py, api/dataplane.py)."""
        self.cutting = True
        for task in list(self._tasks):
            task.cancel()

    def error(self) -> ShuttingDown:
        return ShuttingDown(
            f"The gateway is shutting down: this request was still running when its grace period"
            f" ({self.grace:g} s) ended."
        )

    def stop(self) -> None:
        """The app is shutting down (its lifespan): no cut after this."""
        if self._timer is not None:
            self._timer.cancel()


def resume_after_cut() -> None:
    """The current task was cancelled by ``cut`` and has answered instead: it goes on (its audit
    row is written) as if not cancelled."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


class Readiness(Protocol):
    """What a stop signal changes: readiness, and the drain it starts (the app's container)."""

    ready: bool
    drain: Drain


def not_ready_on_signal(container: Readiness) -> None:
    """Chain a handler before the server's own for SIGTERM and SIGINT that turns readiness
    (``/health/ready``) 503 at once, so a load balancer stops sending while in-flight requests
    drain (a one-worker server does this in ``server.GatewayServer``). The server installs its
    handlers before the lifespan starts, so they are there to chain."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread: an app served from another has none
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: object, previous: Callable[..., object] = previous) -> None:
            container.ready = False
            container.drain.begin()  # the grace period, then what still runs is cut
            previous(signum, frame)

        signal.signal(sig, handler)
