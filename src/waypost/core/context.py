"""The one request context: everything the gateway knows about one data-plane request, from its
first byte to its audit row.

One object per request travels through every part that handles it: the data-plane path
(``api/dataplane.py``), every pipeline stage (``pipeline/stage.py``), the router, which records
each upstream attempt on it, and the provider that makes the attempt, which reads who is calling
and which client headers it may pass on, and notes what its encoding dropped. Metering reads the
outcome from it and writes the audit row.

It lives in ``core`` because every layer above reads it; it holds values, not services (the
container of services is the path's).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, Usage

if TYPE_CHECKING:
    from waypost.core.errors import GatewayError
    from waypost.core.events import StreamEvent
    from waypost.security.principal import Principal


class AnswerTap(Protocol):
    """Sees an upstream's answer as it leaves for the caller (the cache keeps it): the whole
    response of a non-streamed answer, or each batch of a stream's events."""

    def response(self, resp: ChatResponse) -> None: ...

    def events(self, batch: list[StreamEvent]) -> None: ...


@dataclass(slots=True)
class Attempt:
    """One upstream attempt: recorded by the router as it is made, finished when it ends."""

    number: int  # 1, 2, ... across retries and fallbacks
    model: str  # the deployment (model entry) tried
    provider: str
    upstream_model: str
    started: float  # time.perf_counter()
    ended: float | None = None
    status: int = 0  # the upstream's HTTP status; 0 when none came (connect error, timeout)
    error: str | None = None  # the error class, when it failed
    usage: Usage | None = None  # what the upstream billed for this attempt (set for the one that served)
    cost_micros: int = 0


@dataclass(slots=True)
class TraceIds:
    """The request's place in a distributed trace (``tracing.enabled``): set when the request
    arrives, before anything is sent upstream, because each attempt's ``traceparent`` must carry
    the id its span gets when the spans are built, once the request is over."""

    trace_id: int
    span_id: int  # the request's own (server) span
    parent_id: int | None  # the caller's span, from its ``traceparent``
    sampled: bool  # spans are built and exported (metrics are recorded either way)
    tracestate: str | None = None  # the caller's, passed on unchanged
    attempt_ids: list[int] = field(default_factory=list)  # one span id per ``RequestContext.attempts``
    # Per attempt, who it went to: the preset (groq, mistral, ...) or the provider type.
    attempt_providers: list[str] = field(default_factory=list)

    def begin_attempt(self, provider: str) -> None:
        """An upstream attempt starts: its span id, which its ``traceparent`` carries."""
        self.attempt_ids.append(random.getrandbits(64) or 1)
        self.attempt_providers.append(provider)

    def traceparent(self) -> str:
        """The W3C ``traceparent`` for the current upstream attempt (the request span's before any)."""
        span = self.attempt_ids[-1] if self.attempt_ids else self.span_id
        return f"00-{self.trace_id:032x}-{span:016x}-{'01' if self.sampled else '00'}"


@dataclass(slots=True)
class Cost:
    """What a request cost, in integer micro-dollars, and how that was priced."""

    total_micros: int
    breakdown: dict[str, int]  # component (input, output, cache_read, cache_write, ...) -> micro-dollars
    priced: bool  # False: no price anywhere, billed 0 under ``metering.unpriced: allow``
    source: str  # where the price came from: "config", "database", "catalogue <date>", "default", "none"

    @property
    def usd(self) -> float:
        return self.total_micros / 1_000_000

    @property
    def reported_usd(self) -> float | None:
        """What the caller is told: the cost, or None when no price was known (not "free")."""
        return self.total_micros / 1_000_000 if self.priced else None


