"""One write, not two, for an answer's head and the body that follows it.

uvicorn writes a response's status line and headers when the application sends
``http.response.start``, and its body, separately, at ``http.response.body``: two system calls and
two TCP segments for every non-streamed answer, although the data plane sends both in the same
turn of the event loop. ``HeadWithBody`` wraps a connection's transport (``server.GatewayProtocol``)
so that a head is held until the next write, which carries it, or until the end of the loop's
turn, whichever comes first: a non-streamed answer leaves in one write; a stream's head leaves with
its first chunk, or a turn later. Nothing is ever reordered, dropped or held longer than that:
every write goes out after what was held, and closing writes what is held first.

``GatewayCycle`` is uvicorn's request-response cycle with a cheaper response head: uvicorn checks
each header with two regular expressions and lower-cases its name, one at a time (about half a
microsecond per header, and an answer has a dozen or more); here all names are checked at once,
and all values, by the same rules. A head these checks do not accept (a name with
capitals or bytes outside a token, an invalid value) or one naming ``transfer-encoding`` or
``connection`` is left to uvicorn's own path, which lower-cases, handles or refuses it as always.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

# uvicorn starts every response (and a "100 Continue") with this status-line prefix.
HEAD = b"HTTP/1.1 "
# What uvicorn accepts as it is: names of token characters (RFC 9110) in lower case, values
# without control characters but the tab. Checked over all names, and all values, joined.
_NAMES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]*")
_BAD_VALUES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_UVICORN_OWN = (b"transfer-encoding", b"connection")  # headers uvicorn's path acts on


def header_block(
    defaults: Sequence[tuple[bytes, bytes]], headers: Iterable[Sequence[bytes]]
) -> tuple[bytes, int | None] | None:
    """The header lines of a response head and its Content-Length (None when it has none), or
    None when uvicorn's own path must write it (see ``GatewayCycle``)."""
    pairs = [*defaults, *headers]
    if not pairs:
        return b"", None
    if (
        _NAMES.fullmatch(b"".join([pair[0] for pair in pairs])) is None
        or _BAD_VALUES.search(b"".join([pair[1] for pair in pairs])) is not None
    ):
        return None
    length: bytes | None = None
    for name, value in pairs:
        if name == b"content-length":
            if length is not None:
                return None
            length = value
        elif name in _UVICORN_OWN:
            return None
    block = b"\r\n".join(map(b": ".join, pairs)) + b"\r\n"
    return block, None if length is None else int(length)


class GatewayCycle(RequestResponseCycle):
    """uvicorn's cycle, whose response head is joined and checked at once (``header_block``).
    ``server.GatewayProtocol`` gives each request's cycle this class; it adds no state."""

    async def send(self, message: Any) -> None:
        if (
            self.response_started
            or message["type"] != "http.response.start"
            or self.access_log
            or self.disconnected
            or self.flow.write_paused
        ):
            await super().send(message)
            return
        head = header_block(self.default_headers, message.get("headers", ()))
        if head is None:
            await super().send(message)
            return
        block, length = head
        status = message["status"]
        self.response_started = True
        self.waiting_for_100_continue = False
        parts = [STATUS_LINE[status], block]
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        if length is not None:
            self.expected_content_length = length
            self.chunked_encoding = False
        elif self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True  # neither a length nor an encoding: uvicorn chunks it
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        self.transport.write(b"".join(parts))


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
