"""The per-request access log: one line per request, written in batches.

Each request's line is queued and the queue is written with one ``write`` per event-loop turn,
so a busy gateway pays a single syscall for many requests and none of the ``logging``
module's per-record work (records, handlers, locks) on the hot path.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import orjson

from waypost.core.errors import GatewayError
from waypost.settings import LoggingSettings


class AccessLog:
    def __init__(self, *, enabled: bool, json_format: bool, fd: int = 2) -> None:
        self.enabled = enabled
        self._json = json_format
        self._fd = fd
        self._pending: list[bytes] = []
        self._scheduled = False
        self._second = -1
        self._second_text = ""

    @classmethod
    def from_settings(cls, settings: LoggingSettings) -> AccessLog:
        """On when ``logging.access_log`` is and the level shows info lines."""
        return cls(
            enabled=settings.access_log and settings.level in ("debug", "info"),
            json_format=settings.json_format,
        )

    def refused(self, request_id: str, path: str, err: GatewayError, started: float | None = None) -> None:
        """The line of a request refused before it was understood: malformed, too slow, too
        large, unauthenticated, or a body that does not decode. ``started`` is its
        ``time.perf_counter()`` when known."""
        if not self.enabled:
            return
        fields: dict[str, Any] = {"request_id": request_id, "path": path, "status": err.status}
        if started is not None:
            fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
        fields["error"] = type(err).__name__
        fields["detail"] = err.message
        self.write(fields)

    def write(self, fields: dict[str, Any]) -> None:
        if not self.enabled:
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a line
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._second_text}.{int(now * 1000) % 1000:03d}Z"
        line: bytes
        if self._json:
            line = orjson.dumps(
                {
                    "ts": stamp,
                    "level": "info",
                    "logger": "waypost.access",
                    "msg": "request finished",
                    **fields,
                },
                default=str,
            )
        else:
            text = " ".join(f"{k}={v}" for k, v in fields.items())
            line = f"{stamp} INFO    waypost.access: request finished {text}".encode()
        self._pending.append(line)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (tests calling directly): write at once
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        data = b"\n".join(self._pending) + b"\n"
        self._pending.clear()
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:
                return  # a closed stderr must not take requests down
            view = view[written:]
