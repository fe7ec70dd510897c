"""``POST /v1/messages/count_tokens`` in the Anthropic format.

The body is a Messages request without ``max_tokens``. A deployment whose provider counts
(``TokenCounter``: Anthropic's own endpoint, the mock) answers; for any other model the answer
is the documented estimate of ``metering.estimate`` and carries ``X-Waypost-Token-Count: estimate``.
A count generates nothing and costs nothing.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.asgi_io import send_body
from waypost.api.dataplane import JSON, Endpoint, first_byte, serve, served_headers
from waypost.api.formats import ANTHROPIC
from waypost.api.state import Container
from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest
from waypost.core.passthrough import Passthrough
from waypost.core.types import ChatRequest
from waypost.metering.estimate import estimate_input_tokens
from waypost.pipeline.stage import Reply
from waypost.wire.anthropic import messages as anthropic_messages


def decode_request(body: object) -> ChatRequest:
    """A count_tokens body -> canonical request; its pass-through is the body as sent."""
    if not isinstance(body, dict):
        raise BadRequest("body: Input should be a valid dictionary")
    # The Messages decoder insists on max_tokens, which a count does not take.
    req = anthropic_messages.decode_request(body if "max_tokens" in body else {**body, "max_tokens": 1})
    req.passthrough = Passthrough(body)
    return req


def _decode(ctx: RequestContext, container: Container) -> None:
    req = decode_request(ctx.body)
    ctx.req, ctx.decoder_notes = req, len(req.notes)


async def _run(ctx: RequestContext, container: Container, reply: Reply | None, send: Send) -> None:
    req = ctx.req
    assert isinstance(req, ChatRequest)
    counted = await container.router.count_tokens(req, ctx)
    if counted is None:
        tokens = estimate_input_tokens(req)
        headers = {"x-request-id": ctx.request_id, "x-waypost-token-count": "estimate"}
    else:
        tokens, served = counted
        headers = served_headers(ctx, container, served)
    first_byte(ctx, headers)
    await send_body(send, 200, orjson.dumps({"input_tokens": tokens}), JSON, headers)


COUNT_TOKENS = Endpoint("count_tokens", ANTHROPIC, _decode, _run)


async def handle_count_tokens(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve(container, COUNT_TOKENS, scope, receive, send)
