"""``DisconnectWatch``: a request's work is cancelled the moment its caller goes, whether the server
says so (Waypost's own, through the scope's ``Disconnect``) or only ``receive`` does (any other
ASGI server); and watching leaves nothing for the garbage collector."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from waypost.api.asgi_io import DISCONNECT, ClientGone, Disconnect, DisconnectWatch


class Receive:
    """An ASGI ``receive`` whose ``http.disconnect`` comes when ``hang_up`` is set."""

    def __init__(self) -> None:
        self.hang_up = asyncio.Event()
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await self.hang_up.wait()
        return {"type": "http.disconnect"}


async def _work(scope: dict[str, Any], receive: Receive, started: asyncio.Event) -> None:
    with DisconnectWatch(receive, scope):
        started.set()
        await asyncio.sleep(30)


async def test_without_a_hook_a_watcher_waits_on_receive_and_cancels_the_work() -> None:
    receive, started = Receive(), asyncio.Event()
    task = asyncio.create_task(_work({}, receive, started))
    await started.wait()
    receive.hang_up.set()
    with pytest.raises(ClientGone):
        await asyncio.wait_for(task, 2)
    assert receive.calls == 1


async def test_the_servers_hook_cancels_the_work_without_reading_receive() -> None:
    receive, started, hook = Receive(), asyncio.Event(), Disconnect()
    task = asyncio.create_task(_work({DISCONNECT: hook}, receive, started))
    await started.wait()
    assert hook.task is task
    hook.fire()
    with pytest.raises(ClientGone):
        await asyncio.wait_for(task, 2)
    assert receive.calls == 0
    assert hook.task is None  # released on the way out


async def test_a_caller_gone_before_the_watch_began_is_gone_at_the_first_wait() -> None:
    hook = Disconnect()
    hook.fire()
    with pytest.raises(ClientGone):
        await _work({DISCONNECT: hook}, Receive(), asyncio.Event())


@pytest.mark.parametrize("hooked", [True, False])
async def test_a_request_that_finishes_leaves_no_reference_cycle(hooked: bool) -> None:
    """Cycles are freed only by the collector: one per request was tens of microseconds of
    collection per request under load."""
    receive = Receive()

    async def finishes() -> None:
        with DisconnectWatch(receive, {DISCONNECT: Disconnect()} if hooked else {}):
            await asyncio.sleep(0)

    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await asyncio.create_task(finishes())
        await asyncio.sleep(0.01)  # the cancelled watchers finish
        assert gc.collect() == 0
    finally:
        gc.enable()
