"""Any OpenAI-compatible server (OpenAI, Groq, Together, DeepSeek, Mistral, vLLM, llama.cpp, ...).

Chat Completions, Embeddings (``embed``) and the legacy Completions API: a request decoded from
a client's ``/v1/completions`` body (``source_format`` of ``openai_completions``) goes to the
upstream's own ``/completions``, not through chat.

Subclasses for servers with other URLs or credentials (Azure) override ``_url`` and ``_headers``.

A same-format client gets the upstream's bytes with only what ``wire.openai.chat_relay`` changes:
the model it asked for, and the quirks of compatible servers normalised away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

import orjson

from waypost.core.context import RequestContext
from waypost.core.errors import StreamInterrupted, UpstreamError
from waypost.core.events import StreamEvent, UsageUpdate
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers import openai_responses as responses
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient, json_object
from waypost.providers.kinds import TokenLimitField, default_max_tokens_field
from waypost.providers.streaming import END, HIDDEN, SHOWN, Rewritten, read_stream
from waypost.wire.openai import chat as openai_chat
from waypost.wire.openai import completions as openai_completions
from waypost.wire.openai import embeddings as openai_embeddings
from waypost.wire.openai.chat_relay import RelayedChunks, normalise_body
from waypost.wire.sse import Frame, SSEParser, encode_frame

NAME = "openai"
CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"
EMBEDDINGS_PATH = "/embeddings"

DONE_FRAME = b"data: [DONE]\n\n"

T = TypeVar("T")


class _ChunkDecoder(Protocol):
    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]: ...

    def finish(self) -> list[StreamEvent]: ...


class _ChunkFrames:
    """OpenAI stream frames: ``data: {chunk}`` until ``data: [DONE]``. With ``relayed`` (a
    same-format client), what the client gets of each frame."""

    __slots__ = ("_decoder", "_provider", "_relayed")

    def __init__(self, decoder: _ChunkDecoder, relayed: RelayedChunks | None, provider: str) -> None:
        self._decoder = decoder
        self._relayed = relayed
        self._provider = provider

    def feed(self, frame: Frame, out: list[StreamEvent]) -> int | Rewritten:
        data = frame[1]
        if data == b"[DONE]":
            ending = self._decoder.finish()
            out += ending
            if self._relayed is None:
                return END
            closing = self._relayed.closing()
            if not any(type(ev) is UsageUpdate for ev in ending):
                # No usage came (the decoders report it here, at the end, if any came): the
                # gateway counts it, then writes the usage chunk the client asked for and [DONE]
                # itself (api/chat.py: a same-format stream without a UsageUpdate; relay_end).
                return Rewritten(closing, end=True)
            return Rewritten(closing + DONE_FRAME, end=True) if closing else END
        chunk = json_object(data)
        out += self._decoder.feed(chunk)
        if self._relayed is None:
            return SHOWN
        relayed = self._relayed.feed(chunk, data)
        if relayed is None:
            return SHOWN
        return Rewritten(relayed) if relayed else HIDDEN

    def finish(self) -> list[StreamEvent]:
        raise StreamInterrupted(
            f"{self._provider} upstream stream ended without [DONE]", provider=self._provider
        )


class OpenAIProvider:
    dialect = openai_chat.FORMAT
    # Client formats besides ``dialect`` whose bodies this provider forwards and relays as they are.
    # Responses API requests go to ``/responses`` only where a deployment speaks it (``speaks``).
    native_formats = (openai_completions.FORMAT, responses.FORMAT)
    provider_name = NAME  # how upstream failures name the provider (subclasses: their own)

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def speaks(self, client_format: str, dep: Deployment) -> bool:
        """Whether ``dep`` takes bodies of the native ``client_format`` as they are."""
        return client_format != responses.FORMAT or responses.speaks_responses(dep)

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

    def max_tokens_field(self, dep: Deployment) -> TokenLimitField:
        """The field this deployment takes the caller's token limit in (``kinds.py``)."""
        settings = dep.settings
        return settings.max_tokens_field or default_max_tokens_field(
            settings.provider, settings.resolved_base_url()
        )

    async def _call(
        self, dep: Deployment, path: str, body: dict[str, Any], decode: Callable[[dict[str, Any]], T]
    ) -> tuple[T, bytes]:
        """POST ``body`` to ``path``; the answer decoded, and as it came."""
        return await self.http.post_json(
            self._url(dep, path), body, self._headers(dep), decode, dep=dep, provider=self.provider_name
        )

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> ChatResponse:
        decode: Callable[[dict[str, Any]], ChatResponse]
        if responses.native(req, dep):
            body, ctx.dropped = responses.encode(req, dep, stream=False)
            body = self.http.outbound.body(dep, body)
            (result, answer), data = await self._call(
                dep, responses.RESPONSES_PATH, body, lambda answer: (responses.decoded(answer), answer)
            )
            result.raw = responses.relayed_body(answer, data, req.model)
            return result
        if req.source_format == openai_completions.FORMAT:
            path, decode = COMPLETIONS_PATH, openai_completions.decode_response
            body, ctx.dropped = openai_completions.encode_request(req, dep.upstream_model, stream=False)
            relay = ctx.client_format == openai_completions.FORMAT
        else:
            path, decode = CHAT_PATH, openai_chat.decode_response
            body, ctx.dropped = openai_chat.encode_request(
                req, dep.upstream_model, stream=False, max_tokens_field=self.max_tokens_field(dep)
            )
            relay = ctx.client_format == self.dialect
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)
        if not relay:
            result, _ = await self._call(dep, path, body, decode)
            return result
        (result, answer), data = await self._call(dep, path, body, lambda answer: (decode(answer), answer))
        # The client reads the body as it came, but for its model name and servers' quirks.
        result.raw = orjson.dumps(answer) if normalise_body(answer, req.model) else data
        result.raw_json = answer
        return result

    def stream(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
    ) -> AsyncIterator[list[StreamEvent]]:
        decoder: _ChunkDecoder
        if responses.native(req, dep):
            return self._stream_responses(req, dep, ctx)
        if req.source_format == openai_completions.FORMAT:
            path = COMPLETIONS_PATH
            body, ctx.dropped = openai_completions.encode_request(req, dep.upstream_model, stream=True)
            relay = ctx.client_format == openai_completions.FORMAT
            decoder = openai_completions.StreamDecoder()
        else:
            path = CHAT_PATH
            body, ctx.dropped = openai_chat.encode_request(
                req, dep.upstream_model, stream=True, max_tokens_field=self.max_tokens_field(dep)
            )
            relay = ctx.client_format == self.dialect
            decoder = openai_chat.StreamDecoder()
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)
        headers = self._headers(dep)
        headers["accept"] = "text/event-stream"
        # Waypost always asks for the usage chunk (metering needs it); the client gets it if it asked.
        relayed = RelayedChunks(req.model, include_usage=req.include_usage) if relay else None
        frames = _ChunkFrames(decoder, relayed, self.provider_name)
        return read_stream(
            self.http.post(
                self._url(dep, path), orjson.dumps(body), headers, provider=self.provider_name, dep=dep
            ),
            SSEParser(),
            lambda _headers: frames,
            provider=self.provider_name,
            relay=encode_frame if relay else None,
            edit=relayed.edit if relayed is not None else None,
        )

    def _stream_responses(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
    ) -> AsyncIterator[list[StreamEvent]]:
        body, ctx.dropped = responses.encode(req, dep, stream=True)
        body = self.http.outbound.body(dep, body)
        headers = self._headers(dep)
        headers["accept"] = "text/event-stream"
        relay = ctx.client_format == responses.FORMAT
        return read_stream(
            self.http.post(
                self._url(dep, responses.RESPONSES_PATH),
                orjson.dumps(body),
                headers,
                provider=self.provider_name,
                dep=dep,
            ),
            SSEParser(),
            responses.frames_for(req, relay, self.provider_name),
            provider=self.provider_name,
            relay=encode_frame if relay else None,
        )

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: RequestContext) -> EmbeddingResponse:
        body, ctx.dropped = openai_embeddings.encode_request(req, dep.upstream_model)
        result, _ = await self._call(dep, EMBEDDINGS_PATH, body, openai_embeddings.decode_response)
        expected = len(req.token_inputs) if req.token_inputs is not None else len(req.inputs)
        if len(result.vectors) != expected:
            raise UpstreamError(
                f"{self.provider_name} upstream returned {len(result.vectors)} embeddings for {expected} inputs",
                provider=self.provider_name,
            )
        return result
