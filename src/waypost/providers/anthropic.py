"""The Anthropic Messages API.

A same-format client gets the upstream's bytes as they came, but for the model name: the one it
asked for (an alias), in the body and in the stream's ``message_start``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from waypost.core.context import RequestContext
from waypost.core.errors import StreamInterrupted, UpstreamError
from waypost.core.events import MessageEnd, StreamEvent
from waypost.core.types import ChatRequest, ChatResponse
from waypost.providers.base import Deployment, same_format
from waypost.providers.http import HttpClient, json_object
from waypost.providers.streaming import END, SHOWN, Rewritten, read_stream
from waypost.wire.anthropic import messages as anthropic_messages
from waypost.wire.sse import Frame, SSEParser, encode_frame

NAME = "anthropic"
DEFAULT_VERSION = "2023-06-01"
# Fields of a Messages body that only generation takes: count_tokens answers 400 to them
# ("Extra inputs are not permitted").
GENERATION_ONLY_FIELDS = (
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "service_tier",
)


class _EventFrames:
    """Messages API stream frames: ``event: NAME`` + ``data: {...}`` until ``message_stop``.
    With ``model`` (a same-format client), ``message_start`` names that model."""

    __slots__ = ("_decoder", "_model")

    def __init__(self, model: str | None) -> None:
        self._decoder = anthropic_messages.StreamDecoder()
        self._model = model

    def feed(self, frame: Frame, out: list[StreamEvent]) -> int | Rewritten:
        event, data = frame
        obj = json_object(data)
        name = event.decode() if event is not None else str(obj.get("type", ""))
        events = self._decoder.feed(name, obj)
        out += events
        if events and type(events[-1]) is MessageEnd:
            return END
        if self._model and name == "message_start":
            message = obj.get("message")
            if isinstance(message, dict) and message.get("model") != self._model:
                message["model"] = self._model
                return Rewritten(encode_frame((event, orjson.dumps(obj))))
        return SHOWN

    def finish(self) -> list[StreamEvent]:
        raise StreamInterrupted(f"{NAME} upstream stream ended without message_stop", provider=NAME)


class AnthropicProvider:
    dialect = anthropic_messages.FORMAT

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    @staticmethod
    def _request(dep: Deployment, ctx: RequestContext, path: str = "/messages") -> tuple[str, dict[str, str]]:
        settings = dep.settings
        base = settings.resolved_base_url()
        url = base + (path if base.endswith("/v1") else "/v1" + path)
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

    @staticmethod
    def _body(req: ChatRequest, dep: Deployment, ctx: RequestContext, stream: bool) -> dict[str, Any]:
        body, ctx.dropped = anthropic_messages.encode_request(
            req, dep.upstream_model, stream=stream, default_max_tokens=dep.settings.default_max_tokens
        )
        return body

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> ChatResponse:
        url, headers = self._request(dep, ctx)
        # JSONPath transformations (docs/policy.md) apply to generation, not to token counts.
        body = self.http.outbound.body(dep, self._body(req, dep, ctx, False))
        decode = anthropic_messages.decode_response
        if not same_format(self, ctx.client_format, dep):
            result, _ = await self.http.post_json(url, body, headers, decode, dep=dep, provider=NAME)
            return result
        (result, answer), data = await self.http.post_json(
            url, body, headers, lambda answer: (decode(answer), answer), dep=dep, provider=NAME
        )
        # The client reads the body as it came, but for the model: the name it asked for.
        if req.model and answer.get("model") != req.model:
            answer["model"] = req.model
            data = orjson.dumps(answer)
        result.raw, result.raw_json = data, answer
        return result

    async def count_tokens(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> int:
        """The API's own count (``POST /v1/messages/count_tokens``): the Messages body without
        the fields only generation takes."""
        url, headers = self._request(dep, ctx, "/messages/count_tokens")
        body = self._body(req, dep, ctx, False)
        for name in GENERATION_ONLY_FIELDS:
            body.pop(name, None)
        tokens, _ = await self.http.post_json(url, body, headers, _input_tokens, dep=dep, provider=NAME)
        return tokens

    def stream(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
    ) -> AsyncIterator[list[StreamEvent]]:
        url, headers = self._request(dep, ctx)
        headers["accept"] = "text/event-stream"
        relay = same_format(self, ctx.client_format, dep)
        body = self.http.outbound.body(dep, self._body(req, dep, ctx, True))
        return read_stream(
            self.http.post(url, orjson.dumps(body), headers, provider=NAME, dep=dep),
            SSEParser(),
            lambda _headers: _EventFrames(req.model if relay else None),
            provider=NAME,
            relay=encode_frame if relay else None,
        )


def _input_tokens(answer: dict[str, Any]) -> int:
    tokens = answer.get("input_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise UpstreamError("anthropic upstream returned a token count without 'input_tokens'", provider=NAME)
    return tokens
