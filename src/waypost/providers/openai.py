"""Any OpenAI-compatible server (OpenAI, Groq, Together, DeepSeek, Mistral, vLLM, llama.cpp, ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from waypost.core.errors import GatewayError, StreamInterrupted
from waypost.core.events import RawFrame, StreamEvent
from waypost.core.types import ChatRequest, ChatResponse
from waypost.providers.base import CallContext, Deployment
from waypost.providers.http import HttpClient, json_body
from waypost.wire import openai_chat
from waypost.wire.sse import SSEParser, encode_sse

NAME = "openai"


class OpenAIProvider:
    dialect = openai_chat.FORMAT

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    @staticmethod
    def _request(dep: Deployment) -> tuple[str, dict[str, str]]:
        settings = dep.settings
        headers = {"content-type": "application/json", "accept": "application/json"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        headers.update(settings.headers)
        return settings.resolved_base_url() + "/chat/completions", headers

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        url, headers = self._request(dep)
        body = orjson.dumps(openai_chat.encode_request(req, dep.upstream_model, stream=False))
        settings = dep.settings
        async with self.http.post(
            url,
            body,
            headers,
            timeouts=settings.timeouts,
            verify_tls=settings.verify_tls,
            provider=NAME,
            model=dep.name,
        ) as resp:
            data = await resp.read()
        result = openai_chat.decode_response(json_body(data, NAME))
        if ctx.client_format == self.dialect:
            result.raw = data
        return result

    async def stream(
        self, req: ChatRequest, dep: Deployment, ctx: CallContext
    ) -> AsyncIterator[list[StreamEvent]]:
        url, headers = self._request(dep)
        headers["accept"] = "text/event-stream"
        body = orjson.dumps(openai_chat.encode_request(req, dep.upstream_model, stream=True))
        settings = dep.settings
        relay = ctx.client_format == self.dialect
        # We always ask for the usage chunk (metering needs it); hide it if the client did not ask.
        hide_usage = not req.include_usage
        decoder = openai_chat.StreamDecoder()
        parser = SSEParser()
        async with self.http.post(
            url,
            body,
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
                kept: list[bytes] = []  # the frames the client may see
                hidden = done = False
                try:
                    for _, data in frames:
                        if data == b"[DONE]":
                            batch += decoder.finish()
                            kept.append(data)
                            done = True
                            break
                        obj = _chunk_object(data)
                        batch += decoder.feed(obj)
                        if hide_usage and not obj.get("choices") and obj.get("usage"):
                            hidden = True
                        else:
                            kept.append(data)
                except GatewayError:
                    # What arrived before the failure still reaches the client, then the error.
                    if batch:
                        if relay:
                            batch.append(RawFrame(b"".join(encode_sse(d) for d in kept)))
                        yield batch
                    raise
                if relay:
                    batch.append(RawFrame(b"".join(encode_sse(d) for d in kept) if hidden else raw))
                yield batch
                if done:
                    return
        raise StreamInterrupted("openai upstream stream ended without [DONE]", provider=NAME)


def _chunk_object(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise StreamInterrupted(
            "openai upstream sent a stream chunk that is not JSON", provider=NAME
        ) from None
    if not isinstance(obj, dict):
        raise StreamInterrupted("openai upstream sent a stream chunk that is not an object", provider=NAME)
    return obj
