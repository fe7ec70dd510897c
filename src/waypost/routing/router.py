"""Tries a request's deployments in order: retries with backoff and jitter on retryable
failures before the first byte, then each fallback once. Attempts are bounded.

A model with several deployments has them ordered per request by its strategy (``balancer``),
without those out of rotation (``health``: ejected, cooling down after a 429). A deployment that
goes out of rotation on a failure is not retried: the next one is tried at once. Every attempt
after a request's first is a retry, and the retry budget (``retry_budget``) may refuse it.

One loop serves every operation (chat, streams, embeddings, token counts): an operation is
a function of (provider, deployment). Deployments whose provider lacks the capability an
operation needs are skipped, and so are those whose output maximum a chat request exceeds
(the ``Admission`` given, ``pipeline.bounds``: checked once per request, before the first
upstream call).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol, TypeVar

from waypost.core.context import Attempt, RequestContext
from waypost.core.errors import BadRequest, GatewayError, ModelNotFound, UpstreamBadRequest, UpstreamError
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from waypost.providers.base import Deployment, EmbeddingProvider, Provider, TokenCounter, same_format

# Each attempt gets the request with its model's own regex_replace transformations applied.
from waypost.providers.outbound import for_deployment
from waypost.routing.balancer import Balancer
from waypost.routing.health import DeploymentHealth, DeploymentState
from waypost.routing.registry import ModelRegistry
from waypost.routing.retry_budget import RetryBudget
from waypost.settings import EjectionSettings, RetryBudgetSettings, RetryPolicy
from waypost.state.health import MemoryHealthStore

log = logging.getLogger("waypost.router")

MAX_ATTEMPTS = 16
T = TypeVar("T")
Batches = AsyncIterator[list[StreamEvent]]


def should_retry(err: GatewayError, policy: RetryPolicy) -> bool:
    if err.upstream_status is not None:
        return err.upstream_status in policy.status_codes
    return err.retryable  # connect errors, timeouts, broken streams


def retry_delay(attempt: int, err: GatewayError, policy: RetryPolicy) -> float | None:
    """Seconds before retry number ``attempt`` (0-based), or None when waiting is not worth it."""
    if policy.respect_retry_after and err.retry_after is not None:
        return err.retry_after if err.retry_after <= policy.max_delay else None
    base = min(policy.max_delay, policy.initial_delay * policy.backoff_factor**attempt)
    return base * (0.5 + random.random() / 2)  # jitter keeps replicas from retrying in step


def moves_on(err: GatewayError) -> bool:
    """Whether another deployment could do better. A request the upstream found invalid will
    be just as invalid elsewhere."""
    return not isinstance(err, UpstreamBadRequest)


class Admission(Protocol):
    """What the router checks once per request before the first upstream call, and which
    deployments a chat request fits (``pipeline.bounds.RequestBounds``: the pipeline builds it,
    the router only calls it, so routing does not import the pipeline)."""

    def admit_chat(self, req: ChatRequest) -> None: ...

    def admit_embedding(self, req: EmbeddingRequest) -> None: ...

    def admit_fields(self, req: ChatRequest | EmbeddingRequest) -> None: ...

    def fitting(self, req: ChatRequest, chain: Sequence[Deployment]) -> list[Deployment]: ...


@dataclass(slots=True)
class Served:
    deployment: Deployment
    attempts: int
    # What the serving attempt's encoding could not carry: only these notes reach the caller,
    # never those of a failed retry or fallback.
    dropped: tuple[str, ...] = ()


class Router:
    def __init__(
        self,
        registry: ModelRegistry,
        providers: Mapping[str, Provider],
        bounds: Admission,
        *,
        health: DeploymentHealth | None = None,
        retry_budget: RetryBudget | None = None,
    ) -> None:
        self.registry = registry
        self.providers = providers
        self.bounds = bounds
        self.health = health or DeploymentHealth(EjectionSettings(), MemoryHealthStore())
        self.retry_budget = retry_budget or RetryBudget(RetryBudgetSettings())
        self.balancer = Balancer()

    def deployment_states(self) -> list[DeploymentState]:
        """Every deployment of every model and its state now (/health, the metrics): no I/O."""
        now = self.health.now()
        return [self.health.state_of(dep, missing, now) for dep, missing in self.registry.deployments()]

    async def run(
        self,
        model: str,
        ctx: RequestContext,
        operation: Callable[[Provider, Deployment], Awaitable[T]],
        *,
        capability: type | None = None,
        what: str = "chat",
        request: ChatRequest | None = None,
        whole: bool = True,
    ) -> tuple[T, Served]:
        """``operation`` on each deployment of ``model`` in turn until one succeeds. With a chat
        ``request``, only the deployments whose output maximum it fits are tried. ``whole``: the
        operation's success is the deployment's (a stream's is only once it ends: ``_watched``)."""
        registry = self.registry  # one registry for the whole call, even if a reload swaps it
        principal = ctx.principal
        if principal is not None and not principal.may_use(registry.resolve(model).name):
            # The same answer as for a model that does not exist: no probing for names.
            raise ModelNotFound(
                f"The model {model!r} does not exist or you do not have access to it.", param="model"
            )
        chain = registry.chain(model)
        if capability is not None:
            chain = [d for d in chain if isinstance(self.providers[d.provider], capability)]
            if not chain:
                raise BadRequest(f"The model {model!r} does not support {what}.", param="model")
        if request is not None:
            if request.hosted_tools:
                chain = self._running_hosted_tools(request, chain, ctx.client_format)
            chain = self.bounds.fitting(request, chain)
        health, balancer, budget = self.health, self.balancer, self.retry_budget
        now = health.now()
        chain = balancer.order(chain, lambda d: health.is_out(d, now))
        attempts = 0
        last: GatewayError | None = None
        providers = self.providers
        budget.active += 1
        try:
            for dep in chain:
                provider = providers[dep.provider]
                for attempt in range(dep.settings.retry.max_retries + 1):
                    if attempts and not budget.take():
                        log.warning("retry budget spent: no retry", extra={"request_id": ctx.request_id})
                        assert last is not None
                        raise last
                    attempts += 1
                    ctx.dropped = ()
                    if ctx.trace is not None:  # tracing on: the attempt's span id, for its traceparent
                        ctx.trace.begin_attempt(dep.settings.preset or dep.provider)
                    record = Attempt(
                        len(ctx.attempts) + 1, dep.name, dep.provider, dep.upstream_model, perf_counter()
                    )
                    ctx.attempts.append(record)
                    balancer.started(dep)
                    took: float | None = None  # stays None unless it succeeds
                    failed = False  # the deployment failed it (not the caller, nor the request)
                    try:
                        result = await operation(provider, dep)
                        record.ended, record.status = perf_counter(), 200
                        took = record.ended - record.started
                        if whole:
                            health.succeeded(dep)
                        return result, Served(dep, attempts, ctx.dropped)
                    except GatewayError as err:
                        record.ended, record.status = perf_counter(), err.upstream_status or 0
                        record.error = type(err).__name__
                        last, failed = err, moves_on(err)  # a request found invalid: not its fault
                    finally:  # also when the caller went away (cancelled)
                        balancer.ended(dep, took, failed)
                        if attempts > 1:
                            budget.give_back()
                    # Out of rotation now: the next deployment rather than this one again.
                    if await health.failed(dep, last) and dep is not chain[-1]:
                        break
                    if not await self._before_next(last, dep, attempt, attempts, ctx):
                        break
                if last is not None and not moves_on(last):
                    break
                if attempts >= MAX_ATTEMPTS:
                    break
        finally:
            budget.active -= 1
        assert last is not None
        raise last

    def _running_hosted_tools(
        self, req: ChatRequest, chain: Sequence[Deployment], client_format: str
    ) -> list[Deployment]:
        """The deployments that can run the request's built-in tools: those that take the
        client's body as it is (``same_format``); a 400 naming the tools when there are none."""
        able = [d for d in chain if same_format(self.providers[d.provider], client_format, d)]
        if not able:
            kinds = ", ".join(sorted({str(t.get("type")) for t in req.hosted_tools}))
            where = ", ".join(sorted({d.provider for d in chain}))
            raise BadRequest(
                f"Built-in tools ({kinds}) are only available from an upstream that speaks the "
                f"client's API natively (the OpenAI Responses API); model {req.model!r} is served "
                f"by {where}. Remove them, or route the model to such an upstream.",
                param="tools",
            )
        return able

    async def complete(self, req: ChatRequest, ctx: RequestContext) -> tuple[ChatResponse, Served]:
        self.bounds.admit_chat(req)
        return await self.run(
            req.model,
            ctx,
            lambda provider, dep: provider.complete(for_deployment(req, dep), dep, ctx),
            request=req,
        )

    async def stream(
        self, req: ChatRequest, ctx: RequestContext
    ) -> tuple[list[StreamEvent], Batches, Served]:
        """Open the stream on the first deployment that answers: its first batch of events, the
        rest, and who serves it. Failures before the first batch are retried or fall back;
        after it they reach the caller, who must ``aclose()`` the rest."""

        async def open_stream(provider: Provider, dep: Deployment) -> tuple[list[StreamEvent], Batches]:
            batches = provider.stream(for_deployment(req, dep), dep, ctx)
            try:
                return await anext(batches), batches
            except StopAsyncIteration:
                raise UpstreamError(
                    f"{dep.provider} upstream sent an empty stream", provider=dep.provider
                ) from None
            except BaseException:
                await batches.aclose()  # type: ignore[attr-defined]
                raise

        self.bounds.admit_chat(req)
        (first, rest), served = await self.run(req.model, ctx, open_stream, request=req, whole=False)
        return first, self._watched(served.deployment, rest), served

    async def _watched(self, dep: Deployment, rest: Batches) -> Batches:
        """The rest of a stream, still the deployment's: in flight (``least-busy``) until it
        ends, and a failure after the first batch (a reset, a stall, an error event) counts
        towards its ejection as one before it would."""
        self.balancer.started(dep)
        failed = False
        try:
            async for batch in rest:
                yield batch
            self.health.succeeded(dep)
        except GatewayError as err:
            failed = moves_on(err)
            await self.health.failed(dep, err)
            raise
        finally:
            self.balancer.ended(dep, None, failed)
            await rest.aclose()  # type: ignore[attr-defined]

    async def embed(self, req: EmbeddingRequest, ctx: RequestContext) -> tuple[EmbeddingResponse, Served]:
        async def embed(provider: Provider, dep: Deployment) -> EmbeddingResponse:
            assert isinstance(provider, EmbeddingProvider)
            return await provider.embed(for_deployment(req, dep), dep, ctx)

        self.bounds.admit_embedding(req)
        return await self.run(req.model, ctx, embed, capability=EmbeddingProvider, what="embeddings")

    async def count_tokens(self, req: ChatRequest, ctx: RequestContext) -> tuple[int, Served] | None:
        """The provider's own count, or None when no deployment of the model can count."""

        async def count(provider: Provider, dep: Deployment) -> int:
            assert isinstance(provider, TokenCounter)
            return await provider.count_tokens(for_deployment(req, dep), dep, ctx)

        self.bounds.admit_fields(req)  # a count generates nothing: only the steering fields matter
        try:
            return await self.run(req.model, ctx, count, capability=TokenCounter, what="token counting")
        except BadRequest:
            return None

    @staticmethod
    async def _before_next(
        err: GatewayError, dep: Deployment, attempt: int, attempts: int, ctx: RequestContext
    ) -> bool:
        """Log the failure; sleep and return True when the same deployment should be retried."""
        policy = dep.settings.retry
        retry = attempt < policy.max_retries and attempts < MAX_ATTEMPTS and should_retry(err, policy)
        delay = retry_delay(attempt, err, policy) if retry else None
        log.warning(
            "upstream attempt failed",
            extra={
                "request_id": ctx.request_id,
                "model": dep.name,
                "provider": dep.provider,
                "error": type(err).__name__,
                "status": err.upstream_status,
                "detail": err.message,
                "retry_in": delay,
            },
        )
        if delay is None:
            return False
        await asyncio.sleep(delay)
        return True
