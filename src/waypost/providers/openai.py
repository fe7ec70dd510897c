"""Any OpenAI-compatible server (OpenAI, Groq, Together, DeepSeek, Mistral, vLLM, llama.cpp, ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from waypost.core.errors import StreamInterrupted
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

    async def stream(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> AsyncIterator[StreamEvent]:
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
            async for chunk in resp.chunks():
                for sse in parser.feed(chunk):
                    if sse.data == "[DONE]":
                        for ev in decoder.finish():
                            yield ev
                        if relay:
                            yield RawFrame(b"data: [DONE]\n\n")
                        return
                    try:
                        obj = orjson.loads(sse.data)
                    except orjson.JSONDecodeError:
                        raise StreamInterrupted(
                            "openai upstream sent a stream chunk that is not JSON"
                        ) from None
                    if not isinstance(obj, dict):
                        raise StreamInterrupted("openai upstream sent a stream chunk that is not an object")
                    for ev in decoder.feed(obj):
                        yield ev
                    if relay and not (hide_usage and not obj.get("choices") and obj.get("usage")):
                        yield RawFrame(encode_sse(sse.data.encode()))
        raise StreamInterrupted("openai upstream stream ended without [DONE]", provider=NAME)