@dataclass(slots=True)
class RequestContext:
    """One data-plane request. The path creates it when the request arrives; stages, the router
    and providers fill it in; metering turns it into the audit row."""

    request_id: str  # the caller's X-Request-ID when it sent a sane one, else the gateway's (echoed)
    client_format: str  # the caller's wire format: "openai", "anthropic", "completions", "task"
    endpoint: str = "chat"  # chat, messages, completions, embeddings, count_tokens, classify, plan, embed
    started: float = field(default_factory=time.perf_counter)  # when the request arrived
    arrived_at: float = field(default_factory=time.time)  # the same instant, as a Unix time
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-cased names
    # The audit log's key: unique, made by the gateway (``request_id`` when the gateway made that).
    audit_id: str = ""
    client_ip: str | None = None
    # Client headers a provider of the caller's own dialect may pass on (e.g. anthropic-beta).
    passthrough_headers: dict[str, str] = field(default_factory=dict)
    principal: Principal | None = None  # set once authenticated
    body: Any = None  # the parsed JSON body
    req: ChatRequest | EmbeddingRequest | None = None  # set once decoded
    decoder_notes: int = 0  # how many of req.notes the decoder wrote (the rest come from stages)
    stream: bool = False
    tags: tuple[str, ...] = ()
    # What the current attempt's encoding could not carry (``Encoded.dropped``): set by the
    # provider, cleared by the router before each attempt, reported for the one that served.
    dropped: tuple[str, ...] = ()
    attempts: list[Attempt] = field(default_factory=list)
    served: Any = None  # routing.router.Served, once an upstream answers
    same_format: bool = False  # the serving upstream speaks the caller's format (bytes relayed)
    answered_by: str | None = None  # the stage that answered instead of an upstream (e.g. the cache)
    first_byte_at: float | None = None  # perf_counter() when the first byte of the answer left
    response_model: str | None = None  # the model the upstream says answered
    finish_reason: str | None = None  # why the answer ended (the canonical FinishReason value)
    trace: TraceIds | None = None  # set only when tracing is on (observability/tracing.py)
    # Seconds the gateway itself took until the answer's first byte, upstream attempts excluded
    # (``first_byte``; X-Waypost-Overhead-Ms and the overhead histogram).
    overhead: float | None = None
    usage: Usage | None = None  # what the request used, once known (so far, while streaming)
    # The prompt's estimated tokens, when a stage estimated them (budgets): a stream's usage so
    # far counts them until the upstream reports its own input.
    prompt_estimate: int = 0
    counted_with: str | None = None  # the upstream gave no usage: what the gateway counted it with
    cost: Cost | None = None
    cache_status: str | None = None  # hit, miss, bypass (the cache stage)
    saved_micros: int = 0  # a cache hit: what the upstream call it replaced cost
    answer_tap: AnswerTap | None = None  # set by a stage that keeps the answer (the cache)
    status: int = 0  # the status the caller got (499: the client went away)
    error: GatewayError | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)  # policy decisions, for the audit row
    # Headers the stages add to the answer, whatever it is (served, answered by a stage, or an
    # error): applied rules, rate-limit allowances, cache status. Lower-case names.
    response_headers: dict[str, str] = field(default_factory=dict)
    # Each stage's own state for this request (e.g. a budget reservation), by stage name.
    state: dict[str, Any] = field(default_factory=dict)
    response_body: bytes | None = None  # what the caller got, when bodies are audited

    @property
    def principal_id(self) -> int | None:
        return self.principal.user_id if self.principal is not None else None

    def latency_ms(self, now: float) -> float:
        return round((now - self.started) * 1000, 2)

    def first_byte(self, now: float) -> float:
        """The answer's first byte leaves at ``now``: note it; returns ``own_time(now)``."""
        self.first_byte_at = now
        return self.own_time(now)

    def own_time(self, now: float) -> float:
        """The gateway's own time until ``now``, noted as ``overhead``: the time since arrival
        less the upstream attempts' (an attempt still open counts until ``now``)."""
        upstream = 0.0
        for a in self.attempts:
            upstream += (a.ended if a.ended is not None else now) - a.started
        own = self.overhead = max(0.0, now - self.started - upstream)
        return own
