"""The narrow provider interface, and the per-call objects providers receive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from waypost.core.context import RequestContext
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.settings import ModelSettings


@dataclass(slots=True)
class Deployment:
    """One concrete place a model name resolves to: its settings plus the upstream model name."""

    settings: ModelSettings
    upstream_model: str
    # Of a model with several deployments (``deployments:``): which one, its weight, and how many
    # the model has; a model of one has the label "".
    label: str = ""
    weight: int = 1
    pool: int = 1
    region: str | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def key(self) -> str:
        """The deployment's name in /health, metrics and the shared ejection state."""
        return f"{self.settings.name}/{self.label}" if self.label else self.settings.name

    @property
    def provider(self) -> str:
        return self.settings.provider


class Provider(Protocol):
    """A wire dialect plus transport. Endpoint and credentials come with each ``Deployment``."""

    dialect: str

    async def complete(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> ChatResponse:
        """One non-streamed answer; raises ``GatewayError`` subclasses on failure."""
        ...

    def stream(
        self, req: ChatRequest, dep: Deployment, ctx: RequestContext
    ) -> AsyncIterator[list[StreamEvent]]:
        """Canonical events, in batches: one batch per upstream read, so a relay writes once
        for what arrived together. A provider whose ``dialect`` is ``ctx.client_format`` adds
        ``RawFrame``s carrying the upstream bytes as they came. Providers that call an upstream
        read it with ``providers.streaming.read_stream``, which keeps these promises for all."""
        ...


def same_format(provider: Provider, client_format: str, dep: Deployment) -> bool:
    """Whether ``provider`` forwards and relays bodies of ``client_format`` as they are (the
    same-format fast path) on deployment ``dep``: its own dialect, or one of its
    ``native_formats`` (OpenAI-compatible servers: legacy completions; the Responses API where
    ``dep`` serves it). The one place this is decided: the provider's encoder forwards the
    client's body (``core.passthrough``) and its stream adds ``RawFrame``s exactly when this
    holds, and the data plane then relays those bytes."""
    if provider.dialect == client_format:
        return True
    if client_format not in getattr(provider, "native_formats", ()):
        return False
    # A native format a provider speaks only on some deployments (the Responses API).
    speaks = getattr(provider, "speaks", None)
    return speaks is None or bool(speaks(client_format, dep))


# Optional capabilities: a provider has one when it implements the method. The router skips
# deployments whose provider lacks the capability a request needs.


@runtime_checkable
class EmbeddingProvider(Protocol):
    async def embed(self, req: EmbeddingRequest, dep: Deployment, ctx: RequestContext) -> EmbeddingResponse:
        """Vectors for ``req.inputs`` (float lists; the caller encodes base64 if asked)."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    async def count_tokens(self, req: ChatRequest, dep: Deployment, ctx: RequestContext) -> int:
        """Input tokens the request would use, counted by the provider itself."""
        ...
