"""The one path every data-plane request takes (chat, messages, legacy completions, responses,
embeddings, token counts, /classify, /plan, /embed):

    request id -> authenticate -> read and parse the body -> the endpoint decodes it
    -> pipeline stages' ``before`` (look, change, answer or reject)
    -> the endpoint runs it (router, upstream; usage tapped from the answer or its stream)
    -> metering prices the usage into the answer -> the answer leaves
    -> access-log line -> stages' ``after`` (metering writes the audit row, budgets settle).

An endpoint supplies only ``decode`` (body -> ``ctx.req``; after an asynchronous ``prepare``
when it has one) and ``run`` (answer ``ctx``, sending with the ``send`` it is given, and
leaving ``ctx.usage`` set). Errors before the first byte reach the caller in the endpoint's
format; after it, the endpoint ends its stream with an error event.
These handlers are raw ASGI (``asgi_io``): they are the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.asgi_io import (
    ClientGone,
    DisconnectWatch,
    header_map,
    new_request_id,
    read_body,
    request_id,
    send_body,
)
from waypost.api.drain import resume_after_cut
from waypost.api.errors import error_parts
from waypost.api.formats import ClientFormat
from waypost.api.state import Container
from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest, GatewayError, Overloaded
from waypost.pipeline.body_log import KEPT as KEPT_BODIES
from waypost.pipeline.body_log import keeping
from waypost.pipeline.cache import STATUS_HEADER as CACHE_STATUS_HEADER
from waypost.pipeline.stage import Reply
from waypost.providers.base import same_format

log = logging.getLogger("waypost.request")

JSON = b"application/json"
# Client headers a provider of the caller's own dialect may receive. Credentials and
# hop-by-hop headers are never among them.
PASSTHROUGH_HEADERS = ("anthropic-beta", "anthropic-version")
# Milliseconds the gateway itself spent before the answer's first byte (docs/operations.md, "Metrics").
OVERHEAD_HEADER = "x-waypost-overhead-ms"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A data-plane route's own work: how its body decodes, and how it is answered."""

    name: str  # chat, messages, completions, responses, embeddings, count_tokens, classify, plan, embed
    fmt: ClientFormat  # the caller's wire format (errors are written in it)
    decode: Callable[[RequestContext, Container], None]  # sets ctx.req (BadRequest when invalid)
    run: Callable[[RequestContext, Container, Reply | None, Send], Awaitable[None]]
    format_name: str | None = None  # the client format providers see, when not ``fmt.name``
    # Asynchronous work before ``decode`` (reading what the request refers to: the Responses
    # API's stored conversation), after authentication; it may refuse the request.
    prepare: Callable[[RequestContext, Container], Awaitable[None]] | None = None


