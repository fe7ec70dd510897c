"""Any OpenAI-compatible server (OpenAI, Groq, Together, DeepSeek, Mistral, vLLM, llama.cpp, ...).

Chat Completions, Embeddings (``embed``) and the legacy Completions API: a request decoded from
a client's ``/v1/completions`` body (``source_format`` of ``openai_completions``) goes to the
upstream's own ``/completions``, not through chat.

Subclasses for servers with other URLs or credentials (Azure) override ``_url`` and ``_headers``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

import orjson

from waypost.core.errors import StreamInterrupted, UpstreamError
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers.base import CallContext, Deployment
from waypost.providers.http import HttpClient, json_object
from waypost.providers.streaming import END, HIDDEN, SHOWN, read_stream
from waypost.wire.openai import chat as openai_chat
from waypost.wire.openai import completions as openai_completions
from waypost.wire.openai import embeddings as openai_embeddings
from waypost.wire.sse import Frame, SSEParser, encode_frame

NAME = "openai"
CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"
EMBEDDINGS_PATH = "/embeddings"

T = TypeVar("T")


class _ChunkDecoder(Protocol):
    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]: ...


class _ChunkFrames:
    """OpenAI stream frames: ``data: {chunk}`` until ``data: [DONE]``."""

    __slots__ = ("_decoder", "_hide_usage", "_provider")

    def __init__(self, decoder: _ChunkDecoder, hide_usage: bool, provider: str) -> None:
        self._decoder = decoder
        self._hide_usage = hide_usage
        self._provider = provider

    def feed(self, frame: Frame, out: list[StreamEvent]) -> int:
        data = frame[1]
        if data == b"[DONE]":
            out += self._decoder.finish()
            return END
        chunk = json_object(data)
        out += self._decoder.feed(chunk)
        # We always ask for the usage chunk (metering needs it); hide it if the client did not ask.
        if self._hide_usage and not chunk.get("choices") and chunk.get("usage"):
            return HIDDEN
        return SHOWN

    def finish(self) -> list[StreamEvent]:
        raise StreamInterrupted(
            f"{self._provider} upstream stream ended without [DONE]", provider=self._provider
        )


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

    async def _call(
        self, dep: Deployment, path: str, body: dict[str, Any], decode: Callable[[dict[str, Any]], T]
    ) -> tuple[T, bytes]:
        """POST ``body`` to ``path``; the answer decoded, and as it came."""
        return await self.http.post_json(
            self._url(dep, path), body, self._headers(dep), decode, dep=dep, provider=self.provider_name
        )

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        if req.source_format == openai_completions.FORMAT:
            body = openai_completions.encode_request(req, dep.upstream_model, stream=False)
            result, data = await self._call(dep, COMPLETIONS_PATH, body, openai_completions.decode_response)
            relay = ctx.client_format == openai_completions.FORMAT
        else:
            body = openai_chat.encode_request(req, dep.upstream_model, stream=False)
            result, data = await self._call(dep, CHAT_PATH, body, openai_chat.decode_response)
            relay = ctx.client_format == self.dialect
        if relay:
            result.raw = data
        return result

    def stream(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> AsyncIterator[list[StreamEvent]]:
        decoder: _ChunkDecoder
        if req.source_format == openai_completions.FORMAT:
            path = COMPLETIONS_PATH
            body = openai_completions.encode_request(req, dep.upstream_model, stream=True)
            relay = ctx.client_format == openai_completions.FORMAT
            decoder = openai_completions.StreamDecoder()
        else:
            path = CHAT_PATH
            body = openai_chat.encode_request(req, dep.upstream_model, stream=True)
            relay = ctx.client_format == self.dialect
            decoder = openai_chat.StreamDecoder()
        headers = self._headers(dep)
        headers["accept"] = "text/event-stream"
        frames = _ChunkFrames(decoder, openai_chat.needs_include_usage_strip(req), self.provider_name)
        return read_stream(
            self.http.post(
                self._url(dep, path), orjson.dumps(body), headers, provider=self.provider_name, dep=dep
            ),
            SSEParser(),
            lambda _headers: frames,
            provider=self.provider_name,
            relay=encode_frame if relay else None,
        )

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: CallContext) -> EmbeddingResponse:
        body = openai_embeddings.encode_request(req, dep.upstream_model)
        result, _ = await self._call(dep, EMBEDDINGS_PATH, body, openai_embeddings.decode_response)
        expected = len(req.token_inputs) if req.token_inputs is not None else len(req.inputs)
        if len(result.vectors) != expected:
            raise UpstreamError(
                f"{self.provider_name} upstream returned {len(result.vectors)} embeddings for {expected} inputs",
                provider=self.provider_name,
            )
        return result
