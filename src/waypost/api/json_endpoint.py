"""The skeleton every non-streamed JSON data-plane endpoint shares with the chat endpoints:
request id, authentication, the body limit, JSON parsing, cancellation on client disconnect,
errors in the caller's format, and one access-log line.

An endpoint supplies only its work: ``body -> (response bytes, response headers, usage)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from waypost.api.asgi_io import ClientGone, DisconnectWatch, header_map, request_id, send_body
from waypost.api.chat import JSON, Call, read_json, send_error
from waypost.api.formats import ClientFormat
from waypost.api.state import Container
from waypost.core.errors import GatewayError
from waypost.core.types import Usage
from waypost.security.principal import Principal

log = logging.getLogger("waypost.request")


@dataclass(slots=True)
class Exchange:
    """One request as an endpoint's work sees it. The work sets ``call`` once it has decoded
    the request, so the access log can say what was asked and who served it."""

    container: Container
    rid: str
    headers: dict[str, str]
    principal: Principal
    body: Any
    started: float
    call: Call[Any] | None = None


@dataclass(slots=True)
class Answer:
    content: bytes
    headers: dict[str, str]
    usage: Usage | None = None


Work = Callable[[Exchange], Awaitable[Answer]]


async def serve_json(
    container: Container, fmt: ClientFormat, work: Work, scope: Scope, receive: Receive, send: Send
) -> None:
    started = time.perf_counter()
    headers = header_map(scope)
    rid = request_id(headers)
    exchange: Exchange | None = None
    try:
        principal, body = await read_json(container, headers, receive)
        exchange = Exchange(container, rid, headers, principal, body, started)
        with DisconnectWatch(receive):
            answer = await work(exchange)
        if exchange.call is not None:
            exchange.call.log(200, answer.usage)
        await send_body(send, 200, answer.content, JSON, {"x-request-id": rid, **answer.headers})
    except GatewayError as err:
        if exchange is not None and exchange.call is not None:
            exchange.call.log(err.status, None, err)
        else:  # refused before it was decoded: credentials, body size, JSON, fields
            container.access_log.refused(rid, scope["path"], err, started)
        await send_error(send, fmt, err, rid)
    except ClientGone:
        if exchange is not None and exchange.call is not None:
            exchange.call.log(499, None)
    except Exception:
        log.exception("request failed inside the gateway", extra={"request_id": rid})
        await send_error(send, fmt, GatewayError("The request failed inside the gateway."), rid)
