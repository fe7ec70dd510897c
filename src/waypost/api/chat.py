"""The chat data plane, shared by ``/v1/chat/completions`` (OpenAI), ``/v1/messages``
(Anthropic) and ``/v1/completions`` (OpenAI legacy, see ``api.completions``): authenticate,
decode, route, and answer in the caller's own format.

These handlers are raw ASGI (see ``asgi_io``): they are the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.asgi_io import (
    ClientGone,
    DisconnectWatch,
    encode_headers,
    header_map,
    read_body,
    request_id,
    send_body,
)
from waypost.api.errors import error_parts
from waypost.api.formats import ClientFormat
from waypost.api.state import Container
from waypost.core.errors import BadRequest, GatewayError, UpstreamError
from waypost.core.events import (
    BlockStart,
    MessageEnd,
    MessageStart,
    RawFrame,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
)
from waypost.core.types import ChatRequest, EmbeddingRequest, Usage
from waypost.metering.usage_count import AnswerText, count_usage, needs_count
from waypost.providers.base import CallContext, Provider
from waypost.routing.router import Served
from waypost.security.principal import Principal

log = logging.getLogger("waypost.request")

# Client headers a provider of the caller's own dialect may receive. Credentials and
# hop-by-hop headers are never among them.
PASSTHROUGH_HEADERS = ("anthropic-beta", "anthropic-version")
JSON = b"application/json"
R = TypeVar("R", ChatRequest, EmbeddingRequest)


def speaks_natively(provider: Provider, fmt: ClientFormat) -> bool:
    """Whether the provider forwards and relays bodies of the caller's format as they are: its
    own dialect, or one of its ``native_formats`` (OpenAI-compatible: legacy completions)."""
    return provider.dialect == fmt.name or fmt.name in getattr(provider, "native_formats", ())


async def read_json(container: Container, headers: dict[str, str], receive: Receive) -> tuple[Principal, Any]:
    """Authenticate the caller, then read and parse the request body (errors as ``GatewayError``)."""
    principal = await container.authenticator.authenticate(headers)
    raw = await read_body(receive, headers, container.settings.server.max_body_bytes)
    try:
        return principal, orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc.msg} at position {exc.pos}.") from None


def with_default_model(body: Any, default: str | None) -> Any:
    """The body naming ``default`` when it names no model (``model`` absent or null), else as it
    came; with no default configured, such a body is a 400 naming the field."""
    if isinstance(body, dict) and body.get("model") is None:
        if default is None:
            raise BadRequest(
                "Missing required parameter: 'model' (this gateway has no default model).", param="model"
            )
        return {**body, "model": default}  # the client's body itself is never changed
    return body


@dataclass(slots=True)
class Call(Generic[R]):
    """One data-plane request's bookkeeping: what was asked, who served it, what to report."""

    container: Container
    rid: str
    req: R
    started: float
    decoder_notes: int  # how many of req.notes the decoder wrote (the rest come from policy)
    served: Served | None = None
    same_format: bool = False
    logged: bool = False
    counted_with: str | None = None  # the upstream gave no usage: what the gateway counted it with

    def notes(self) -> list[str]:
        """What could not be carried: the request's own notes (decoding, policy), then those of
        the encoding that served (never a failed attempt's). The decoder's notes are about the
        canonical model, so they do not apply when the body went to a same-format upstream as
        it was (the fast path)."""
        notes: list[str] = self.req.notes[self.decoder_notes :] if self.same_format else self.req.notes
        dropped: tuple[str, ...] = self.served.dropped if self.served is not None else ()
        return list(dict.fromkeys([*notes, *dropped]))  # each note once

    def serve(self, served: Served, fmt: ClientFormat) -> dict[str, str]:
        """Record who served the call; return the response headers that say so."""
        self.served = served
        self.same_format = speaks_natively(self.container.router.providers[served.deployment.provider], fmt)
        headers = {
            "x-request-id": self.rid,
            "x-waypost-provider": served.deployment.provider,
            "x-waypost-deployment": served.deployment.name,
        }
        if served.attempts > 1:
            headers["x-waypost-attempts"] = str(served.attempts)
        notes = self.notes()
        if notes:
            # Header values must be printable ASCII (notes quote client-chosen keys and types, which
            # may hold CR/LF); the full notes are in the access log.
            text = "; ".join(notes)[:1000]
            headers["x-waypost-dropped"] = "".join(c if " " <= c <= "~" else "?" for c in text)
        return headers

    def log(self, status: int, usage: Usage | None, error: GatewayError | None = None) -> None:
        """Write the access-log line; only the first call per request counts."""
        access = self.container.access_log
        if self.logged or not access.enabled:
            return
        self.logged = True
        req = self.req
        fields: dict[str, Any] = {
            "request_id": self.rid,
            "model": req.model,
            "stream": isinstance(req, ChatRequest) and req.stream,
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
            fields["usage_estimated"] = self.counted_with is not None
            if self.counted_with is not None:
                fields["usage_counted_with"] = self.counted_with
        notes = self.notes()
        if notes:
            fields["dropped"] = notes
        if error is not None:
            fields["error"] = type(error).__name__
            fields["detail"] = error.message
        access.write(fields)


async def count_missing_usage(call: Call[ChatRequest], usage: Usage, answer: AnswerText) -> Usage:
    """``usage`` with what the upstream left at zero counted by the gateway, for the model the
    upstream runs (``metering.usage_count``); notes on ``call`` that it was counted."""
    served = call.served
    model = served.deployment.upstream_model if served is not None else call.req.model
    counted = await count_usage(call.container.tokenizers, model, call.req, answer, usage)
    if counted is None:
        return usage
    call.counted_with = counted.counted_with
    return counted.usage


def with_usage(raw: bytes, usage: dict[str, Any]) -> bytes:
    """A relayed JSON body with ``usage`` as its ``usage`` member."""
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        return raw
    body["usage"] = usage
    return orjson.dumps(body)


async def send_error(send: Send, fmt: ClientFormat, err: GatewayError, rid: str) -> None:
    status, body, headers = error_parts(fmt, err)
    await send_body(send, status, body, JSON, {"x-request-id": rid, **headers})


async def handle_chat(
    container: Container, fmt: ClientFormat, scope: Scope, receive: Receive, send: Send
) -> None:
    """One chat request, from headers to the last byte of the answer."""
    started = time.perf_counter()
    headers = header_map(scope)
    rid = request_id(headers)
    call: Call[ChatRequest] | None = None
    try:
        principal, body = await read_json(container, headers, receive)
        req = fmt.decode_request(with_default_model(body, container.settings.routing.default_model))
        call = Call(container, rid, req, started, len(req.notes))
        passthrough = {h: v for h in PASSTHROUGH_HEADERS if (v := headers.get(h))}
        ctx = CallContext(rid, fmt.name, passthrough, principal)
        with DisconnectWatch(receive):
            if req.stream:
                first, rest, served = await container.router.stream(req, ctx)
                await stream_answer(send, first, rest, fmt, call, call.serve(served, fmt))
                return
            resp, served = await container.router.complete(req, ctx)
        out_headers = call.serve(served, fmt)
        if needs_count(resp.usage):
            resp.usage = await count_missing_usage(call, resp.usage, AnswerText.of(resp))
            if resp.raw is not None and call.counted_with is not None:
                resp.raw = with_usage(resp.raw, fmt.usage_object(resp.usage))
        if resp.raw is not None:
            content = resp.raw
        else:
            resp.created = resp.created or int(time.time())  # the wire modules have no clock
            content = orjson.dumps(fmt.encode_response(resp, req.model))
        call.log(200, resp.usage)
        await send_body(send, 200, content, JSON, out_headers)
    except GatewayError as err:
        if call is not None:
            call.log(err.status, None, err)
        else:  # refused before it was decoded: credentials, body size, JSON
            container.access_log.refused(rid, scope["path"], err, started)
        await send_error(send, fmt, err, rid)
    except ClientGone:
        if call is not None:
            call.log(499, None)
    except Exception:
        log.exception("request failed inside the gateway", extra={"request_id": rid})
        await send_error(send, fmt, GatewayError("The request failed inside the gateway."), rid)


async def stream_answer(
    send: Send,
    first: list[StreamEvent],
    rest: AsyncIterator[list[StreamEvent]],
    fmt: ClientFormat,
    call: Call[ChatRequest],
    headers: dict[str, str],
) -> None:
    """Relay (same format) or encode each event as it arrives. A failure after the first byte
    ends the stream with an error event in the caller's format, never a clean end."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
                *encode_headers(headers),
            ],
        }
    )
    encoder = fmt.stream_encoder(call.req)
    same_format = call.same_format
    usage = Usage()
    # What was said, kept (not counted) in case the upstream reports no usage.
    answer = AnswerText()
    start: MessageStart | None = None
    reported = False  # the upstream sent usage (a UsageUpdate)
    batch = first
    try:
        while True:
            out: list[bytes] = []
            for ev in batch:
                kind = type(ev)
                if kind is RawFrame:
                    if same_format:
                        out.append(cast(RawFrame, ev).data)
                    continue
                if kind is TextDelta:
                    answer.text.append(cast(TextDelta, ev).text)
                elif kind is ToolArgsDelta:
                    answer.tools.append(cast(ToolArgsDelta, ev).fragment)
                elif kind is UsageUpdate:
                    usage.merge(cast(UsageUpdate, ev).usage)
                    reported = True
                elif kind is ThinkingDelta:
                    answer.reasoning.append(cast(ThinkingDelta, ev).text)
                elif kind is MessageStart:
                    start = cast(MessageStart, ev)
                    usage.merge(start.usage)
                elif kind is BlockStart:
                    if tool_name := cast(BlockStart, ev).tool_name:
                        answer.tools.append(tool_name)
                elif kind is MessageEnd and needs_count(usage):
                    usage = await count_missing_usage(call, usage, answer)
                    # The encoders write the usage at the message's end, which follows.
                    if not same_format and (data := encoder.feed(UsageUpdate(usage))):
                        out.append(data)
                if not same_format:
                    data = encoder.feed(ev)
                    if data:
                        out.append(data)
            if out:  # what arrived together leaves together: one write per upstream read
                body = out[0] if len(out) == 1 else b"".join(out)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            try:
                batch = await anext(rest)
            except StopAsyncIteration:
                break
    except GatewayError as err:
        call.log(err.status, usage, err)
        await send({"type": "http.response.body", "body": encoder.error(err), "more_body": False})
        return
    except asyncio.CancelledError:
        call.log(499, usage)
        raise
    except Exception:
        log.exception("stream relay failed", extra={"request_id": call.rid})
        failure = UpstreamError("The stream failed inside the gateway.")
        call.log(500, usage, failure)
        await send({"type": "http.response.body", "body": encoder.error(failure), "more_body": False})
        return
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
    # An OpenAI-compatible upstream's relay leaves out [DONE] when no usage came (providers/
    # openai.py): it ends here, with the usage chunk the client asked for, then [DONE].
    relay_end = getattr(encoder, "relay_end", None) if same_format and not reported else None
    tail = relay_end(start, usage) if relay_end is not None else b""
    call.log(200, usage)
    await send({"type": "http.response.body", "body": tail, "more_body": False})
