"""The chat data plane, shared by ``/v1/chat/completions`` (OpenAI) and ``/v1/messages``
(Anthropic): authenticate, decode, route, and answer in the caller's own format."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar, cast

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive

from waypost.api.body import read_json
from waypost.api.errors import error_response
from waypost.api.formats import ANTHROPIC, OPENAI, ClientFormat
from waypost.api.state import Container, request_id
from waypost.core.errors import GatewayError, UpstreamError
from waypost.core.events import MessageStart, RawFrame, StreamEvent, UsageUpdate
from waypost.core.types import ChatRequest, Usage
from waypost.providers.base import CallContext
from waypost.routing.router import Served

log = logging.getLogger("waypost.request")
T = TypeVar("T")

# Client headers a provider of the caller's own dialect may receive. Credentials and
# hop-by-hop headers are never among them.
PASSTHROUGH_HEADERS = ("anthropic-beta", "anthropic-version")


class ClientGone(Exception):
    """The caller disconnected before the answer was ready."""


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it the moment the client disconnects."""
    task = asyncio.current_task()
    assert task is not None
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if disconnected:
            task.uncancel()
            raise ClientGone from None
        raise
    finally:
        watcher.cancel()


def served_headers(served: Served, req: ChatRequest) -> dict[str, str]:
    headers = {
        "x-waypost-provider": served.deployment.provider,
        "x-waypost-deployment": served.deployment.name,
    }
    if served.attempts > 1:
        headers["x-waypost-attempts"] = str(served.attempts)
    if req.notes:
        # Header values must be ASCII; the full notes are in the request log.
        headers["x-waypost-dropped"] = "; ".join(req.notes).encode("ascii", "replace").decode()[:1000]
    return headers


def log_request(
    rid: str,
    req: ChatRequest,
    served: Served | None,
    status: int,
    started: float,
    usage: Usage | None,
    *,
    error: GatewayError | None = None,
) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "request_id": rid,
        "model": req.model,
        "stream": req.stream,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if served is not None:
        fields["provider"] = served.deployment.provider
        fields["deployment"] = served.deployment.name
        fields["attempts"] = served.attempts
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens
        fields["output_tokens"] = usage.output_tokens
        fields["cache_read_tokens"] = usage.cache_read_tokens
        fields["cache_write_tokens"] = usage.cache_write_tokens
    if req.notes:
        fields["dropped"] = req.notes
    if error is not None:
        fields["error"] = type(error).__name__
        fields["detail"] = error.message
    log.info("request finished", extra=fields)


async def handle_chat(request: Request, fmt: ClientFormat) -> Response:
    container: Container = request.app.state.container
    rid = request_id(request)
    started = time.perf_counter()
    req: ChatRequest | None = None
    try:
        container.auth.check(request.headers)
        body = await read_json(request, container.settings.server.max_body_bytes)
        req = fmt.decode_request(body)
        ctx = CallContext(
            rid,
            fmt.name,
            {h: v for h in PASSTHROUGH_HEADERS if (v := request.headers.get(h))},
        )
        if req.stream:
            events, served = await until_disconnect(request.receive, container.router.stream(req, ctx))
            same_format = container.router.providers[served.deployment.provider].dialect == fmt.name
            return StreamingResponse(
                relay(events, fmt, req, served, same_format, rid, started),
                media_type="text/event-stream",
                headers={
                    "cache-control": "no-cache",
                    "x-accel-buffering": "no",
                    **served_headers(served, req),
                },
            )
        resp, served = await until_disconnect(request.receive, container.router.complete(req, ctx))
        content = resp.raw if resp.raw is not None else orjson.dumps(fmt.encode_response(resp, req.model))
        log_request(rid, req, served, 200, started, resp.usage)
        return Response(content, media_type="application/json", headers=served_headers(served, req))
    except GatewayError as err:
        if req is not None:
            log_request(rid, req, None, err.status, started, None, error=err)
        return error_response(fmt, err)
    except ClientGone:
        if req is not None:
            log_request(rid, req, None, 499, started, None)
        return Response(status_code=499)
    except Exception:
        log.exception("request failed inside the gateway", extra={"request_id": rid})
        return error_response(fmt, GatewayError("The request failed inside the gateway."))


async def relay(
    events: AsyncIterator[StreamEvent],
    fmt: ClientFormat,
    req: ChatRequest,
    served: Served,
    same_format: bool,
    rid: str,
    started: float,
) -> AsyncIterator[bytes]:
    """Encode (or relay, for a same-format upstream) each event as it arrives. A failure after
    the first byte ends the stream with an error event in the caller's format."""
    encoder = fmt.stream_encoder(req)
    usage = Usage()
    status = 200
    try:
        async for ev in events:
            kind = type(ev)
            if kind is RawFrame:
                if same_format:
                    yield cast(RawFrame, ev).data
                continue
            if kind is UsageUpdate or kind is MessageStart:
                usage.merge(cast(UsageUpdate, ev).usage)
            if not same_format:
                out = encoder.feed(ev)
                if out:
                    yield out
    except GatewayError as err:
        status = err.status
        log_request(rid, req, served, status, started, usage, error=err)
        yield encoder.error(err)
        return
    except asyncio.CancelledError:
        log_request(rid, req, served, 499, started, usage)
        raise
    except Exception:
        log.exception("stream relay failed", extra={"request_id": rid})
        yield encoder.error(UpstreamError("The stream failed inside the gateway."))
        return
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    log_request(rid, req, served, status, started, usage)


async def chat_completions(request: Request) -> Response:
    return await handle_chat(request, OPENAI)


async def messages(request: Request) -> Response:
    return await handle_chat(request, ANTHROPIC)
