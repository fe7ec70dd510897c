"""``POST /v1/messages/count_tokens`` in the Anthropic format.

The body is a Messages request without ``max_tokens``. A deployment whose provider counts
(``TokenCounter``: Anthropic's own endpoint, the mock) answers; for any other model the answer
is the documented estimate of ``metering.estimate`` and carries ``X-Waypost-Token-Count: estimate``.
"""

from __future__ import annotations

import orjson
from starlette.types import Receive, Scope, Send

from waypost.api.chat import PASSTHROUGH_HEADERS, Call
from waypost.api.formats import ANTHROPIC
from waypost.api.json_endpoint import Answer, Exchange, serve_json
from waypost.api.state import Container
from waypost.core.errors import BadRequest
from waypost.core.passthrough import Passthrough
from waypost.core.types import ChatRequest
from waypost.metering.estimate import estimate_input_tokens
from waypost.providers.base import CallContext
from waypost.wire.anthropic import messages as anthropic_messages


def decode_request(body: object) -> ChatRequest:
    """A count_tokens body -> canonical request; its pass-through is the body as sent."""
    if not isinstance(body, dict):
        raise BadRequest("body: Input should be a valid dictionary")
    # The Messages decoder insists on max_tokens, which a count does not take.
    req = anthropic_messages.decode_request(body if "max_tokens" in body else {**body, "max_tokens": 1})
    req.passthrough = Passthrough(body)
    return req


async def _count(ex: Exchange) -> Answer:
    req = decode_request(ex.body)
    call = ex.call = Call(ex.container, ex.rid, req, ex.started, len(req.notes))
    passthrough = {h: v for h in PASSTHROUGH_HEADERS if (v := ex.headers.get(h))}
    counted = await ex.container.router.count_tokens(
        req, CallContext(ex.rid, ANTHROPIC.name, passthrough, ex.principal)
    )
    if counted is None:
        tokens = estimate_input_tokens(req)
        headers = {"x-waypost-token-count": "estimate"}
    else:
        tokens, served = counted
        headers = call.serve(served, ANTHROPIC)
    return Answer(orjson.dumps({"input_tokens": tokens}), headers)


async def handle_count_tokens(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    await serve_json(container, ANTHROPIC, _count, scope, receive, send)
