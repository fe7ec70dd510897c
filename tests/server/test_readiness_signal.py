"""A worker of a multi-worker server runs uvicorn's own server, not ``GatewayServer``: its app
chains a handler before the server's for SIGTERM and SIGINT that turns readiness 503 at once
(``api.drain.not_ready_on_signal``), then lets the server's handler drain as before. The whole
shutdown with two workers is tests/metering/test_audit_shutdown.py's."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType, SimpleNamespace

from waypost.api.drain import Drain, not_ready_on_signal


def test_the_stop_signal_turns_readiness_off_before_the_servers_own_handler_runs() -> None:
    seen: list[tuple[int, bool]] = []
    container = SimpleNamespace(ready=True, drain=Drain(0))

    def servers_own(signum: int, frame: FrameType | None) -> None:
        seen.append((signum, container.ready))

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for sig in saved:
            signal.signal(sig, servers_own)
        not_ready_on_signal(container)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [(signal.SIGTERM, False)]  # ready was off when the server's handler ran
        container.ready = True
        os.kill(os.getpid(), signal.SIGINT)
        assert seen[-1] == (signal.SIGINT, False)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_outside_the_main_thread_nothing_is_installed() -> None:
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=not_ready_on_signal, args=(SimpleNamespace(ready=True, drain=Drain(0)),))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before
