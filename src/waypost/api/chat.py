"""The chat data plane, shared by ``/v1/chat/completions`` (OpenAI) and ``/v1/messages``
(Anthropic): authenticate, decode, route, and answer in the caller's own format."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
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


@dataclass(slots=True)
class Call:
    """One data-plane request's bookkeeping: what was asked, who served it, what to report."""

    rid: str
    req: ChatRequest
    started: float
    decoder_notes: int  # how many of req.notes the decoder wrote (the rest come from encoding)
    served: Served | None = None
    same_format: bool = False

    def notes(self) -> list[str]:
        """What could not be carried. The decoder's notes are about the canonical model, so they
        do not apply when the body went to a same-format upstream as it was (the fast path)."""
        notes = self.req.notes[self.decoder_notes :] if self.same_format else self.req.notes
        return list(dict.fromkeys(notes))  # retries and fallbacks re-encode: keep each note once

    def serve(self, served: Served, dialect: str, fmt: ClientFormat) -> dict[str, str]:
        """Record who served the call; return the response headers that say so."""
        self.served = served
        self.same_format = dialect == fmt.name
        headers = {
            "x-waypost-provider": served.deployment.provider,
            "x-waypost-deployment": served.deployment.name,
        }
        if served.attempts > 1:
            headers["x-waypost-attempts"] = str(served.attempts)
        notes = self.notes()
        if notes:
            # Header values must be ASCII; the full notes are in the request log.
            headers["x-waypost-dropped"] = "; ".join(notes).encode("ascii", "replace").decode()[:1000]
        return headers

    def log(self, status: int, usage: Usage | None, error: GatewayError | None = None) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        req = self.req
        fields: dict[str, object] = {
            "request_id": self.rid,
            "model": req.model,
            "stream": req.stream,
            "status": status,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
        }
        if self.served is not None:
            fields["provider"] = self.served.deployment.provider
            fields["deployment"] = self.served.deployment.name
            fields["attempts"] = self.served.attempts
        if usage is not None:
            fields["input_tokens"] = usage.input_tokens
            fields["output_tokens"] = usage.output_tokens
            fields["cache_read_tokens"] = usage.cache_read_tokens
            fields["cache_write_tokens"] = usage.cache_write_tokens
        notes = self.notes()
        if notes:
            fields["dropped"] = notes
        if error is not None:
            fields["error"] = type(error).__name__
            fields["detail"] = error.message
        log.info("request finished", extra=fields)


async def handle_chat(request: Request, fmt: ClientFormat) -> Response:
    container: Container = request.app.state.container
    rid = request_id(request)
    started = time.perf_counter()
    call: Call | None = None
    try:
        container.auth.check(request.headers)
        body = await read_json(request, container.settings.server.max_body_bytes)
        req = fmt.decode_request(body)
        call = Call(rid, req, started, len(req.notes))
        ctx = CallContext(rid, fmt.name, {h: v for h in PASSTHROUGH_HEADERS if (v := request.headers.get(h))})
        providers = container.router.providers
        if req.stream:
            events, served = await until_disconnect(request.receive, container.router.stream(req, ctx))
            headers = call.serve(served, providers[served.deployment.provider].dialect, fmt)
            return StreamingResponse(
                relay(events, fmt, call),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no", **headers},
            )
        resp, served = await until_disconnect(request.receive, container.router.complete(req, ctx))
        headers = call.serve(served, providers[served.deployment.provider].dialect, fmt)
        if resp.raw is not None:
            content = resp.raw
        else:
            resp.created = resp.created or int(time.time())  # the wire modules have no clock
            content = orjson.dumps(fmt.encode_response(resp, req.model))
        call.log(200, resp.usage)
        return Response(content, media_type="application/json", headers=headers)
    except GatewayError as err:
        if call is not None:
            call.log(err.status, None, err)
        return error_response(fmt, err)
    except ClientGone:
        if call is not None:
            call.log(499, None)
        return Response(status_code=499)
    except Exception:
        log.exception("request failed inside the gateway", extra={"request_id": rid})
        return error_response(fmt, GatewayError("The request failed inside the gateway."))


async def relay(events: AsyncIterator[StreamEvent], fmt: ClientFormat, call: Call) -> AsyncIterator[bytes]:
    """Encode (or relay, for a same-format upstream) each event as it arrives. A failure after
    the first byte ends the stream with an error event in the caller's format."""
    encoder = fmt.stream_encoder(call.req)
    same_format = call.same_format
    usage = Usage()
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
        call.log(err.status, usage, err)
        yield encoder.error(err)
        return
    except asyncio.CancelledError:
        call.log(499, usage)
        raise
    except Exception:
        log.exception("stream relay failed", extra={"request_id": call.rid})
        yield encoder.error(UpstreamError("The stream failed inside the gateway."))
        return
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    call.log(200, usage)


async def chat_completions(request: Request) -> Response:
    return await handle_chat(request, OPENAI)


async def messages(request: Request) -> Response:
    return await handle_chat(request, ANTHROPIC)
