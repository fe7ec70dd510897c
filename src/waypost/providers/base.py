"""The narrow provider interface, and the per-call objects providers receive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.security.principal import Principal
from waypost.settings import ModelSettings


@dataclass(slots=True)
class Deployment:
    """One concrete place a model name resolves to: its settings plus the upstream model name."""

    settings: ModelSettings
    upstream_model: str

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def provider(self) -> str:
        return self.settings.provider


@dataclass(slots=True)
class CallContext:
    request_id: str
    client_format: str  # the caller's wire format: "openai" or "anthropic"
    # Client headers a provider of the caller's own dialect may pass on (e.g. anthropic-beta).
    passthrough_headers: dict[str, str] = field(default_factory=dict)
    # The authenticated caller; the router refuses models they may not use.
    principal: Principal | None = None
    # What the current attempt's encoding could not carry (``Encoded.dropped``): set by the
    # provider, cleared by the router before each attempt, reported for the one that served.
    dropped: tuple[str, ...] = ()


class Provider(Protocol):
    """A wire dialect plus transport. Endpoint and credentials come with each ``Deployment``."""

    dialect: str

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> ChatResponse:
        """One non-streamed answer; raises ``GatewayError`` subclasses on failure."""
        ...

    def stream(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> AsyncIterator[list[StreamEvent]]:
        """Canonical events, in batches: one batch per upstream read, so a relay writes once
        for what arrived together. A provider whose ``dialect`` is ``ctx.client_format`` adds
        ``RawFrame``s carrying the upstream bytes as they came. Providers that call an upstream
        read it with ``providers.streaming.read_stream``, which keeps these promises for all."""
        ...


# Optional capabilities: a provider has one when it implements the method. The router skips
# deployments whose provider lacks the capability a request needs.


@runtime_checkable
class EmbeddingProvider(Protocol):
    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: CallContext) -> EmbeddingResponse:
        """Vectors for ``req.inputs`` (float lists; the caller encodes base64 if asked)."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    async def count_tokens(self, req: ChatRequest, dep: Deployment, ctx: CallContext) -> int:
        """Input tokens the request would use, counted by the provider itself."""
        ...
