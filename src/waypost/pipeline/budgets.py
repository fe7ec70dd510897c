"""Budgets, the stage after metering: reserve, then settle, so that concurrent requests cannot
overshoot (docs/metering.md, "Budgets").

* ``before``: the budgets that apply (the caller's user, each of its groups, its token, the model
  asked for and the one it resolves to, each tag, everyone's), from memory (``BudgetBook``).
  The request's expected cost, its prompt estimate plus its output up to
  ``min(max_tokens, budgets.reservation_cap_tokens)`` at the dearest price of the deployments it
  may go to, is held on all of them in one atomic step, or on none: then the request is refused
  (429, or 402) naming the budget and when it resets (``Retry-After``), or, when that budget has a
  fallback model, goes to the fallback instead (and is reserved for again).
* ``progress``: a stream's usage so far. A stream about to spend more than it holds asks for
  more; with ``cut_off_streams`` a stream whose budget has no more room is ended with an error
  event before it spends past what it holds.
* ``after``: the hold is released and the real cost (``ctx.cost``) added: settled; a failed
  request settles at what it cost, usually nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from waypost.core.context import RequestContext
from waypost.core.errors import BudgetExceeded, GatewayError, Overloaded
from waypost.core.types import ChatRequest, EmbeddingRequest, Usage
from waypost.metering.estimate import estimate_input_tokens, estimate_tokens
from waypost.metering.pricing import PriceBook, Quote
from waypost.pipeline.bounds import output_caps
from waypost.pipeline.budget_alerts import BudgetAlerts
from waypost.pipeline.budget_book import BudgetBook, LiveBudget, usd_text
from waypost.pipeline.stage import After, BaseStage, Before
from waypost.providers.base import Deployment
from waypost.routing.router import Router
from waypost.settings import BudgetSettings
from waypost.state.counters import Counters, Line, Refused, Tally
from waypost.state.memory import MemoryCounters

log = logging.getLogger("waypost.budgets")

STATE = "budgets"  # ctx.state key: the request's Hold
MAX_FALLBACKS = 3  # budget fallbacks followed for one request
DOWN_SECONDS = 5.0  # after the state backend failed, requests skip it this long
LOOKAHEAD = 4  # a stream asks for more this many usage reports before it needs it (Redis)
QUOTES_KEPT = 4096  # models whose deployments' prices are remembered (cleared when full)
HELD_RETRY_AFTER = 1.0  # seconds: a refusal only for what requests in flight hold
FREE_ENDPOINTS = frozenset({"count_tokens"})  # nothing billed: no budget applies


@dataclass(slots=True, eq=False)
class Ask:
    """One request's lines, one per budget, each for the same amount: what it reserves (before
    routing) or what it spent (after the answer: ``step_tokens`` 0)."""

    rid: str
    budgets: list[LiveBudget]
    lines: list[Line]
    micros: int
    tokens: int
    step_tokens: int  # of ``tokens``, the output reserved
    now: float


@dataclass(slots=True, eq=False)
class Hold:
    """What one request holds on its budgets (the same amount on each)."""

    rid: str
    budgets: list[LiveBudget]
    micros: int
    tokens: int
    step_tokens: int  # what a stream asks for when it needs more: its output reservation
    cut_off: bool
    step_micros: int | None = None  # the same in micro-dollars, priced when first needed
    seen_micros: int = 0  # the stream's cost at its last usage report
    seen_tokens: int = 0
    pace_micros: int = 0  # what the last report added
    pace_tokens: int = 0
    pending: asyncio.Task[Refused | None] | None = field(default=None, repr=False)
    asked_micros: int = 0  # what the pending request asks for
    asked_tokens: int = 0
    refused: bool = False  # a request for more was refused: the budget is full
    # The reservation's own prompt and output tokens: usage within both costs no more than it
    # holds (priced at the dearest deployment the request may go to; prices grow with tokens).
    covered_input: int = 0
    covered_output: int = 0


class BudgetStage(BaseStage):
    name = "budgets"

    def __init__(
        self,
        settings: BudgetSettings,
        book: BudgetBook,
        counters: Counters,
        prices: PriceBook,
        router: Router,
        alerts: BudgetAlerts,
    ) -> None:
        self.settings = settings
        self.book = book
        self.counters = counters
        self.prices = prices
        self._router = router
        self.alerts = alerts
        self._cap = settings.reservation_cap_tokens
        self._ttl = settings.reservation_ttl
        self._down_until = 0.0
        # The memory backend answers at once, so a stream's ``progress`` may ask it synchronously.
        self._immediate = counters if isinstance(counters, MemoryCounters) else None
        self._quotes_of: object = None  # the registry ``_quotes_by_model`` was made from
        self._quotes_by_model: dict[str, list[tuple[Quote, str]]] = {}

    # -- before routing -------------------------------------------------------------------------

    def before(self, ctx: RequestContext) -> Before:
        req = ctx.req
        if not self.book or req is None or ctx.endpoint in FREE_ENDPOINTS:
            return None
        memory = self._immediate  # answers at once: no coroutine per request
        if memory is None:
            return self._reserve_waiting(ctx, req)
        tried: list[str] = []
        while (ask := self._reservation(ctx, req)) is not None:
            try:
                refused = memory.reserve_now(ask.rid, ask.lines, now=ask.now, ttl=self._ttl)
            except Exception as exc:
                self._state_failed(exc)
                self._unchecked()
                return None
            if self._reserved(ctx, req, ask, refused, tried):
                return None
        return None

    async def _reserve_waiting(self, ctx: RequestContext, req: ChatRequest | EmbeddingRequest) -> None:
        """``before`` with counters that answer later (Redis)."""
        tried: list[str] = []
        while (ask := self._reservation(ctx, req)) is not None:
            try:
                refused = await self.counters.reserve(ask.rid, ask.lines, now=ask.now, ttl=self._ttl)
            except Exception as exc:
                self._state_failed(exc)
                self._unchecked()
                return
            if self._reserved(ctx, req, ask, refused, tried):
                return

    def _reservation(self, ctx: RequestContext, req: ChatRequest | EmbeddingRequest) -> Ask | None:
        """What the request is to reserve on the budgets that apply to it; None: nothing (none
        apply, or the state backend is down and the request goes on unbudgeted)."""
        budgets = self.book.applicable(ctx.principal, ctx.tags, self._model_names(req.model))
        if not budgets:
            return None
        if time.monotonic() < self._down_until:
            self._unchecked()
            return None
        micros, tokens, step_tokens = self._estimate(req)
        ctx.prompt_estimate = tokens - step_tokens  # what a stream's usage so far starts from
        now = time.time()
        rid = f"{random.getrandbits(64):016x}"  # unique, not secret: no system call
        lines = [b.line(now, micros, tokens) for b in budgets]
        return Ask(rid, budgets, lines, micros, tokens, step_tokens, now)

    def _reserved(
        self,
        ctx: RequestContext,
        req: ChatRequest | EmbeddingRequest,
        ask: Ask,
        refused: Refused | None,
        tried: list[str],
    ) -> bool:
        """After the reservation: held (True); or refused, and the request moved to the
        budget's cheaper fallback model (False: ask again for that one); or refused (raises)."""
        budgets, micros, tokens, step_tokens = ask.budgets, ask.micros, ask.tokens, ask.step_tokens
        if refused is None:
            ctx.state[STATE] = Hold(
                ask.rid,
                budgets,
                micros,
                tokens,
                max(1, step_tokens),
                budgets[0].cut_off if len(budgets) == 1 else any(b.cut_off for b in budgets),
                covered_input=tokens - step_tokens,
                covered_output=step_tokens,
            )
            return True
        budget = budgets[refused.index]
        fallback = budget.fallback
        principal = ctx.principal
        if (
            fallback
            and fallback != req.model
            and fallback not in tried
            and len(tried) < MAX_FALLBACKS
            and (principal is None or principal.may_use(fallback))
        ):
            tried.append(req.model)
            ctx.rules.append(
                {
                    "stage": self.name,
                    "action": "fallback",
                    "budget": budget.name,
                    "from": req.model,
                    "to": fallback,
                }
            )
            req.edit(model=fallback)
            return False
        ctx.rules.append({"stage": self.name, "action": "refused", "budget": budget.name})
        raise self._refusal(budget, refused.tally, micros, tokens, ask.now)

    def _model_names(self, model: str) -> Sequence[str]:
        """The names a model budget may be set on: the one asked for and the model it resolves to."""
        if "model" not in self.book.scopes:
            return ()
        try:
            resolved = self._router.registry.resolve(model).name
        except GatewayError:
            return (model,)
        return (model,) if resolved == model else (model, resolved)

    def _estimate(self, req: ChatRequest | EmbeddingRequest) -> tuple[int, int, int]:
        """The request's reservation (micro-dollars, tokens) and its output tokens."""
        if isinstance(req, ChatRequest):
            prompt = estimate_input_tokens(req)
            caps = output_caps(req)
            if not caps:
                asked = self._cap
            else:
                asked = caps[0][1] if len(caps) == 1 else max(value for _, value in caps)
            output = min(asked, self._cap) * max(1, req.choices)
        else:
            prompt = estimate_tokens(req.inputs) + sum(len(ids) for ids in req.token_inputs or ())
            output = 0
        return (
            self._cost(req.model, prompt, output),
            prompt + output,
            output,
        )

    def _cost(self, model: str, prompt: int, output: int) -> int:
        """What ``prompt`` and ``output`` tokens cost at the dearest deployment ``model`` may go to."""
        micros = 0
        prices = self.prices
        for quote, provider in self._quotes(model):
            cost = prices.reservation_micros(prompt, output, quote, provider)
            if cost > micros:
                micros = cost
        return micros

    def _quotes(self, model: str) -> list[tuple[Quote, str]]:
        """The prices of the deployments ``model`` may go to (those that have one), remembered
        for as long as the router's registry (and the price book's answers) stay the same."""
        registry = self._router.registry
        if registry is not self._quotes_of:
            self._quotes_of, self._quotes_by_model = registry, {}
        known = self._quotes_by_model.get(model)
        if known is None:
            known = []
            for dep in self._deployments(model):
                quote = self.prices.quote(dep.settings, dep.upstream_model)
                if quote is not None:
                    known.append((quote, dep.provider))
            if len(self._quotes_by_model) >= QUOTES_KEPT:
                self._quotes_by_model.clear()
            self._quotes_by_model[model] = known
        return known

    def _deployments(self, model: str) -> list[Deployment]:
        try:
            return self._router.registry.chain(model)
        except GatewayError:
            return []  # the router answers for a model that does not exist or cannot be called

    def _refusal(
        self, budget: LiveBudget, tally: Tally, micros: int, tokens: int, now: float
    ) -> BudgetExceeded:
        rec = budget.record
        if (
            rec.limit_micros is not None
            and tally.spent_micros + tally.held_micros + micros > rec.limit_micros
        ):
            spent, held, limit = tally.spent_micros, tally.held_micros, rec.limit_micros
            used = f"{usd_text(spent)} spent"
            if held:
                used += f" and {usd_text(held)} held by requests in flight"
            need = f"this request needs up to {usd_text(micros)}"
            amount = micros
        else:
            spent, held, limit = tally.spent_tokens, tally.held_tokens, rec.limit_tokens or 0
            used = f"{spent:,} tokens spent"
            if held:
                used += f" and {held:,} held by requests in flight"
            need = f"this request needs up to {tokens:,} tokens"
            amount = tokens
        resets = self._resets_at(budget, tally, now)
        if spent + amount <= limit:
            # Only what requests in flight hold is in the way: room comes back as they finish.
            when, retry_after = "Room comes back as the requests in flight finish.", HELD_RETRY_AFTER
        elif resets is None:
            when = "It does not reset by itself (a total budget): an administrator can raise or reset it."
            retry_after = None
        else:
            when = f"It resets at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(resets))}."
            retry_after = max(1.0, math.ceil(resets - now))
        return BudgetExceeded(
            f"Budget {budget.describe()} has no room for this request: {used}, {need}. {when}",
            status=budget.status,
            retry_after=retry_after,
        )

    def _resets_at(self, budget: LiveBudget, tally: Tally, now: float) -> float | None:
        """When room comes back: the period's end, or, in a rolling window, when its oldest spend
        leaves it (held reservations come back sooner, as requests finish)."""
        s = budget.span(now)
        if s.step is not None and tally.oldest >= 0:
            return float((tally.oldest + (s.bucket - s.first) + 1) * s.step)
        return s.resets_at.timestamp() if s.resets_at is not None else None

    def _state_failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            mode = (
                "refused (503)" if self.settings.when_state_unavailable == "refuse" else "served unbudgeted"
            )
            log.error(
                "budget state backend failed (%s: %s): requests with budgets are %s for %gs",
                type(exc).__name__,
                exc,
                mode,
                DOWN_SECONDS,
            )
        self._down_until = time.monotonic() + DOWN_SECONDS

    def _unchecked(self) -> None:
        """The state backend is down: go on unbudgeted, or refuse (``when_state_unavailable``)."""
        if self.settings.when_state_unavailable == "refuse":
            raise Overloaded("Budgets cannot be checked right now (the state backend does not answer).")

    # -- while a stream runs --------------------------------------------------------------------

    def progress(self, ctx: RequestContext, usage: Usage) -> GatewayError | None:
        hold: Hold | None = ctx.state.get(STATE)
        if hold is None:
            return None
        if (
            ctx.usage is not usage  # an estimate of the output so far (no cache tokens in it)
            and usage.input_tokens <= hold.covered_input
            and usage.output_tokens + (LOOKAHEAD + 1) * hold.pace_tokens <= hold.covered_output
        ):
            # Well within what the reservation was made for, even a few reports ahead: it costs
            # less than the hold, and nothing need be priced or asked for yet.
            return None
        cost = ctx.cost if ctx.usage is usage else None
        micros = cost.total_micros if cost is not None else self._price(ctx, usage)
        tokens = usage.input_tokens + usage.output_tokens
        hold.pace_micros = max(0, micros - hold.seen_micros)
        hold.pace_tokens = max(0, tokens - hold.seen_tokens)
        hold.seen_micros, hold.seen_tokens = micros, tokens
        self._absorb(hold)
        # What the stream will have spent at its next report, at the pace of the last one.
        need_micros, need_tokens = micros + hold.pace_micros, tokens + hold.pace_tokens
        if need_micros <= hold.micros and need_tokens <= hold.tokens:
            ahead_micros = micros + LOOKAHEAD * hold.pace_micros
            ahead_tokens = tokens + LOOKAHEAD * hold.pace_tokens
            if self._immediate is None and (ahead_micros > hold.micros or ahead_tokens > hold.tokens):
                self._ask(ctx, hold, ahead_micros - hold.micros, ahead_tokens - hold.tokens)
            return None
        more_micros, more_tokens = max(0, need_micros - hold.micros), max(0, need_tokens - hold.tokens)
        now = time.time()
        memory = self._immediate
        if memory is None:
            self._ask(ctx, hold, more_micros, more_tokens)
            return self._cut(ctx, hold) if hold.cut_off else None
        lines = [b.line(now, more_micros, more_tokens) for b in hold.budgets]
        if (
            not hold.refused
            and memory.reserve_now(hold.rid, lines, now=now, ttl=self._ttl, strict=hold.cut_off) is None
        ):
            hold.micros += more_micros
            hold.tokens += more_tokens
            return None
        hold.refused = True
        if hold.cut_off:
            return self._cut(ctx, hold)
        # No cut-off: the stream goes on; what it spends past its hold is held unchecked, so that
        # requests arriving meanwhile see it.
        memory.reserve_now(hold.rid, lines, now=now, ttl=self._ttl, strict=False)
        hold.micros += more_micros
        hold.tokens += more_tokens
        return None

    def _ask(self, ctx: RequestContext, hold: Hold, micros: int, tokens: int) -> None:
        """Ask the (remote) counters for more, without waiting: a later report sees the answer."""
        if hold.pending is not None or (hold.refused and hold.cut_off):
            return
        if hold.step_micros is None:
            model = ctx.req.model if ctx.req is not None else ""
            hold.step_micros = max(1, self._cost(model, 0, hold.step_tokens))
        micros = max(micros, hold.step_micros, 0)
        tokens = max(tokens, hold.step_tokens, 0)
        now = time.time()
        lines = [b.line(now, micros, tokens) for b in hold.budgets]
        # Without cut-off the stream goes on whatever the answer: what it will spend is held
        # unchecked, so that requests arriving meanwhile see it.
        strict = hold.cut_off and not hold.refused
        hold.asked_micros, hold.asked_tokens = micros, tokens
        hold.pending = asyncio.get_running_loop().create_task(
            self.counters.reserve(hold.rid, lines, now=now, ttl=self._ttl, strict=strict)
        )

    def _absorb(self, hold: Hold) -> None:
        """Take in the answer to a request for more, if it came."""
        task = hold.pending
        if task is None or not task.done():
            return
        hold.pending = None
        try:
            refused = task.result()
        except Exception as exc:
            self._state_failed(exc)
            return
        if refused is None:
            hold.micros += hold.asked_micros
            hold.tokens += hold.asked_tokens
        else:
            hold.refused = True

    def _cut(self, ctx: RequestContext, hold: Hold) -> GatewayError:
        budget = hold.budgets[0]
        ctx.rules.append({"stage": self.name, "action": "cut_off", "budget": budget.name})
        names = ", ".join(b.describe() for b in hold.budgets)
        err = BudgetExceeded(
            f"The stream was ended: it reached what its budget allows ({names}; "
            f"{usd_text(hold.seen_micros)} and {hold.seen_tokens:,} tokens used).",
            status=budget.status,
        )
        return err

    def _price(self, ctx: RequestContext, usage: Usage) -> int:
        served = ctx.served
        if served is None:
            return 0
        dep = served.deployment
        quote = self.prices.quote(dep.settings, dep.upstream_model)
        return 0 if quote is None else self.prices.micros(usage, quote, dep.provider)

    # -- after the answer -----------------------------------------------------------------------

    def after(self, ctx: RequestContext) -> After:
        hold: Hold | None = ctx.state.pop(STATE, None)
        if hold is None:
            if not self.book or "model" not in self.book.scopes or ctx.served is None:
                return None
            hold = Hold("", [], 0, 0, 1, False)  # nothing held: a served model's budgets may be charged
        memory = self._immediate
        if hold.pending is not None or memory is None:
            return self._settle_waiting(ctx, hold)
        self._settle_in_memory(ctx, hold, memory)
        return None

    def _settle_in_memory(self, ctx: RequestContext, hold: Hold, memory: MemoryCounters) -> None:
        settling = self._settlement(ctx, hold)
        if settling is None:
            return
        try:
            before = memory.settle_now(hold.rid, settling.lines, now=settling.now)
        except Exception as exc:
            self._settle_lost(ctx, settling, exc)
            return
        self._alert(settling, before)

    async def _settle_waiting(self, ctx: RequestContext, hold: Hold) -> None:
        """``after`` with counters that answer later, or a stream's request for more pending."""
        if hold.pending is not None:
            await asyncio.gather(hold.pending, return_exceptions=True)
        if self._immediate is not None:
            self._settle_in_memory(ctx, hold, self._immediate)
            return
        settling = self._settlement(ctx, hold)
        if settling is None:
            return
        try:
            before = await self.counters.settle(hold.rid, settling.lines, now=settling.now)
        except Exception as exc:
            self._settle_lost(ctx, settling, exc)
            return
        self._alert(settling, before)

    def _settlement(self, ctx: RequestContext, hold: Hold) -> Ask | None:
        """What the request spent, on each budget it held or its served model's; None: none."""
        usage = ctx.usage
        if ctx.cost is not None:
            micros = ctx.cost.total_micros
        else:
            micros = self._price(ctx, usage) if usage is not None else 0
        tokens = usage.input_tokens + usage.output_tokens if usage is not None else 0
        extra = self._served_model_budgets(ctx, hold.budgets)
        budgets = hold.budgets + extra if extra else hold.budgets
        if not budgets:
            return None
        now = time.time()
        lines: list[Line] = [b.line(now, micros, tokens) for b in budgets]
        return Ask(hold.rid, budgets, lines, micros, tokens, 0, now)

    def _settle_lost(self, ctx: RequestContext, settling: Ask, exc: Exception) -> None:
        self._state_failed(exc)
        log.error(
            "budget settlement lost for request %s (%s): a reset keeping the usage recounts it",
            ctx.request_id,
            usd_text(settling.micros),
        )

    def _alert(self, settling: Ask, before: Sequence[Tally]) -> None:
        for budget, tally in zip(settling.budgets, before, strict=True):
            self.alerts.check(budget, tally, settling.micros, settling.tokens, settling.now)

    def _served_model_budgets(self, ctx: RequestContext, held: list[LiveBudget]) -> list[LiveBudget]:
        """Budgets on the model that served (a router fallback), which the reservation did not
        cover: they are charged what was spent."""
        served: Any = ctx.served
        if served is None or "model" not in self.book.scopes:
            return []
        extra = self.book.applicable(None, (), (served.deployment.name,))
        ids = {b.id for b in held}  # the book may have been reloaded since: same budgets, new objects
        return [b for b in extra if b.id not in ids]
