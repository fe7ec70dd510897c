"""A loopback TCP proxy that can be severed: a database outage made of a real broken connection.

``sever()`` closes every connection through it, and while severed it accepts new ones only to
close them at once (the client sees its connection reset, as when a database or the network in
front of it goes away); ``restore()`` forwards again. ``mute()`` is the nastier failure: requests still reach the
server, which acts on them, but its answers are dropped (a timeout after the fact), until
``restore()``. It listens on the same port throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.severed = False
        self.muted = False  # answers from the target are dropped
        self.connections = 0  # accepted and forwarded, since start
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.sever()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            # Every connection is aborted above; a bound, so that a test fails rather than hangs.
            await asyncio.wait_for(self._server.wait_closed(), 10)

    def sever(self) -> None:
        """Break every connection through the proxy and refuse new ones until ``restore()``."""
        self.severed = True
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()

    def mute(self) -> None:
        """Keep forwarding requests to the target, drop its answers (until ``restore()``)."""
        self.muted = True

    def restore(self) -> None:
        self.severed = False
        self.muted = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.severed:
            _abort(writer)
            return
        self._writers.add(writer)  # severed from here on, whatever this coroutine is waiting for
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._writers.discard(writer)
            _abort(writer)
            return
        if self.severed or writer.transport.is_closing():
            for w in (writer, up_writer):
                self._writers.discard(w)
                _abort(w)
            return
        self.connections += 1
        self._writers.add(up_writer)
        pipes = {
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer, answers=True)),
        }
        self._pipes.update(pipes)
        # Either side ending (or the proxy severing) ends both: no half-open connection stays.
        _, waiting = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            self._writers.discard(w)
            _abort(w)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool = False
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if self.severed:
                    return
                if answers and self.muted:
                    continue
                writer.write(data)
                await writer.drain()


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()  # a reset, not a polite close: the client's next read or write fails


@asynccontextmanager
async def tcp_proxy(host: str, port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
