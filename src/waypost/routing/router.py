"""Tries a request's deployments in order: retries with backoff and jitter on retryable
failures before the first byte, then each fallback once. Attempts are bounded."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from waypost.core.errors import GatewayError, UpstreamBadRequest, UpstreamError
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse
from waypost.providers.base import CallContext, Deployment, Provider
from waypost.routing.registry import ModelRegistry
from waypost.settings import RetryPolicy

log = logging.getLogger("waypost.router")

MAX_ATTEMPTS = 16


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


@dataclass(slots=True)
class Served:
    deployment: Deployment
    attempts: int


class Router:
    def __init__(self, registry: ModelRegistry, providers: Mapping[str, Provider]) -> None:
        self.registry = registry
        self.providers = providers

    async def complete(self, req: ChatRequest, ctx: CallContext) -> tuple[ChatResponse, Served]:
        attempts = 0
        last: GatewayError | None = None
        for dep in self.registry.chain(req.model):
            provider = self.providers[dep.provider]
            for attempt in range(dep.settings.retry.max_retries + 1):
                attempts += 1
                try:
                    return await provider.complete(req, dep, ctx), Served(dep, attempts)
                except GatewayError as err:
                    last = err
                    if not await self._before_next(err, dep, attempt, attempts, ctx):
                        break
            if last is not None and not moves_on(last):
                break
            if attempts >= MAX_ATTEMPTS:
                break
        assert last is not None
        raise last

    async def stream(
        self, req: ChatRequest, ctx: CallContext
    ) -> tuple[list[StreamEvent], AsyncIterator[list[StreamEvent]], Served]:
        """Open the stream on the first deployment that answers: its first batch of events, the
        rest, and who serves it. Failures before the first batch are retried or fall back;
        after it they reach the caller, who must ``aclose()`` the rest."""
        attempts = 0
        last: GatewayError | None = None
        for dep in self.registry.chain(req.model):
            provider = self.providers[dep.provider]
            for attempt in range(dep.settings.retry.max_retries + 1):
                attempts += 1
                events = provider.stream(req, dep, ctx)
                try:
                    first = await events.__anext__()
                except StopAsyncIteration:
                    last = UpstreamError(
                        f"{dep.provider} upstream sent an empty stream", provider=dep.provider
                    )
                except GatewayError as err:
                    last = err
                else:
                    return first, events, Served(dep, attempts)
                await _aclose(events)
                if not await self._before_next(last, dep, attempt, attempts, ctx):
                    break
            if last is not None and not moves_on(last):
                break
            if attempts >= MAX_ATTEMPTS:
                break
        assert last is not None
        raise last

    @staticmethod
    async def _before_next(
        err: GatewayError, dep: Deployment, attempt: int, attempts: int, ctx: CallContext
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


async def _aclose(events: AsyncIterator[list[StreamEvent]]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
