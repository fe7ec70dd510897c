"""The Google Gemini API (``generativelanguage.googleapis.com``): chat, streams, token counts and
embeddings.

The key travels only in the ``x-goog-api-key`` header. A ``?key=`` URL would put it in every log
line and exception text that mentions the URL; here the URL holds nothing secret, and any error
text that reaches a client or a log is scrubbed of the key all the same.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from waypost.core.errors import GatewayError, StreamInterrupted
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers.base import CallContext, Deployment
from waypost.providers.http import HttpClient, json_body, parse_retry_after
from waypost.wire import gemini
from waypost.wire.sse import SSEParser

NAME = "gemini"
DEFAULT_VERSION = "v1beta"
# A base URL that already names the version (``.../v1beta``) is used as it is.
_VERSIONED_BASE = re.compile(r"/v\d+(?:alpha|beta)?\d*$")


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

    async def _call(self, dep: Deployment, method: str, body: dict[str, Any]) -> Any:
        settings = dep.settings
        try:
            async with self.http.post(
                self._url(dep, method),
                orjson.dumps(body),
                self._headers(dep),
                provider=NAME,
                dep=dep,
                errors=self._errors(dep),
            ) as resp:
                data = await resp.read()
        except GatewayError as err:
            raise _scrubbed(err, settings.api_key) from None
        return json_body(data, NAME)

    @staticmethod
    def _errors(dep: Deployment) -> Callable[[int, Mapping[str, str], bytes], GatewayError]:
        def to_error(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
            return gemini.error_from_response(
                status, body, model=dep.name, retry_after=parse_retry_after(headers)
            )

        return to_error

    # -- capabilities -----------------------------------------------------------------------

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        data = await self._call(dep, "generateContent", gemini.encode_request(req))
        try:
            return gemini.decode_response(data)
        except GatewayError as err:
            raise _scrubbed(err, dep.settings.api_key) from None

    async def stream(
        self, req: ChatRequest, dep: Deployment, ctx: CallContext
    ) -> AsyncIterator[list[StreamEvent]]:
        settings = dep.settings
        decoder = gemini.StreamDecoder()
        parser = SSEParser()
        try:
            async with self.http.post(
                self._url(dep, "streamGenerateContent") + "?alt=sse",
                orjson.dumps(gemini.encode_request(req)),
                self._headers(dep, stream=True),
                provider=NAME,
                dep=dep,
                errors=self._errors(dep),
            ) as resp:
                while chunk := await resp.read_chunk():
                    try:
                        frames, _ = parser.feed_frames(chunk)
                    except ValueError:
                        raise StreamInterrupted(
                            f"{NAME} upstream sent a stream event beyond the buffer limit", provider=NAME
                        ) from None
                    batch: list[StreamEvent] = []
                    try:
                        for _, data in frames:
                            batch += decoder.feed(_chunk_object(data))
                    except GatewayError:
                        # What arrived before the failure still reaches the client, then the error.
                        if batch:
                            yield batch
                        raise
                    if batch:
                        yield batch
                # Gemini streams have no end marker: the end of the body is the end of the answer.
                batch = decoder.finish()
            yield batch
        except GatewayError as err:
            raise _scrubbed(err, settings.api_key) from None

    async def count_tokens(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> int:
        body = gemini.encode_count_tokens(req, gemini.model_path(dep.upstream_model))
        data = await self._call(dep, "countTokens", body)
        return gemini.decode_token_count(data)

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: CallContext) -> EmbeddingResponse:
        model = gemini.model_path(dep.upstream_model)
        data = await self._call(dep, "batchEmbedContents", gemini.encode_embed_request(req, model))
        return gemini.decode_embed_response(data, dep.upstream_model, len(req.inputs))


def _chunk_object(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise StreamInterrupted(
            f"{NAME} upstream sent a stream chunk that is not JSON", provider=NAME
        ) from None


def _scrubbed(err: GatewayError, secret: str | None) -> GatewayError:
    """``err`` without the API key in its text, should an upstream ever echo it."""
    if secret and secret in err.message:
        err.message = err.message.replace(secret, "[redacted]")
        err.args = (err.message,)
    return err
