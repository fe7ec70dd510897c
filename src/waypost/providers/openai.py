"""Any OpenAI-compatible server (OpenAI, Groq, Together, DeepSeek, Mistral, vLLM, llama.cpp, ...).

Chat Completions, Embeddings (``embed``) and the legacy Completions API: a request decoded from
a client's ``/v1/completions`` body (``source_format`` of ``openai_completions``) goes to the
upstream's own ``/completions``, not through chat.

Subclasses for servers with other URLs or credentials (Azure) override ``_url`` and ``_headers``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson

from waypost.core.errors import GatewayError, StreamInterrupted, UpstreamError
from waypost.core.events import RawFrame, StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers.base import CallContext, Deployment
from waypost.providers.http import HttpClient, json_body
from waypost.wire import openai_chat, openai_completions, openai_embeddings
from waypost.wire.sse import SSEParser, encode_sse

NAME = "openai"
CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"
EMBEDDINGS_PATH = "/embeddings"


class _ChunkDecoder(Protocol):
    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]: ...


class OpenAIProvider:
    dialect = openai_chat.FORMAT
    # Client formats besides ``dialect`` whose bodies this provider forwards and relays as they are.
    native_formats = (openai_completions.FORMAT,)
    provider_name = NAME  # how upstream failures name the provider (subclasses: their own)

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def _url(self, dep: Deployment, path: str) -> str:
        """The URL of one operation; ``path`` is ``CHAT_PATH``, ``COMPLETIONS_PATH`` or ``EMBEDDINGS_PATH``."""
        return dep.settings.resolved_base_url() + path

    def _headers(self, dep: Deployment) -> dict[str, str]:
        settings = dep.settings
        headers = {"content-type": "application/json", "accept": "application/json"}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        headers.update(settings.headers)
        return headers

    async def _post_json(self, dep: Deployment, path: str, body: dict[str, Any]) -> bytes:
        async with self.http.post(
            self._url(dep, path),
            orjson.dumps(body),
            self._headers(dep),
            provider=self.provider_name,
            dep=dep,
        ) as resp:
            return await resp.read()

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        if req.source_format == openai_completions.FORMAT:
            body = openai_completions.encode_request(req, dep.upstream_model, stream=False)
            data = await self._post_json(dep, COMPLETIONS_PATH, body)
            result = openai_completions.decode_response(json_body(data, NAME))
            relay = ctx.client_format == openai_completions.FORMAT
        else:
            body = openai_chat.encode_request(req, dep.upstream_model, stream=False)
            data = await self._post_json(dep, CHAT_PATH, body)
            result = openai_chat.decode_response(json_body(data, NAME))
            relay = ctx.client_format == self.dialect
        if relay:
            result.raw = data
        return result

    def stream(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> AsyncIterator[list[StreamEvent]]:
        if req.source_format == openai_completions.FORMAT:
            body = openai_completions.encode_request(req, dep.upstream_model, stream=True)
            relay = ctx.client_format == openai_completions.FORMAT
            return self._stream(dep, COMPLETIONS_PATH, body, openai_completions.StreamDecoder(), req, relay)
        body = openai_chat.encode_request(req, dep.upstream_model, stream=True)
        relay = ctx.client_format == self.dialect
        return self._stream(dep, CHAT_PATH, body, openai_chat.StreamDecoder(), req, relay)

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: CallContext) -> EmbeddingResponse:
        body = openai_embeddings.encode_request(req, dep.upstream_model)
        data = await self._post_json(dep, EMBEDDINGS_PATH, body)
        result = openai_embeddings.decode_response(json_body(data, NAME))
        expected = len(req.token_inputs) if req.token_inputs is not None else len(req.inputs)
        if len(result.vectors) != expected:
            raise UpstreamError(
                f"openai upstream returned {len(result.vectors)} embeddings for {expected} inputs",
                provider=NAME,
            )
        return result

    async def _stream(
        self,
        dep: Deployment,
        path: str,
        body: dict[str, Any],
        decoder: _ChunkDecoder,
        req: ChatRequest,
        relay: bool,
    ) -> AsyncIterator[list[StreamEvent]]:
        headers = self._headers(dep)
        headers["accept"] = "text/event-stream"
        # We always ask for the usage chunk (metering needs it); hide it if the client did not ask.
        hide_usage = openai_chat.needs_include_usage_strip(req)
        parser = SSEParser()
        async with self.http.post(
            self._url(dep, path),
            orjson.dumps(body),
            headers,
            provider=self.provider_name,
            dep=dep,
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
