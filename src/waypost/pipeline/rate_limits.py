"""Rate limits, the stage after the rules and transformations and before budgets (docs/policy.md,
"Rate limits").

* ``before``: the limits that apply (the caller's token, user, groups, the model asked for and the
  one it resolves to, or the default for a user without a limit of its own), from memory
  (``RateLimitBook``). One atomic step counts the request in every window of each and takes a
  concurrency slot on each, or does nothing and refuses it: 429 in the caller's format with
  ``Retry-After``, naming the limit. A window limiting tokens counts the request's prompt
  estimate plus its output up to ``min(max_tokens, rate_limits.reservation_cap_tokens)``. The
  remaining allowance goes into the answer's headers (``rate_headers``), refused or not.
* ``after``: the tokens counted are corrected to the real usage, a request that never reached an
  upstream (refused by a later stage, failed before) is uncounted, and the slots are freed,
  whatever happened (an error, a client gone).

With Redis (``state.backend: redis``) the counters are shared by every worker and replica. When
Redis does not answer, a circuit breaker keeps requests off it for ``breaker_seconds``; meanwhile
requests are counted in the process (``when_state_unavailable: local``) or refused with a 503
(``fail_closed``). Each call is bounded by the state's socket timeout: never a hang.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from waypost.core.context import RequestContext
from waypost.core.errors import GatewayError, Overloaded, RateLimited
from waypost.core.types import ChatRequest, EmbeddingRequest
from waypost.metering.estimate import estimate_input_tokens, estimate_tokens
from waypost.pipeline.bounds import output_caps
from waypost.pipeline.rate_book import LiveLimit, LiveWindow, RateLimitBook, period_words
from waypost.pipeline.rate_headers import allowance_headers, window_headers
from waypost.pipeline.stage import After, BaseStage, Before
from waypost.routing.router import Router
from waypost.settings import RateLimitSettings
from waypost.state.rate import (
    CONCURRENCY,
    DIMENSIONS,
    NONE,
    REQUESTS,
    Amounts,
    Correction,
    Level,
    Line,
    MemoryRateCounters,
    RateCounters,
    SlotLine,
    Verdict,
    WindowLine,
)

log = logging.getLogger("waypost.rate_limits")

STATE = "rate_limits"  # ctx.state key: what the request took
FREE_ENDPOINTS = frozenset({"count_tokens"})  # counting tokens generates nothing: no limit applies
ONE_REQUEST: Amounts = (1, 0, 0, 0)  # what a request counts where no window limits tokens
SLOT_RETRY_AFTER = 1.0  # seconds: a slot comes back when a request in flight ends
RELEASE_ATTEMPTS = 5  # tries to free the slots of a check whose answer was lost


class RequestOverLimit(RateLimited):
    """The request alone needs more than a window allows: waiting does not help."""

    retryable = False


class LimitsUnavailable(Overloaded):
    """Redis does not answer and ``when_state_unavailable`` is ``fail_closed``: 503 for every
    caller (Anthropic's own overload status is 529; this is the gateway's state, not the model's)."""

    @property
    def anthropic_status(self) -> int:
        return 503


@dataclass(slots=True, eq=False)
class Taking:
    """What a request asks for: its lines, the limit (and window: None for a slot) of each, its
    window lines with their windows, and its slots' keys."""

    lines: list[Line]
    owners: list[tuple[LiveLimit, LiveWindow | None]]
    counted: list[tuple[WindowLine, LiveWindow]]
    slots: list[str]


@dataclass(slots=True, eq=False)
class Taken:
    """What one request holds: where it counted, and its slots."""

    rid: str
    counters: RateCounters
    windows: list[tuple[WindowLine, LiveWindow]]
    slots: list[str]


class RateLimitStage(BaseStage):
    name = "rate_limits"

    def __init__(
        self,
        settings: RateLimitSettings,
        book: RateLimitBook,
        router: Router,
        remote: RateCounters | None = None,
        *,
        timeout: float = 1.0,
    ) -> None:
        self.settings = settings
        self.book = book
        self._router = router
        self.remote = remote  # Redis; None: the process's memory is the backend
        self.local = MemoryRateCounters()
        self._timeout = timeout * 2  # a connect and one immediate retry, each within the timeout
        self._cap = settings.reservation_cap_tokens
        self._open_until = 0.0  # the circuit breaker: Redis is skipped until then
        self._slot_ttl = settings.slot_ttl
        self._rids = secrets.token_hex(6) + ":"
        self._taken = 0
        self._releases: set[asyncio.Task[None]] = set()

    @property
    def counters(self) -> RateCounters:
        """Where counts are kept when Redis answers (what the admin API reads)."""
        return self.remote if self.remote is not None else self.local

    async def levels(self, lines: Sequence[Line], now: float) -> list[Level] | None:
        """Where ``lines`` stand, for the admin API; None when the state backend does not answer."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self.counters.peek(lines, now=now)
        except Exception:
            return None

    # -- before routing -------------------------------------------------------------------------

    def idle(self) -> bool:
        return not self.book.limits

    def before(self, ctx: RequestContext) -> Before:
        book = self.book
        req = ctx.req
        if not book or req is None or ctx.endpoint in FREE_ENDPOINTS:
            return None
        limits = book.applicable(ctx.principal, self._model_names(req.model))
        if not limits:
            return None
        if len(limits) == 1 and self.remote is None:
            limit = limits[0]
            if limit.concurrency is None and len(limit.windows) == 1:
                self._one_window(ctx, req, limit)
                return None
        amounts: Amounts = ONE_REQUEST
        for limit in limits:
            if limit.counts_tokens:
                amounts = self._estimate(req)
                break
        now = time.time()
        principal = ctx.principal
        taking = Taking([], [], [], [])
        lines, owners, counted = taking.lines, taking.owners, taking.counted
        for limit in limits:
            key = limit.counter_key(principal)
            for window in limit.windows:
                line = window.line(key, now, amounts)
                lines.append(line)
                owners.append((limit, window))
                counted.append((line, window))
            if limit.concurrency is not None:
                slot = SlotLine(key + ":c", limit.concurrency, self._slot_ttl)
                lines.append(slot)
                owners.append((limit, None))
                taking.slots.append(slot.key)
        self._taken += 1
        rid = f"{self._rids}{self._taken}"  # names the request's slots: unique across processes
        if self.remote is None:  # the process's memory: answers at once
            self._decide(ctx, rid, taking, self.local, self.local.acquire_now(rid, lines, now=now), now)
            return None
        return self._acquire_remote(ctx, rid, taking, now)

    def _one_window(self, ctx: RequestContext, req: ChatRequest | EmbeddingRequest, limit: LiveLimit) -> None:
        """``before`` for the common case, one limit of one window counted in this process:
        what the general path does, without its lists (a window takes no slot: no request id)."""
        window = limit.windows[0]
        now = time.time()
        amounts = self._estimate(req) if limit.counts_tokens else ONE_REQUEST
        line = window.line(limit.counter_key(ctx.principal), now, amounts)
        verdict = self.local.acquire_now("", (line,), now=now)
        if self.settings.headers:
            window_headers(
                ctx.client_format == "anthropic", window, verdict.levels[0], now, ctx.response_headers
            )
        if not verdict.admitted:
            self._refuse(ctx, limit, window, line, verdict, now)
        ctx.state[STATE] = Taken("", self.local, [(line, window)], [])

    async def _acquire_remote(self, ctx: RequestContext, rid: str, taking: Taking, now: float) -> None:
        counters, verdict = await self._acquire(rid, taking.lines, now)
        self._decide(ctx, rid, taking, counters, verdict, now)

    def _decide(
        self,
        ctx: RequestContext,
        rid: str,
        taking: Taking,
        counters: RateCounters,
        verdict: Verdict,
        now: float,
    ) -> None:
        """Headers for the request's windows; then refuse it, or note what it took."""
        counted, owners = taking.counted, taking.owners
        if len(owners) == 1 and counted and self.settings.headers:  # one window, no slot
            window_headers(
                ctx.client_format == "anthropic", counted[0][1], verdict.levels[0], now, ctx.response_headers
            )
        elif counted and self.settings.headers:
            levels = verdict.levels
            windows = [window for _, window in counted]
            at = [levels[i] for i, (_, window) in enumerate(owners) if window is not None]
            ctx.response_headers.update(allowance_headers(ctx.client_format == "anthropic", windows, at, now))
        if not verdict.admitted:
            refusing, refused_window = owners[verdict.refused]
            self._refuse(ctx, refusing, refused_window, taking.lines[verdict.refused], verdict, now)
        ctx.state[STATE] = Taken(rid, counters, counted, taking.slots)

    def _refuse(
        self,
        ctx: RequestContext,
        limit: LiveLimit,
        window: LiveWindow | None,
        line: Line,
        verdict: Verdict,
        now: float,
    ) -> NoReturn:
        ctx.rules.append(
            {
                "stage": self.name,
                "action": "refused",
                "limit": limit.name,
                "on": DIMENSIONS[verdict.dimension],
            }
        )
        raise self._refusal(limit, window, line, verdict, now)

    def _model_names(self, model: str) -> Sequence[str]:
        """The names a model limit may be set on: the one asked for and the model it resolves to."""
        if "model" not in self.book.scopes:
            return ()
        try:
            resolved = self._router.registry.resolve(model).name
        except GatewayError:
            return (model,)
        return (model,) if resolved == model else (model, resolved)

    def _estimate(self, req: ChatRequest | EmbeddingRequest) -> Amounts:
        """One request, its tokens, its prompt estimate and its output reservation (as budgets
        reserve: the output up to min(max_tokens, the cap), for each choice)."""
        if isinstance(req, ChatRequest):
            prompt = estimate_input_tokens(req)
            caps = output_caps(req)
            asked = max(value for _, value in caps) if caps else self._cap
            output = min(asked, self._cap) * max(1, req.choices)
        else:
            prompt = estimate_tokens(req.inputs) + sum(len(ids) for ids in req.token_inputs or ())
            output = 0
        return (1, prompt + output, prompt, output)

    async def _acquire(self, rid: str, lines: Sequence[Line], now: float) -> tuple[RateCounters, Verdict]:
        remote = self.remote
        if remote is None:
            return self.local, self.local.acquire_now(rid, lines, now=now)
        if time.monotonic() >= self._open_until:
            try:
                async with asyncio.timeout(self._timeout):
                    return remote, await remote.acquire(rid, lines, now=now)
            except Exception as exc:
                self._trip(exc)
                slots = [line.key for line in lines if isinstance(line, SlotLine)]
                if slots:
                    self._release_later(remote, rid, slots)
        if self.settings.when_state_unavailable == "fail_closed":
            raise LimitsUnavailable(
                "Rate limits cannot be checked right now (the state backend does not answer); "
                "try again shortly."
            )
        return self.local, self.local.acquire_now(rid, lines, now=now)

    def _release_later(self, remote: RateCounters, rid: str, slots: list[str]) -> None:
        """Free the slots a failed acquire may have taken after all: Redis may have run the
        script and only its answer been lost (a timeout), and a slot nobody releases would hold
        a place of a concurrency limit for ``slot_ttl``. Releasing a slot never taken is a no-op;
        tried once Redis is due to be tried again, then a few times more."""

        async def release() -> None:
            for attempt in range(RELEASE_ATTEMPTS):
                await asyncio.sleep(self.settings.breaker_seconds * (attempt + 1))
                try:
                    async with asyncio.timeout(self._timeout):
                        await remote.settle(rid, [], slots, now=time.time())
                    return
                except Exception:
                    continue
            log.warning(
                "rate-limit slots of a request whose check timed out could not be released; they "
                "free themselves within %gs",
                self.settings.slot_ttl,
            )

        task = asyncio.get_running_loop().create_task(release())
        self._releases.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._releases.discard)

    def _trip(self, exc: BaseException) -> None:
        """Open the circuit breaker: Redis is not tried again for ``breaker_seconds``."""
        if time.monotonic() >= self._open_until:
            mode = (
                "refused (503)"
                if self.settings.when_state_unavailable == "fail_closed"
                else "counted in each process"
            )
            log.error(
                "rate-limit state backend failed (%s: %s): requests with limits are %s for %gs",
                type(exc).__name__,
                exc,
                mode,
                self.settings.breaker_seconds,
            )
        self._open_until = time.monotonic() + self.settings.breaker_seconds

    def _refusal(
        self, limit: LiveLimit, window: LiveWindow | None, line: Line, verdict: Verdict, now: float
    ) -> RateLimited:
        used = verdict.levels[verdict.refused].used
        d = verdict.dimension
        if window is None or d == CONCURRENCY:
            assert isinstance(line, SlotLine)
            return RateLimited(
                f"Rate limit {limit.describe()} reached: {used[0]:,} requests in flight, as many as "
                "it allows at once. Try again when one of them finishes.",
                retry_after=SLOT_RETRY_AFTER,
            )
        assert isinstance(line, WindowLine)
        what = DIMENSIONS[d].replace("_", " ")
        need, cap = line.amounts[d], window.limits[d]
        per = period_words(window.seconds)
        if need > cap:
            return RequestOverLimit(
                f"This request needs up to {need:,} {what}, more than rate limit {limit.describe()} "
                f"allows in a {per}: send a shorter prompt or a lower max_tokens."
            )
        if d == REQUESTS:
            counted = f"{used[d]:,} requests in the last {per}"
        else:
            counted = f"{used[d]:,} {what} counted in the last {per} and this request needs up to {need:,}"
        retry_after = None
        when = ""
        if verdict.frees_at != NONE:
            retry_after = max(1.0, math.ceil(window.resets_at(verdict.frees_at) - now))
            when = f" Try again in {int(retry_after)}s."
        return RateLimited(
            f"Rate limit {limit.describe()} reached: {counted}.{when}", retry_after=retry_after
        )

    # -- after the answer -----------------------------------------------------------------------

    def after(self, ctx: RequestContext) -> After:
        taken: Taken | None = ctx.state.pop(STATE, None)
        if taken is None:
            return None
        usage = ctx.usage
        real_in = usage.input_tokens if usage is not None else 0
        real_out = usage.output_tokens if usage is not None else 0
        # A request no upstream (nor a stage) answered did not use what limits protect.
        reached = bool(ctx.attempts) or ctx.answered_by is not None or ctx.status == 200
        real = (1 if reached else 0, real_in + real_out, real_in, real_out)
        now = time.time()
        corrections: list[Correction] = []
        for line, window in taken.windows:
            limits, reserved = line.limits, line.amounts
            deltas = (
                real[0] - reserved[0] if limits[0] != NONE else 0,
                real[1] - reserved[1] if limits[1] != NONE else 0,
                real[2] - reserved[2] if limits[2] != NONE else 0,
                real[3] - reserved[3] if limits[3] != NONE else 0,
            )
            if deltas != (0, 0, 0, 0):
                current = max(window.bucket(now), line.bucket)
                corrections.append(
                    Correction(line.key, line.bucket, current - line.span + 1, current, line.ttl, deltas)
                )
        if not corrections and not taken.slots:
            return None
        if taken.counters is self.local:
            self.local.settle_now(taken.rid, corrections, taken.slots, now=now)
            return None
        return self._settle_remote(ctx, taken, corrections, now)

    async def _settle_remote(
        self, ctx: RequestContext, taken: Taken, corrections: list[Correction], now: float
    ) -> None:
        counters = taken.counters
        try:
            async with asyncio.timeout(self._timeout):
                await counters.settle(taken.rid, corrections, taken.slots, now=now)
        except Exception as exc:
            self._trip(exc)
            log.error(
                "rate-limit settlement lost for request %s (%s): its slots free themselves within %gs",
                ctx.request_id,
                type(exc).__name__,
                self.settings.slot_ttl,
            )
