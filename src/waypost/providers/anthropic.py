"""The Anthropic Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from waypost.core.errors import GatewayError, StreamInterrupted
from waypost.core.events import MessageEnd, RawFrame, StreamEvent
from waypost.core.types import ChatRequest, ChatResponse
from waypost.providers.base import CallContext, Deployment
from waypost.providers.http import HttpClient, json_body
from waypost.wire import anthropic_messages
from waypost.wire.sse import SSEParser, encode_sse

NAME = "anthropic"
DEFAULT_VERSION = "2023-06-01"


class AnthropicProvider:
    dialect = anthropic_messages.FORMAT

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    @staticmethod
    def _request(dep: Deployment, ctx: CallContext) -> tuple[str, dict[str, str]]:
        settings = dep.settings
        base = settings.resolved_base_url()
        url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": ctx.passthrough_headers.get("anthropic-version", DEFAULT_VERSION),
        }
        beta = ctx.passthrough_headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        headers.update(settings.headers)
        return url, headers

    def _body(self, req: ChatRequest, dep: Deployment, stream: bool) -> bytes:
        return orjson.dumps(
            anthropic_messages.encode_request(
                req, dep.upstream_model, stream=stream, default_max_tokens=dep.settings.default_max_tokens
            )
        )

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        url, headers = self._request(dep, ctx)
        settings = dep.settings
        async with self.http.post(
            url,
            self._body(req, dep, False),
            headers,
            timeouts=settings.timeouts,
            verify_tls=settings.verify_tls,
            provider=NAME,
            model=dep.name,
        ) as resp:
            data = await resp.read()
        result = anthropic_messages.decode_response(json_body(data, NAME))
        if ctx.client_format == self.dialect:
            result.raw = data
        return result

    async def stream(
        self, req: ChatRequest, dep: Deployment, ctx: CallContext
    ) -> AsyncIterator[list[StreamEvent]]:
        url, headers = self._request(dep, ctx)
        headers["accept"] = "text/event-stream"
        settings = dep.settings
        relay = ctx.client_format == self.dialect
        decoder = anthropic_messages.StreamDecoder()
        parser = SSEParser()
        async with self.http.post(
            url,
            self._body(req, dep, True),
            headers,
            timeouts=settings.timeouts,
            verify_tls=settings.verify_tls,
            provider=NAME,
            model=dep.name,
        ) as resp:
            while chunk := await resp.read_chunk():
                frames, raw = parser.feed_frames(chunk)
                if not frames:
                    continue
                batch: list[StreamEvent] = []
                ended = False
                done = 0  # frames fully decoded
                try:
                    for event, data in frames:
                        obj = _event_object(data)
                        name = event.decode() if event is not None else str(obj.get("type", ""))
                        for ev in decoder.feed(name, obj):
                            ended = ended or isinstance(ev, MessageEnd)
                            batch.append(ev)
                        done += 1
                        if ended:
                            break
                except GatewayError:
                    # What arrived before the failure still reaches the client, then the error.
                    if batch:
                        if relay:
                            batch.append(RawFrame(b"".join(_frame(e, d) for e, d in frames[:done])))
                        yield batch
                    raise
                if relay:
                    batch.append(RawFrame(raw))
                yield batch
                if ended:
                    return
        decoder.finish()
        raise StreamInterrupted("anthropic upstream stream ended without message_stop", provider=NAME)


def _event_object(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise StreamInterrupted("anthropic upstream sent an event that is not JSON", provider=NAME) from None
    if not isinstance(obj, dict):
        raise StreamInterrupted("anthropic upstream sent an event that is not an object", provider=NAME)
    return obj


def _frame(event: bytes | None, data: bytes) -> bytes:
    return encode_sse(data, event.decode() if event is not None else None)