async def serve(container: Container, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
    headers = header_map(scope)
    client = scope.get("client")
    rid = request_id(headers)
    ctx = RequestContext(
        rid,
        endpoint.format_name or endpoint.fmt.name,
        endpoint.name,
        headers=headers,
        client_ip=client[0] if client else None,
        # A caller's X-Request-ID is echoed, but never the audit log's key: two requests sent
        # with one id are two rows.
        audit_id=new_request_id() if headers.get("x-request-id") == rid else rid,
    )
    if container.cache is not None:
        # Every answer says what the cache did (issue 11), a refusal before the cache stage ran
        # (credentials, rules, limits, budgets) included; the stage overwrites it.
        ctx.response_headers[CACHE_STATUS_HEADER] = "BYPASS"
    if container.tracing.enabled:
        container.tracing.begin(ctx)  # before anything logs or calls upstream
    metrics = container.metrics
    if metrics.enabled:
        metrics.in_flight += 1  # counted down by ``record`` in ``finish``
    drain = container.drain
    task = drain.track()  # cut, with an answer, if still running when the grace period ends
    try:
        if container.not_ready_reason is not None:
            # Readiness says 503 too; a caller that comes anyway gets the reason, not a failure
            # of a database whose tables are not there yet.
            raise Overloaded(f"Waypost is not ready yet ({container.not_ready_reason}); try again shortly.")
        ctx.principal = await container.authenticator.authenticate(headers)
        raw = await read_body(receive, headers, container.settings.server.max_body_bytes)
        try:
            ctx.body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"Request body is not valid JSON: {exc.msg} at position {exc.pos}.") from None
        if endpoint.prepare is not None:
            await endpoint.prepare(ctx, container)
        endpoint.decode(ctx, container)
        if ctx.stream and metrics.enabled:
            metrics.streams += 1
        ctx.passthrough_headers = {h: v for h in PASSTHROUGH_HEADERS if (v := headers.get(h))}
        with DisconnectWatch(receive, scope):
            reply = await container.pipeline.before(ctx)
            kept = ctx.state.get(KEPT_BODIES)  # logging.bodies: the answer's bytes, as sent
            await endpoint.run(ctx, container, reply, send if kept is None else keeping(send, kept))
        if not ctx.status:
            ctx.status = 200
    except GatewayError as err:
        ctx.status, ctx.error = err.status, err
        if ctx.first_byte_at is None:  # otherwise the endpoint ended its stream with the error
            await send_failure(send, endpoint.fmt, err, ctx)
    except ClientGone:
        ctx.status = 499
    except asyncio.CancelledError:
        if not drain.cutting:
            raise
        resume_after_cut()  # answered in its format, and its row written, not just dropped
        cut = drain.error()
        ctx.status, ctx.error = cut.status, cut
        if ctx.first_byte_at is None:
            await send_failure(send, endpoint.fmt, cut, ctx)
    except Exception:
        log.exception("request failed inside the gateway", extra={"request_id": ctx.request_id})
        failure = GatewayError("The request failed inside the gateway.")
        ctx.status, ctx.error = failure.status, failure
        if ctx.first_byte_at is None:
            await send_failure(send, endpoint.fmt, failure, ctx)
    finally:
        drain.untrack(task)
        await finish(container, ctx, scope)
        if ctx.trace is not None:
            container.tracing.end(ctx, scope["path"])


async def finish(container: Container, ctx: RequestContext, scope: Scope) -> None:
    """The request is over (answered, refused, failed or abandoned): its access-log line and
    the stages' ``after``. A request refused before it was understood (credentials, body size,
    JSON, fields) gets the access line alone: it reached no stage and costs nothing."""
    metrics = container.metrics
    if ctx.req is None:
        if ctx.error is not None:
            container.access_log.refused(ctx.request_id, scope["path"], ctx.error, ctx.started)
        if metrics.enabled:
            metrics.record(ctx, scope["path"], time.perf_counter())
        return
    if not ctx.status:  # cancelled from outside (server shutdown) before it finished
        ctx.status = 499
    ended = time.perf_counter()
    access_line(container, ctx)
    await container.pipeline.after(ctx)
    if metrics.enabled:  # after the stages: metering has priced what an abandoned request used
        # The route is one of the data plane's fixed paths (``app.Gateway``): never a raw one.
        metrics.record(ctx, scope["path"], ended)


async def send_failure(send: Send, fmt: ClientFormat, err: GatewayError, ctx: RequestContext) -> None:
    """``send_error`` for a request under way: with the gateway's own time so far."""
    ctx.response_headers[OVERHEAD_HEADER] = f"{ctx.own_time(time.perf_counter()) * 1000:.3f}"
    await send_error(send, fmt, err, ctx.request_id, ctx.response_headers)


def first_byte(ctx: RequestContext, headers: dict[str, str]) -> None:
    """The answer's head leaves now: note when, and say in ``X-Waypost-Overhead-Ms`` how long the
    gateway itself took until now (upstream attempts excluded; ``RequestContext.own_time``)."""
    headers[OVERHEAD_HEADER] = f"{ctx.first_byte(time.perf_counter()) * 1000:.3f}"


