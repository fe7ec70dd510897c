"""The two client wire formats the data plane speaks, behind one small interface."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from waypost.core.errors import GatewayError
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse
from waypost.wire.anthropic import messages as anthropic_messages
from waypost.wire.openai import chat as openai_chat


class StreamEncoder(Protocol):
    def feed(self, ev: StreamEvent) -> bytes: ...

    def error(self, err: GatewayError) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ClientFormat:
    name: str
    decode_request: Callable[[Any], ChatRequest]
    encode_response: Callable[[ChatResponse, str], dict[str, Any]]
    encode_error: Callable[[GatewayError], tuple[int, dict[str, Any]]]
    stream_encoder: Callable[[ChatRequest], StreamEncoder]


OPENAI = ClientFormat(
    name=openai_chat.FORMAT,
    decode_request=openai_chat.decode_request,
    encode_response=openai_chat.encode_response,
    encode_error=openai_chat.encode_error,
    # The wire modules have no clock; chunks translated from upstreams without one get ours.
    stream_encoder=lambda req: openai_chat.StreamEncoder(
        req.model, include_usage=req.include_usage, created=int(time.time())
    ),
)

ANTHROPIC = ClientFormat(
    name=anthropic_messages.FORMAT,
    decode_request=anthropic_messages.decode_request,
    encode_response=anthropic_messages.encode_response,
    encode_error=anthropic_messages.encode_error,
    stream_encoder=lambda req: anthropic_messages.StreamEncoder(req.model),
)
