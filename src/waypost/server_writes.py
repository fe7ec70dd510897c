"""One write, not two, for an answer's head and the body that follows it.

uvicorn writes a response's status line and headers when the application sends
``http.response.start``, and its body, separately, at ``http.response.body``: two system calls and
two TCP segments for every non-streamed answer, although the data plane sends both in the same
turn of the event loop. ``HeadWithBody`` wraps a connection's transport (``server.GatewayProtocol``)
so that a head is held until the next write, which carries it, or until the end of the loop's
turn, whichever comes first: a non-streamed answer leaves in one write; a stream's head leaves with
its first chunk, or a turn later. Nothing is ever reordered, dropped or held longer than that:
every write goes out after what was held, and closing writes what is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any

# uvicorn starts every response (and a "100 Continue") with this status-line prefix.
HEAD = b"HTTP/1.1 "


class HeadWithBody:
    """A transport that holds a response head (a write starting with ``HEAD``) until the next
    write or the end of the loop's turn. Everything else is the wrapped transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(b"".join((held, data)))
        elif data.startswith(HEAD):
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def flush(self) -> None:
        """Write what is held now (the end of the turn it was written in)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
