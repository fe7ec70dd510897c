"""HTTP/1.1 over a bare socket, for what no HTTP client sends: bodies that stop short, headers
that trickle or never end, malformed request lines."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Generous: a server that should close the connection and does not fails the test here, not by hanging.
CLOSE_WAIT = 30.0
CHAT = b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}'


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> RawResponse:
        """The next response on the connection (its body by Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), CLOSE_WAIT)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), CLOSE_WAIT)
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (within ``CLOSE_WAIT``) sending nothing more."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), CLOSE_WAIT)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return rest == b""

    def close(self) -> None:
        self.writer.close()


def request_head(method: str, path: str, *headers: str) -> bytes:
    """A request line and headers, ending with the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")
