"""Raw ASGI plumbing for the hot data-plane routes: headers, bodies, responses, disconnects.

The chat endpoints skip Starlette's routing and middleware stack (measured at about a sixth of
the gateway's CPU per request); everything else is served by Starlette.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from types import TracebackType
from typing import Any

from starlette.types import Receive, Scope, Send

from waypost.core.errors import BadRequest, PayloadTooLarge

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class ClientGone(Exception):
    """The caller disconnected before the answer was complete."""


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name (ASGI names are lower-case already)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def request_id(headers: dict[str, str]) -> str:
    """The caller's ``X-Request-ID`` when it is sane, or a new one (``new_request_id``)."""
    given = headers.get("x-request-id")
    if given is not None and _VALID_ID.match(given):
        return given
    return new_request_id()


def new_request_id() -> str:
    """A new request id: 32 hex digits, the first 12 the time in milliseconds, the other 20
    random (80 bits). Time first, so the audit log's unique indexes on it (request rows,
    attempts, labels) grow at their end instead of at random places: a third less CPU per row
    written on SQLite at 50,000 rows, more as the table grows."""
    # getrandbits, not os.urandom: an id must be unique, not unpredictable, and a system call per
    # request costs more (the generator is reseeded in a forked child, so workers do not repeat).
    return f"{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


def under_root_path(scope: Scope, root: str) -> Scope:
    """``scope`` as routed under ``server.root_path``: the prefix taken off the path when the
    proxy left it on, and recorded as ASGI's ``root_path`` so the URLs the app builds carry it."""
    path: str = scope["path"]
    if path == root or path.startswith(root + "/"):
        raw = scope.get("raw_path")
        scope = {
            **scope,
            "path": path[len(root) :] or "/",
            "raw_path": raw[len(root) :] or b"/" if raw and raw.startswith(root.encode()) else raw,
        }
    return {**scope, "root_path": root}


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole body; over ``limit`` bytes is 413, checked before and while reading."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {declared} bytes; the limit is {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body:
        raise BadRequest("Request body is empty; expected a JSON object.")
    return body


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_body(
    send: Send, status: int, body: bytes, content_type: bytes, headers: dict[str, str]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *encode_headers(headers),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# The scope key under which Waypost's own server (``server.GatewayProtocol``) hands a request a
# ``Disconnect``: the server tells it when the connection drops, so no task need wait for that.
DISCONNECT = "waypost.disconnect"


class Disconnect:
    """Told by the server the moment the connection drops before the answer is complete; cancels
    the task that watches it (``DisconnectWatch``), if one does."""

    __slots__ = ("gone", "task")

    def __init__(self) -> None:
        self.gone = False
        self.task: asyncio.Task[Any] | None = None

    def fire(self) -> None:
        self.gone = True
        if self.task is not None:
            self.task.cancel()


class DisconnectWatch:
    """Cancels the current task the moment the client disconnects; on exit turns that
    cancellation into ``ClientGone``.

    Under Waypost's own server the scope carries a ``Disconnect`` that the server fires from
    ``connection_lost``: nothing else runs per request. Under any other ASGI server one watcher
    task waits on ``receive`` for ``http.disconnect`` (and is cancelled at the end)."""

    __slots__ = ("_gone", "_hook", "_receive", "_task", "_watcher")

    def __init__(self, receive: Receive, scope: Scope) -> None:
        self._receive = receive
        self._gone = False
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._hook: Disconnect | None = scope.get(DISCONNECT)
        self._watcher: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._gone = True
        self._task.cancel()

    def __enter__(self) -> DisconnectWatch:
        hook = self._hook
        if hook is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        elif hook.gone:  # dropped already: cancelled at its first wait, as a watcher would
            self._task.cancel()
        else:
            hook.task = self._task
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        hook = self._hook
        if hook is not None:
            hook.task = None
            self._gone = hook.gone
        elif self._watcher is not None:
            self._watcher.cancel()
            # The cancelled watcher's exception holds its frame, whose ``self`` is this object:
            # without this, watcher and watch are a reference cycle (left to the collector).
            self._watcher = None
        if self._gone:
            if self._task.cancelling():
                self._task.uncancel()
            if exc_type is None or exc_type is asyncio.CancelledError:
                raise ClientGone from None