async def send_error(
    send: Send, fmt: ClientFormat, err: GatewayError, rid: str, extra: dict[str, str] | None = None
) -> None:
    """The error in the caller's format; ``extra``: the stages' response headers (the error's own
    win, e.g. its Retry-After)."""
    status, body, headers = error_parts(fmt, err)
    await send_body(send, status, body, JSON, {"x-request-id": rid, **(extra or {}), **headers})


def answer_headers(ctx: RequestContext) -> dict[str, str]:
    """The headers of an answer no upstream gave (a stage answered): the request id and the
    stages' own."""
    return {"x-request-id": ctx.request_id, **ctx.response_headers}


def notes(ctx: RequestContext) -> list[str]:
    """What could not be carried: the request's own notes (decoding, policy), then those of the
    encoding that served (never a failed attempt's). The decoder's notes are about the canonical
    model, so they do not apply when the body went to a same-format upstream as it was."""
    req = ctx.req
    own: list[str] = [] if req is None else (req.notes[ctx.decoder_notes :] if ctx.same_format else req.notes)
    dropped: tuple[str, ...] = ctx.served.dropped if ctx.served is not None else ()
    return list(dict.fromkeys([*own, *dropped]))  # each note once


def served_headers(ctx: RequestContext, container: Container, served: Any) -> dict[str, str]:
    """Record who served the request; return the response headers that say so."""
    ctx.served = served
    dep = served.deployment
    ctx.same_format = same_format(container.router.providers[dep.provider], ctx.client_format, dep)
    headers = {
        "x-request-id": ctx.request_id,
        "x-waypost-provider": dep.provider,
        "x-waypost-deployment": dep.name,
    }
    if served.attempts > 1:
        headers["x-waypost-attempts"] = str(served.attempts)
    if ctx.response_headers:
        headers.update(ctx.response_headers)
    dropped = notes(ctx)
    if dropped:
        # Header values must be printable ASCII (notes quote client-chosen keys and types, which
        # may hold CR/LF); the full notes are in the access log.
        text = "; ".join(dropped)[:1000]
        headers["x-waypost-dropped"] = "".join(c if " " <= c <= "~" else "?" for c in text)
    return headers


def access_line(container: Container, ctx: RequestContext) -> None:
    """The request's access-log line."""
    access = container.access_log
    if not access.enabled:
        return
    req = ctx.req
    assert req is not None
    err = ctx.error
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        "model": req.model,
        "stream": ctx.stream,
        "status": ctx.status,
        "duration_ms": ctx.latency_ms(time.perf_counter()),
    }
    served = ctx.served
    if served is not None:
        fields["provider"] = served.deployment.provider
        fields["deployment"] = served.deployment.name
        fields["attempts"] = served.attempts
    usage = ctx.usage
    if usage is not None:
        fields["input_tokens"] = usage.input_tokens
        fields["output_tokens"] = usage.output_tokens
        fields["cache_read_tokens"] = usage.cache_read_tokens
        fields["cache_write_tokens"] = usage.cache_write_tokens
        fields["usage_estimated"] = ctx.counted_with is not None
        if ctx.counted_with is not None:
            fields["usage_counted_with"] = ctx.counted_with
    if ctx.cost is not None:
        fields["cost_usd"] = ctx.cost.usd
    if ctx.cache_status is not None:
        fields["cache"] = ctx.cache_status
    if ctx.tags:
        fields["tags"] = list(ctx.tags)
    dropped = notes(ctx)
    if dropped:
        fields["dropped"] = dropped
    if err is not None:
        fields["error"] = type(err).__name__
        fields["detail"] = err.message
    if ctx.trace is not None:
        fields["trace_id"] = f"{ctx.trace.trace_id:032x}"
        fields["span_id"] = f"{ctx.trace.span_id:016x}"
    access.write(fields)
