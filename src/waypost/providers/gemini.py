"""The Google Gemini API (``generativelanguage.googleapis.com``): chat, streams, token counts and
embeddings.

The key travels only in the ``x-goog-api-key`` header. A ``?key=`` URL would put it in every log
line and exception text that mentions the URL; here the URL holds nothing secret, and any error
text that reaches a client or a log is scrubbed of the key all the same (``HttpClient.post``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import orjson

from waypost.core.context import RequestContext
from waypost.core.errors import GatewayError
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient, json_object, parse_retry_after
from waypost.providers.streaming import SHOWN, read_stream
from waypost.wire import gemini
from waypost.wire.sse import Frame, SSEParser

NAME = "gemini"
DEFAULT_VERSION = "v1beta"
# A base URL that already names the version (``.../v1beta``) is used as it is.
_VERSIONED_BASE = re.compile(r"/v\d+(?:alpha|beta)?\d*$")

T = TypeVar("T")


def _response_id() -> str:
    """A fresh id for an answer Gemini gives none (the wire modules make no ids)."""
    return f"gemini-{uuid.uuid4().hex[:24]}"


class _ChunkFrames:
    """Gemini stream frames: one ``GenerateContentResponse`` per event, and no end marker: the
    end of the body is the end of the answer."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = gemini.StreamDecoder(_response_id())

    def feed(self, frame: Frame, out: list[StreamEvent]) -> int:
        out += self._decoder.feed(json_object(frame[1]))
        return SHOWN

    def finish(self) -> list[StreamEvent]:
        return self._decoder.finish()


class GeminiProvider:
    dialect = gemini.FORMAT

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    # -- endpoints --------------------------------------------------------------------------

    @staticmethod
    def _url(dep: Deployment, method: str) -> str:
        settings = dep.settings
        base = settings.resolved_base_url()
        if not _VERSIONED_BASE.search(base):
            base += "/" + quote(settings.api_version or DEFAULT_VERSION, safe="")
        # The model name may come from the caller (``match`` routes): never let it shape the path.
        model = quote(gemini.model_path(dep.upstream_model), safe="")
        return f"{base}/models/{model}:{method}"

    @staticmethod
    def _headers(dep: Deployment, *, stream: bool = False) -> dict[str, str]:
        settings = dep.settings
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if settings.api_key:
            headers["x-goog-api-key"] = settings.api_key
        headers.update(settings.headers)
        return headers

    async def _call(
        self, dep: Deployment, method: str, body: dict[str, Any], decode: Callable[[dict[str, Any]], T]
    ) -> T:
        """POST ``body`` to ``method``; the answer decoded."""
        url, headers = self._url(dep, method), self._headers(dep)
        answer, _ = await self.http.post_json(
            url, body, headers, decode, dep=dep, provider=NAME, errors=self._errors(dep)
        )
        return answer

    @staticmethod
    def _errors(dep: Deployment) -> Callable[[int, Mapping[str, str], bytes], GatewayError]:
        def to_error(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
            return gemini.error_from_response(
                status, body, model=dep.name, retry_after=parse_retry_after(headers)
            )

        return to_error

    # -- capabilities -----------------------------------------------------------------------

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> ChatResponse:
        body, ctx.dropped = gemini.encode_request(req)
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)
        fallback_id = _response_id()
        return await self._call(
            dep, "generateContent", body, lambda answer: gemini.decode_response(answer, fallback_id)
        )

    def stream(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
    ) -> AsyncIterator[list[StreamEvent]]:
        body, ctx.dropped = gemini.encode_request(req)
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)
        opened = self.http.post(
            self._url(dep, "streamGenerateContent") + "?alt=sse",
            orjson.dumps(body),
            self._headers(dep, stream=True),
            provider=NAME,
            dep=dep,
            errors=self._errors(dep),
        )
        return read_stream(opened, SSEParser(), lambda _headers: _ChunkFrames(), provider=NAME)

    async def count_tokens(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> int:
        body, ctx.dropped = gemini.encode_count_tokens(req, gemini.model_path(dep.upstream_model))
        return await self._call(dep, "countTokens", body, gemini.decode_token_count)

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: RequestContext) -> EmbeddingResponse:
        model = gemini.model_path(dep.upstream_model)
        body, ctx.dropped = gemini.encode_embed_request(req, model)
        return await self._call(
            dep,
            "batchEmbedContents",
            body,
            lambda data: gemini.decode_embed_response(data, dep.upstream_model, len(req.inputs)),
        )
