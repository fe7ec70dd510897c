"""The client wire formats of the chat data plane, behind one small interface: OpenAI's and
Anthropic's here, legacy completions' in ``api.completions``, the Responses API's in
``api.responses``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from waypost.core.context import RequestContext
from waypost.core.errors import GatewayError
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, Usage
from waypost.wire.anthropic import messages as anthropic_messages
from waypost.wire.openai import chat as openai_chat


class StreamEncoder(Protocol):
    def feed(self, ev: StreamEvent) -> bytes: ...

    def error(self, err: GatewayError) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ClientFormat:
    name: str
    decode_request: Callable[[Any], ChatRequest]
    # The answer's body, and a stream's encoder, for the request being answered: most formats
    # read its model name; the Responses API its response id, time and client body too.
    encode_response: Callable[[ChatResponse, RequestContext], dict[str, Any]]
    encode_error: Callable[[GatewayError], tuple[int, dict[str, Any]]]
    stream_encoder: Callable[[RequestContext], StreamEncoder]
    # The ``usage`` member of a body, for usage the gateway counted into a relayed one.
    usage_object: Callable[[Usage], dict[str, Any]]


def chat_request(ctx: RequestContext) -> ChatRequest:
    """The chat request being answered (the path answers only decoded requests)."""
    req = ctx.req
    assert isinstance(req, ChatRequest)
    return req


OPENAI = ClientFormat(
    name=openai_chat.FORMAT,
    decode_request=openai_chat.decode_request,
    encode_response=lambda resp, ctx: openai_chat.encode_response(resp, chat_request(ctx).model),
    encode_error=openai_chat.encode_error,
    # The wire modules have no clock; chunks translated from upstreams without one get ours.
    stream_encoder=lambda ctx: openai_chat.StreamEncoder(
        chat_request(ctx).model, include_usage=chat_request(ctx).include_usage, created=int(time.time())
    ),
    usage_object=openai_chat.usage_to_openai,
)


def fresh_id() -> str:
    """A new unique id for an answer whose upstream gave none (the wire modules make no ids)."""
    return uuid.uuid4().hex[:24]


ANTHROPIC = ClientFormat(
    name=anthropic_messages.FORMAT,
    decode_request=anthropic_messages.decode_request,
    encode_response=lambda resp, ctx: anthropic_messages.encode_response(
        resp, chat_request(ctx).model, fallback_id="" if resp.id else fresh_id()
    ),
    encode_error=anthropic_messages.encode_error,
    stream_encoder=lambda ctx: anthropic_messages.StreamEncoder(
        chat_request(ctx).model, fallback_id=fresh_id()
    ),
    usage_object=anthropic_messages.usage_to_anthropic,
)
