"""Amazon Bedrock: Converse and ConverseStream for chat, InvokeModel for embeddings (Titan and
Cohere), CountTokens for token counts. Requests are signed with SigV4 (see ``bedrock_auth``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
from yarl import URL

from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest, GatewayError, UpstreamAuthError, UpstreamError
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from waypost.providers.base import Deployment
from waypost.providers.bedrock_auth import AwsAuth, default_endpoint, sign
from waypost.providers.http import HttpClient, UpstreamResponse, json_body, parse_retry_after
from waypost.providers.streaming import END, SHOWN, read_stream
from waypost.settings import AwsSettings
from waypost.wire.bedrock import converse as bedrock_converse
from waypost.wire.bedrock import embeddings as bedrock_embeddings
from waypost.wire.eventstream import EventMessage, EventStreamDecoder

NAME = "bedrock"
JSON = "application/json"
EVENT_STREAM = "application/vnd.amazon.eventstream"
EMBED_CONCURRENCY = 8  # Titan embeds one text per call: enough in flight, not a flood

T = TypeVar("T")


class _Messages:
    """ConverseStream event-stream messages, until ``metadata`` after ``messageStop``."""

    __slots__ = ("_decoder",)

    def __init__(self, decoder: bedrock_converse.StreamDecoder) -> None:
        self._decoder = decoder

    def feed(self, message: EventMessage, out: list[StreamEvent]) -> int:
        out += self._decoder.feed(message)
        return END if self._decoder.ended else SHOWN

    def finish(self) -> list[StreamEvent]:
        return self._decoder.finish()  # a stream may end after messageStop without metadata


class BedrockProvider:
    dialect = bedrock_converse.FORMAT

    def __init__(self, http: HttpClient, *, auth: AwsAuth | None = None) -> None:
        self.http = http
        self.auth = auth or AwsAuth()

    # -- chat -------------------------------------------------------------------------------

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> ChatResponse:
        body, ctx.dropped = bedrock_converse.encode_request(
            req, dep.upstream_model, default_max_tokens=dep.settings.default_max_tokens
        )
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)
        async with self._post(dep, "converse", orjson.dumps(body), JSON) as resp:
            return bedrock_converse.decode_response(
                json_body(await resp.read(), NAME),
                model=dep.upstream_model,
                response_id=resp.headers.get("x-amzn-requestid", ""),
            )

    def stream(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
    ) -> AsyncIterator[list[StreamEvent]]:
        body, ctx.dropped = bedrock_converse.encode_request(
            req, dep.upstream_model, default_max_tokens=dep.settings.default_max_tokens
        )
        body = self.http.outbound.body(dep, body)  # JSONPath transformations (docs/policy.md)

        def decoder(headers: Mapping[str, str]) -> _Messages:
            response_id = headers.get("x-amzn-requestid", "")
            return _Messages(
                bedrock_converse.StreamDecoder(model=dep.upstream_model, response_id=response_id)
            )

        return read_stream(
            self._post(dep, "converse-stream", orjson.dumps(body), EVENT_STREAM),
            EventStreamDecoder(NAME),
            decoder,
            provider=NAME,
        )

    # -- embeddings and token counts --------------------------------------------------------

    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: RequestContext) -> EmbeddingResponse:
        family = bedrock_embeddings.embedding_family(dep.upstream_model)
        bedrock_embeddings.check_inputs(req)
        usage = Usage()
        vectors: list[list[float]] = []
        if family in ("titan", "titan-v1"):
            limit = asyncio.Semaphore(EMBED_CONCURRENCY)

            async def one(text: str) -> tuple[list[float], int]:
                async with limit:
                    body, ctx.dropped = bedrock_embeddings.titan_body(text, req, family)
                    data, _ = await self._invoke(dep, orjson.dumps(body))
                    return bedrock_embeddings.titan_vector(data)

            for vector, tokens in await _all([one(text) for text in req.inputs]):
                vectors.append(vector)
                usage.input_tokens += tokens
        else:
            bodies, ctx.dropped = bedrock_embeddings.cohere_bodies(req, family)

            async def batch(body: dict[str, Any]) -> tuple[list[list[float]], int]:
                data, headers = await self._invoke(dep, orjson.dumps(body))
                return bedrock_embeddings.cohere_vectors(data, len(body["texts"])), _token_header(headers)

            for batch_vectors, tokens in await _all([batch(b) for b in bodies]):
                vectors += batch_vectors
                usage.input_tokens += tokens
        return EmbeddingResponse(model=dep.upstream_model, vectors=vectors, usage=usage)

    async def count_tokens(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> int:
        """Bedrock's own count. CountTokens serves Anthropic models only; for any other model this
        deployment cannot count, which the router answers with an estimate."""
        if bedrock_converse.model_family(dep.upstream_model) != "anthropic":
            raise BadRequest(
                f"Bedrock counts tokens only for Anthropic models, not {dep.upstream_model!r}.", param="model"
            )
        body, ctx.dropped = bedrock_converse.count_tokens_body(req, dep.upstream_model)
        async with self._post(dep, "count-tokens", orjson.dumps(body), JSON) as resp:
            data = json_body(await resp.read(), NAME)
        count = data.get("inputTokens") if isinstance(data, dict) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise UpstreamError("bedrock upstream returned no inputTokens count", provider=NAME)
        return count

    async def _invoke(self, dep: Deployment, body: bytes) -> tuple[Any, Mapping[str, str]]:
        async with self._post(dep, "invoke", body, JSON) as resp:
            data = await resp.read()
            headers = resp.headers
        return json_body(data, NAME), headers

    # -- transport --------------------------------------------------------------------------

    @asynccontextmanager
    async def _post(
        self, dep: Deployment, operation: str, body: bytes, accept: str
    ) -> AsyncIterator[UpstreamResponse]:
        settings = dep.settings
        aws = settings.aws or AwsSettings()
        credentials, region = await self.auth.current(aws)
        endpoint = aws.endpoint_url or settings.base_url or default_endpoint(region)
        url = endpoint + bedrock_converse.model_path(dep.upstream_model, operation)
        # Header rules apply before signing: SigV4 signs the headers sent.
        headers = self.http.outbound.headers(
            dep, {"content-type": JSON, "accept": accept, **settings.headers}
        )
        headers = sign(url, body, headers, credentials, region)
        try:
            async with self.http.post(
                # Sent exactly as signed: the model id's percent-encoding must survive.
                URL(url, encoded=True),
                body,
                headers,
                provider=NAME,
                dep=dep,
                errors=_error_mapper(dep.name),
                secrets=(credentials.access_key, credentials.secret_key, credentials.token),
                header_rules=False,
            ) as resp:
                yield resp
        except UpstreamAuthError:
            self.auth.forget(aws)  # expired or rotated credentials are resolved afresh next time
            raise


def _error_mapper(model: str) -> Callable[[int, Mapping[str, str], bytes], GatewayError]:
    def mapper(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        try:
            message = bedrock_converse.error_message(orjson.loads(body))
        except orjson.JSONDecodeError:
            message = body[:300].decode("utf-8", "replace").strip()
        return bedrock_converse.error_for(
            headers.get("x-amzn-errortype"),
            message,
            model=model,
            upstream_status=status,
            retry_after=parse_retry_after(headers),
        )

    return mapper


def _token_header(headers: Mapping[str, str]) -> int:
    value = headers.get("x-amzn-bedrock-input-token-count", "")
    return int(value) if value.isdigit() else 0


async def _all(calls: list[Awaitable[T]]) -> list[T]:
    """Run ``calls`` concurrently, results in order; the first failure cancels the rest."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
