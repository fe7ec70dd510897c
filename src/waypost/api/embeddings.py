"""``POST /v1/embeddings`` in the OpenAI format, served by any provider that can embed."""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.chat import Call
from waypost.api.formats import OPENAI
from waypost.api.json_endpoint import Answer, Exchange, serve_json
from waypost.api.state import Container
from waypost.providers.base import CallContext
from waypost.wire.openai import embeddings as openai_embeddings


async def _embeddings(ex: Exchange) -> Answer:
    req = openai_embeddings.decode_request(ex.body)
    call = ex.call = Call(ex.container, ex.rid, req, ex.started, len(req.notes))
    resp, served = await ex.container.router.embed(
        req, CallContext(ex.rid, OPENAI.name, principal=ex.principal)
    )
    headers = call.serve(served, OPENAI)
    content = orjson.dumps(openai_embeddings.encode_response(resp, req.model, req.encoding_format))
    return Answer(content, headers, resp.usage)


async def handle_embeddings(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve_json(container, OPENAI, _embeddings, scope, receive, send)
