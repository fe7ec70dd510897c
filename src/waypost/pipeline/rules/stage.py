"""The rules stage, right after metering (docs/policy.md, "Rules").

* ``before``: the active rules, highest weight first, from memory (``RuleBook``). The first
  enforced rule whose conditions hold acts: ``reroute`` (the request goes to another model; the
  caller must be allowed to use it), ``block`` (refused with the rule's status and message),
  ``allow`` (nothing more is evaluated), ``rewrite`` (its pattern replaced in the messages' text,
  through ``ChatRequest.edit`` so a same-format upstream receives it too). A rule in ``shadow``
  mode that holds is recorded and the walk goes on. Quota conditions read the caller's rolling
  counters first, in one call to the state backend, only when an active rule has one.
* ``after``: a successful request's usage (cost, tokens, one request) is added to the caller's
  quota counters, when a rule has quota conditions.

Every rule that held is on the audit row (``ctx.rules``); the one that acted is named in
``X-Waypost-Applied-Rules``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest, GatewayError
from waypost.pipeline.rules.actions import refusal, reroute, reroute_refused, rewritten
from waypost.pipeline.rules.book import RuleBook
from waypost.pipeline.rules.compile import CompiledRule
from waypost.pipeline.rules.facts import Facts
from waypost.pipeline.rules.quota import Quotas, caller_key
from waypost.pipeline.stage import After, BaseStage, Before
from waypost.routing.router import Router

log = logging.getLogger("waypost.rules")

APPLIED_HEADER = "x-waypost-applied-rules"
DOWN_SECONDS = 5.0  # after the state backend failed, quota conditions are not read this long
UNCOUNTED_ENDPOINTS = frozenset({"count_tokens"})  # nothing used: not counted in quotas


class RulesStage(BaseStage):
    name = "rules"

    def __init__(
        self, book: RuleBook, router: Router, refuse_unpriced: Callable[[str], None] | None = None
    ) -> None:
        self.book = book
        self._router = router
        # ``metering.unpriced: block``: metering checked the requested model, before the rules;
        # a reroute's target is checked here, else a reroute would escape it. None: no check.
        self._refuse_unpriced = refuse_unpriced
        self._down_until = 0.0

    def resolve(self, model: str) -> str | None:
        """The model entry ``model`` resolves to, or None."""
        try:
            return self._router.registry.resolve(model).name
        except GatewayError:
            return None

    def idle(self) -> bool:
        rules = self.book.current
        return not rules.active and rules.quotas is None

    def before(self, ctx: RequestContext) -> Before:
        rules = self.book.current
        if not rules.active or ctx.req is None:
            return None
        facts = Facts(ctx, self.resolve)
        if rules.quotas is not None:  # read from their counters first (Redis: a wait)
            return self._decide_on_quotas(ctx, facts, rules.active, rules.quotas)
        self._decide(ctx, facts, rules.active)
        return None

    def _decide(self, ctx: RequestContext, facts: Facts, active: Sequence[CompiledRule]) -> None:
        for rule in active:
            if not rule.test(facts):
                continue
            if rule.mode == "shadow":
                ctx.rules.append(_entry(rule, "shadow"))
                continue
            self._apply(ctx, facts, rule)
            return

    async def _decide_on_quotas(
        self, ctx: RequestContext, facts: Facts, active: Sequence[CompiledRule], quotas: Quotas
    ) -> None:
        if time.monotonic() >= self._down_until:  # else unknown: quota conditions hold for nobody
            model = facts.model_key() if quotas.per_model else ""
            try:
                facts.quotas = await quotas.read(caller_key(ctx.principal_id), model, time.time())
            except Exception as exc:
                self._state_failed(exc)
        self._decide(ctx, facts, active)

    def _apply(self, ctx: RequestContext, facts: Facts, rule: CompiledRule) -> None:
        entry = _entry(rule, "enforce")
        ctx.rules.append(entry)
        ctx.response_headers[APPLIED_HEADER] = rule.name
        kind = rule.action.type
        req = ctx.req
        assert req is not None
        if kind == "block":
            answer = refusal(rule, facts)
            entry["status"] = answer.status
            raise answer.error()
        if kind == "reroute":
            step = reroute(rule, ctx.principal, self.resolve)
            entry["from"], entry["to"] = req.model, step.target
            if not step.allowed:
                entry["refused"] = True
                raise reroute_refused(rule, step)
            if self._refuse_unpriced is not None:
                try:
                    self._refuse_unpriced(step.target)
                except GatewayError as err:
                    entry["refused"] = True
                    raise BadRequest(
                        f"Rule {rule.name!r} sends this request to model {step.target!r}: {err.message}",
                        param="model",
                    ) from None
            req.edit(model=step.target)
            return
        if kind == "rewrite":
            assert rule.rewrite is not None
            fields, count = rewritten(req, rule.rewrite, rule.name)
            entry["replacements"] = count
            if fields:
                req.edit(**fields)
        # allow: nothing more is evaluated

    def _state_failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.error(
                "rules' quota counters unreadable (%s: %s): quota conditions hold for nobody for %gs",
                type(exc).__name__,
                exc,
                DOWN_SECONDS,
            )
        self._down_until = time.monotonic() + DOWN_SECONDS

    def after(self, ctx: RequestContext) -> After:
        quotas = self.book.current.quotas
        req = ctx.req
        if quotas is None or req is None or ctx.status != 200 or ctx.error is not None:
            return None
        if ctx.endpoint in UNCOUNTED_ENDPOINTS or time.monotonic() < self._down_until:
            return None
        return self._record(ctx, req.model, quotas)

    async def _record(self, ctx: RequestContext, requested: str, quotas: Quotas) -> None:
        """The request's usage into the quota counters its conditions read."""
        usage = ctx.usage
        tokens = usage.input_tokens + usage.output_tokens if usage is not None else 0
        micros = ctx.cost.total_micros if ctx.cost is not None else 0
        model = (self.resolve(requested) or requested) if quotas.per_model else ""
        try:
            await quotas.record(caller_key(ctx.principal_id), model, micros, tokens, time.time())
        except Exception as exc:
            self._state_failed(exc)


def _entry(rule: CompiledRule, mode: str) -> dict[str, Any]:
    """A decision as the audit row keeps it."""
    return {"stage": "rules", "rule": rule.name, "action": rule.action.type, "mode": mode}
