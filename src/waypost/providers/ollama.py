"""Ollama's native API: ``POST {base}/api/chat`` (NDJSON streams) and ``POST {base}/api/embed``.

``base_url`` is the server root (default ``http://127.0.0.1:11434``). A configured ``api_key``
goes as ``Authorization: Bearer`` (Ollama's cloud, or a server behind an authenticating proxy).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson

from waypost.core.context import RequestContext
from waypost.core.errors import StreamInterrupted
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient, json_object
from waypost.providers.streaming import END, SHOWN, read_stream
from waypost.wire import ollama

NAME = "ollama"

T = TypeVar("T")


def _response_id() -> str:
    """A fresh id for an answer (Ollama gives none, and the wire modules make no ids)."""
    return f"ollama-{uuid.uuid4().hex[:24]}"


class _Lines:
    """Ollama stream lines: one JSON object each, until the one with ``"done": true``."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = ollama.StreamDecoder(_response_id())

    def feed(self, line: bytes, out: list[StreamEvent]) -> int:
        out += self._decoder.feed(json_object(line))
        return END if self._decoder.done else SHOWN

    def finish(self) -> list[StreamEvent]:
        raise StreamInterrupted(f'{NAME} upstream stream ended without its final "done" line', provider=NAME)


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

    async def _call(
        self, dep: Deployment, path: str, body: dict[str, Any], decode: Callable[[dict[str, Any]], T]
    ) -> T:
        """POST ``body`` to ``path``; the answer decoded."""
        url, headers = self._request(dep, path)
        answer, _ = await self.http.post_json(url, body, headers, decode, dep=dep, provider=NAME)
        return answer

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> ChatResponse:
        body, ctx.dropped = ollama.encode_request(req, dep.upstream_model, stream=False)
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)
        response_id = _response_id()
        return await self._call(
            dep, "/api/chat", body, lambda data: ollama.decode_response(data, response_id)
        )

    def stream(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
    ) -> AsyncIterator[list[StreamEvent]]:
        url, headers = self._request(dep, "/api/chat", "application/x-ndjson")
        body, ctx.dropped = ollama.encode_request(req, dep.upstream_model, stream=True)
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)
        return read_stream(
            self.http.post(url, orjson.dumps(body), headers, provider=NAME, dep=dep),
            ollama.LineSplitter(),
            lambda _headers: _Lines(),
            provider=NAME,
        )

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: RequestContext) -> EmbeddingResponse:
        body, ctx.dropped = ollama.encode_embed_request(req, dep.upstream_model)
        return await self._call(
            dep,
            "/api/embed",
            body,
            lambda data: ollama.decode_embed_response(data, dep.upstream_model, len(req.inputs)),
        )
