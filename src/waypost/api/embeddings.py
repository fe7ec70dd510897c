"""``POST /v1/embeddings`` in the OpenAI format, served by any provider that can embed."""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.asgi_io import send_body
from waypost.api.chat import COST_FIELD, COST_HEADER
from waypost.api.dataplane import JSON, Endpoint, first_byte, serve, served_headers
from waypost.api.formats import OPENAI
from waypost.api.state import Container
from waypost.core.context import RequestContext
from waypost.core.types import EmbeddingRequest
from waypost.pipeline.stage import Reply
from waypost.wire.openai import embeddings as openai_embeddings


def _decode(ctx: RequestContext, container: Container) -> None:
    req = openai_embeddings.decode_request(ctx.body)
    ctx.req, ctx.decoder_notes = req, len(req.notes)


async def _run(ctx: RequestContext, container: Container, reply: Reply | None, send: Send) -> None:
    req = ctx.req
    assert isinstance(req, EmbeddingRequest)
    resp, served = await container.router.embed(req, ctx)
    headers = served_headers(ctx, container, served)
    cost = container.metering.account(ctx, resp.usage)
    body = openai_embeddings.encode_response(resp, req.model, req.encoding_format)
    if container.settings.metering.cost_header:
        if isinstance(body.get("usage"), dict):
            body["usage"][COST_FIELD] = cost.reported_usd
        if cost.priced:
            headers[COST_HEADER] = f"{cost.usd:.6f}"
    first_byte(ctx, headers)
    await send_body(send, 200, orjson.dumps(body), JSON, headers)


EMBEDDINGS = Endpoint("embeddings", OPENAI, _decode, _run)


async def handle_embeddings(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve(container, EMBEDDINGS, scope, receive, send)
