"""Pure ASGI middleware (no per-request task or body buffering)."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_VALID_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")


class RequestIdMiddleware:
    """Every response carries ``X-Request-ID``: the caller's, when it is sane, or a new one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value if _VALID_ID.match(value) else None
                break
        if rid is None:
            rid = uuid.uuid4().hex.encode()
        scope["request_id"] = rid.decode()
        header = (b"x-request-id", rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
