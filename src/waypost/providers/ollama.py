"""Ollama's native API: ``POST {base}/api/chat`` (NDJSON streams) and ``POST {base}/api/embed``.

``base_url`` is the server root (default ``http://127.0.0.1:11434``). A configured ``api_key``
goes as ``Authorization: Bearer`` (Ollama's cloud, or a server behind an authenticating proxy).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson

from waypost.core.errors import GatewayError, StreamInterrupted
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers.base import CallContext, Deployment
from waypost.providers.http import HttpClient, json_body
from waypost.wire import ollama

NAME = "ollama"


def _response_id() -> str:
    return f"ollama-{uuid.uuid4().hex[:24]}"


class OllamaProvider:
    dialect = ollama.FORMAT

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    @staticmethod
    def _request(dep: Deployment, path: str, accept: str = "application/json") -> tuple[str, dict[str, str]]:
        settings = dep.settings
        headers = {"content-type": "application/json", "accept": accept}
        if settings.api_key:
            headers["authorization"] = f"Bearer {settings.api_key}"
        headers.update(settings.headers)
        return settings.resolved_base_url() + path, headers

    async def _post(self, dep: Deployment, path: str, body: dict[str, object]) -> bytes:
        url, headers = self._request(dep, path)
        async with self.http.post(
            url,
            orjson.dumps(body),
            headers,
            provider=NAME,
            dep=dep,
        ) as resp:
            return await resp.read()

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        data = await self._post(
            dep, "/api/chat", ollama.encode_request(req, dep.upstream_model, stream=False)
        )
        return ollama.decode_response(json_body(data, NAME), _response_id())

    async def stream(
        self, req: ChatRequest, dep: Deployment, ctx: CallContext
    ) -> AsyncIterator[list[StreamEvent]]:
        url, headers = self._request(dep, "/api/chat", "application/x-ndjson")
        body = orjson.dumps(ollama.encode_request(req, dep.upstream_model, stream=True))
        decoder = ollama.StreamDecoder(_response_id())
        lines = ollama.LineSplitter()
        async with self.http.post(
            url,
            body,
            headers,
            provider=NAME,
            dep=dep,
        ) as resp:
            while True:
                chunk = await resp.read_chunk()
                if chunk:
                    complete = lines.feed(chunk)
                else:  # the end: a last line without its newline still counts
                    tail = lines.rest()
                    complete = [tail] if tail else []
                batch: list[StreamEvent] = []
                try:
                    for line in complete:
                        batch += decoder.feed(ollama.line_object(line))
                        if decoder.done:
                            break
                except GatewayError:
                    # What arrived before the failure still reaches the client, then the error.
                    if batch:
                        yield batch
                    raise
                if batch:
                    yield batch
                if decoder.done or not chunk:
                    break
        if not decoder.done:
            raise StreamInterrupted(
                'ollama upstream stream ended without its final "done" line', provider=NAME
            )

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: CallContext) -> EmbeddingResponse:
        body = ollama.encode_embed_request(req, dep.upstream_model)
        data = await self._post(dep, "/api/embed", body)
        return ollama.decode_embed_response(json_body(data, NAME), dep.upstream_model, len(req.inputs))
