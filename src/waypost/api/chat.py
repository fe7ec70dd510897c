"""The chat endpoints: ``/v1/chat/completions`` (OpenAI), ``/v1/messages`` (Anthropic) and
``/v1/completions`` (OpenAI legacy, see ``api.completions``). The path around them (auth, the
pipeline's stages, the access log, the audit row) is ``api.dataplane``'s; here is what is their
own: decoding, routing, and answering in the caller's format, streamed or not, with the usage and
its cost in the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
from starlette.types import Send

from waypost.api.asgi_io import encode_headers, send_body
from waypost.api.dataplane import JSON, Endpoint, answer_headers, first_byte, served_headers
from waypost.api.drain import resume_after_cut
from waypost.api.formats import ClientFormat
from waypost.api.state import Container
from waypost.core.context import Cost, RequestContext
from waypost.core.errors import BadRequest, GatewayError, UpstreamError
from waypost.core.events import (
    BlockStart,
    Finish,
    MessageEnd,
    MessageStart,
    RawFrame,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
    response_events,
)
from waypost.core.types import ChatRequest, ChatResponse, Usage
from waypost.metering.estimate import estimate_tokens
from waypost.metering.usage_count import AnswerText, count_usage, needs_count
from waypost.pipeline.stage import Reply

log = logging.getLogger("waypost.request")

COST_HEADER = "x-waypost-cost-usd"
COST_FIELD = "cost_usd"  # the extra member of usage objects (docs/metering.md)


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


def chat_endpoint(name: str, fmt: ClientFormat) -> Endpoint:
    def decode(ctx: RequestContext, container: Container) -> None:
        req = fmt.decode_request(with_default_model(ctx.body, container.settings.routing.default_model))
        ctx.req, ctx.decoder_notes, ctx.stream = req, len(req.notes), req.stream

    async def run(ctx: RequestContext, container: Container, reply: Reply | None, send: Send) -> None:
        await answer_chat(ctx, container, fmt, reply, send)

    return Endpoint(name, fmt, decode, run)


async def count_missing_usage(
    ctx: RequestContext, container: Container, usage: Usage, answer: AnswerText, *, output_final: bool = True
) -> Usage:
    """``usage`` with what the upstream left at zero counted by the gateway, for the model the
    upstream runs (``metering.usage_count``); notes on ``ctx`` that it was counted.
    ``output_final=False``: the stream ended before the upstream's final figures (see
    ``count_usage``)."""
    req = ctx.req
    assert isinstance(req, ChatRequest)
    served = ctx.served
    model = served.deployment.upstream_model if served is not None else req.model
    counted = await count_usage(container.tokenizers, model, req, answer, usage, output_final=output_final)
    if counted is None:
        return usage
    ctx.counted_with = counted.counted_with
    return counted.usage


def with_usage(raw: bytes, usage: dict[str, Any] | None, cost: Cost | None) -> bytes:
    """A JSON body with ``usage`` as its ``usage`` member (when given) and the cost in it."""
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        return raw
    if usage is not None:
        body["usage"] = usage
    if cost is not None and isinstance(body.get("usage"), dict):
        body["usage"][COST_FIELD] = cost.reported_usd
    return orjson.dumps(body)


def _with_cost(resp: ChatResponse, cost: Cost) -> bytes:
    """The upstream's own body (``resp.raw``) with the cost in its usage object: from the body the
    provider parsed when it kept it (no second parse), else from the bytes."""
    body = resp.raw_json
    if body is None:
        assert resp.raw is not None
        return with_usage(resp.raw, None, cost)
    resp.raw_json = None  # edited here, once: no longer ``raw`` as it came
    usage = body.get("usage")
    if not isinstance(usage, dict):
        assert resp.raw is not None
        return resp.raw
    usage[COST_FIELD] = cost.reported_usd
    return orjson.dumps(body)


def cost_in_frames(data: bytes, cost: Cost) -> bytes:
    """SSE bytes with the cost added to each top-level ``usage`` object of their events (the
    final OpenAI chunk, Anthropic's ``message_delta``), or of the response an event carries (the
    Responses API's ``response.completed``); others are left byte for byte.

    Only the lines that name ``"usage"`` are looked at, found by searching the bytes: a relayed
    batch may hold a whole stream's events, and walking each of its lines cost more than the
    rest of the stream's metering."""
    at = data.find(b'"usage"')
    if at < 0:
        return data
    parts: list[bytes] = []
    done = 0  # data[:done] is in parts
    size = len(data)
    while at >= 0:
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        if end < 0:
            end = size
        line = _line_with_cost(data[start:end], cost)
        if line is not None:
            parts.append(data[done:start])
            parts.append(line)
            done = end
        at = data.find(b'"usage"', end)
    if not parts:
        return data
    parts.append(data[done:])
    return b"".join(parts)


def _line_with_cost(line: bytes, cost: Cost) -> bytes | None:
    """An SSE ``data:`` line with the cost in its event's usage object; None when it has none."""
    if not line.startswith(b"data:"):
        return None
    end = b"\r" if line.endswith(b"\r") else b""
    try:
        event = orjson.loads(line[5:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    usage = event.get("usage")
    if usage is None and isinstance(event.get("response"), dict):
        usage = event["response"].get("usage")
    if not isinstance(usage, dict):
        return None
    usage[COST_FIELD] = cost.reported_usd
    return b"data: " + orjson.dumps(event) + end


async def answer_chat(
    ctx: RequestContext, container: Container, fmt: ClientFormat, reply: Reply | None, send: Send
) -> None:
    req = ctx.req
    assert isinstance(req, ChatRequest)
    if reply is not None:  # a stage answered (e.g. the cache): no upstream, nothing billed
        assert isinstance(reply, ChatResponse)
        if req.stream:
            events = response_events(reply)

            async def nothing_more() -> AsyncIterator[list[StreamEvent]]:
                return
                yield []  # an async generator with no items

            await stream_answer(ctx, container, fmt, events, nothing_more(), answer_headers(ctx), send)
            return
        ctx.usage = reply.usage
        await _send_response(ctx, container, fmt, reply, answer_headers(ctx), send)
        return
    if req.stream:
        first, rest, served = await container.router.stream(req, ctx)
        await stream_answer(ctx, container, fmt, first, rest, served_headers(ctx, container, served), send)
        return
    resp, served = await container.router.complete(req, ctx)
    ctx.response_model, ctx.finish_reason = resp.model or None, resp.finish_reason
    headers = served_headers(ctx, container, served)
    counted = False
    if needs_count(resp.usage):
        resp.usage = await count_missing_usage(ctx, container, resp.usage, AnswerText.of(resp))
        counted = ctx.counted_with is not None
    container.metering.account(ctx, resp.usage)
    if ctx.answer_tap is not None:  # a stage keeps the answer (the cache)
        ctx.answer_tap.response(resp)
    if counted and resp.raw is not None:
        resp.raw, resp.raw_json = with_usage(resp.raw, fmt.usage_object(resp.usage), None), None
    await _send_response(ctx, container, fmt, resp, headers, send)


async def _send_response(
    ctx: RequestContext,
    container: Container,
    fmt: ClientFormat,
    resp: ChatResponse,
    headers: dict[str, str],
    send: Send,
) -> None:
    cost = ctx.cost if container.settings.metering.cost_header else None
    if resp.raw is not None:
        content = resp.raw if cost is None else _with_cost(resp, cost)
    else:
        resp.created = resp.created or int(time.time())  # the wire modules have no clock
        body = fmt.encode_response(resp, ctx)
        if cost is not None and isinstance(body.get("usage"), dict):
            body["usage"][COST_FIELD] = cost.reported_usd
        content = orjson.dumps(body)
    if cost is not None and cost.priced:
        headers[COST_HEADER] = f"{cost.usd:.6f}"
    if container.settings.audit.log_bodies:
        ctx.response_body = content
    first_byte(ctx, headers)
    await send_body(send, 200, content, JSON, headers)


async def stream_answer(
    ctx: RequestContext,
    container: Container,
    fmt: ClientFormat,
    first: list[StreamEvent],
    rest: AsyncIterator[list[StreamEvent]],
    headers: dict[str, str],
    send: Send,
) -> None:
    """Relay (same format) or encode each event as it arrives. A failure after the first byte
    ends the stream with an error event in the caller's format, never a clean end. The usage is
    tapped as it comes: the pipeline sees it (a budget may end the stream), and the final usage
    object carries the cost."""
    req = ctx.req
    assert isinstance(req, ChatRequest)
    first_byte(ctx, headers)
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
    metering = container.metering
    pipeline = container.pipeline
    # A stage's answer (a cache hit) uses nothing upstream: no budget or limit watches it.
    watch = pipeline.watches_streams and ctx.answered_by is None
    with_cost = container.settings.metering.cost_header
    encoder = fmt.stream_encoder(ctx)
    same_format = ctx.same_format
    usage = Usage()
    ctx.usage = usage
    # What was said, kept (not counted) in case the upstream reports no usage.
    answer = AnswerText()
    start: MessageStart | None = None
    reported = False  # the upstream sent usage (a UsageUpdate)
    accounted = False  # ctx.cost is the price of ``usage`` as it stands
    # While no usage comes, stages watching the stream see the output estimated from what was said.
    estimated_out = 0
    marks = answer.marks()
    batch = first
    tap = ctx.answer_tap  # a stage keeps the answer (the cache): it sees every batch
    try:
        while True:
            out: list[bytes] = []
            if tap is not None:
                tap.events(batch)
            priced = False  # this batch changed the usage: its usage objects carry the new cost
            for ev in batch:
                kind = type(ev)
                if kind is RawFrame:
                    if same_format:
                        data = cast(RawFrame, ev).data
                        out.append(
                            cost_in_frames(data, ctx.cost) if with_cost and priced and ctx.cost else data
                        )
                    continue
                if kind is TextDelta:
                    answer.text.append(cast(TextDelta, ev).text)
                elif kind is ToolArgsDelta:
                    answer.tools.append(cast(ToolArgsDelta, ev).fragment)
                elif kind is UsageUpdate:
                    usage.merge(cast(UsageUpdate, ev).usage)
                    reported = priced = accounted = True
                    metering.account(ctx, usage)
                    if watch and (stop := pipeline.progress(ctx, usage)) is not None:
                        raise stop
                elif kind is ThinkingDelta:
                    answer.reasoning.append(cast(ThinkingDelta, ev).text)
                elif kind is MessageStart:
                    start = cast(MessageStart, ev)
                    usage.merge(start.usage)
                    accounted = False
                    ctx.response_model = start.model or None
                elif kind is BlockStart:
                    if tool_name := cast(BlockStart, ev).tool_name:
                        answer.tools.append(tool_name)
                elif kind is MessageEnd:
                    if needs_count(usage):
                        usage = await count_missing_usage(ctx, container, usage, answer)
                        accounted = False
                        # The encoders write the usage at the message's end, which follows.
                        if not same_format and (data := encoder.feed(UsageUpdate(usage))):
                            out.append(data)
                    if not accounted:  # priced already when the usage came (the usual stream)
                        metering.account(ctx, usage)
                        accounted = True
                    priced = True
                elif kind is Finish:
                    ctx.finish_reason = cast(Finish, ev).reason
                if not same_format:
                    data = encoder.feed(ev)
                    if data:
                        out.append(
                            cost_in_frames(data, ctx.cost) if with_cost and priced and ctx.cost else data
                        )
            if watch and not priced:  # no usage came with this batch: the stages see an estimate
                said = estimate_tokens(answer.pieces_since(marks))
                if said:
                    estimated_out += said
                    marks = answer.marks()
                    snapshot = Usage(
                        input_tokens=usage.input_tokens or ctx.prompt_estimate,
                        output_tokens=max(usage.output_tokens, estimated_out),
                    )
                    if (stop := pipeline.progress(ctx, snapshot)) is not None:
                        raise stop
            if out:  # what arrived together leaves together: one write per upstream read
                body = out[0] if len(out) == 1 else b"".join(out)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            try:
                batch = await anext(rest)
            except StopAsyncIteration:
                break
    except GatewayError as err:
        ctx.status, ctx.error = err.status, err
        if needs_count(usage) or not reported:  # billed for what was produced until the end
            ctx.usage = await _counted_quietly(ctx, container, usage, answer, reported)
        await send({"type": "http.response.body", "body": encoder.error(err), "more_body": False})
        return
    except asyncio.CancelledError:
        ctx.status = 499
        cut = container.drain.error() if container.drain.cutting else None
        if cut is not None:  # the grace period ended: the stream ends with an error event
            resume_after_cut()
            ctx.status, ctx.error = cut.status, cut
        if needs_count(usage) or not reported:  # billed for what was produced until it was cancelled
            ctx.usage = await _counted_quietly(ctx, container, usage, answer, reported)
        if cut is None:
            raise
        await send({"type": "http.response.body", "body": encoder.error(cut), "more_body": False})
        return
    except Exception:
        log.exception("stream relay failed", extra={"request_id": ctx.request_id})
        failure = UpstreamError("The stream failed inside the gateway.")
        ctx.status, ctx.error = 500, failure
        await send({"type": "http.response.body", "body": encoder.error(failure), "more_body": False})
        return
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
    # An OpenAI-compatible upstream's relay leaves out [DONE] when no usage came (providers/
    # openai.py): it ends here, with the usage chunk the client asked for, then [DONE].
    relay_end = getattr(encoder, "relay_end", None) if same_format and not reported else None
    tail = relay_end(start, usage) if relay_end is not None else b""
    if tail and with_cost and ctx.cost is not None:
        tail = cost_in_frames(tail, ctx.cost)
    ctx.status = 200
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def _counted_quietly(
    ctx: RequestContext, container: Container, usage: Usage, answer: AnswerText, reported: bool
) -> Usage:
    """The usage of a stream cut short, counted where the upstream gave none (or only its opening
    figures: ``reported`` is whether a usage update came); never raises (the request may be
    being cancelled)."""
    try:
        return await count_missing_usage(ctx, container, usage, answer, output_final=reported)
    except Exception:
        log.exception("could not count a cut-short stream's usage", extra={"request_id": ctx.request_id})
        return usage
