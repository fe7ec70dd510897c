"""A dry run of rules on one sample request (``POST /admin/rules/test``): every rule's conditions
with what each read and answered, and what the first enforced rule that holds would do. Nothing
is sent upstream and nothing is counted."""

from __future__ import annotations

import time
from typing import Any

from waypost.core.context import RequestContext
from waypost.core.errors import GatewayError
from waypost.core.types import ChatRequest
from waypost.pipeline.rules.actions import refusal, reroute, reroute_refused, rewritten
from waypost.pipeline.rules.book import Resolve, RuleSet
from waypost.pipeline.rules.compile import CompiledRule
from waypost.pipeline.rules.facts import Facts
from waypost.pipeline.rules.quota import as_mapping, caller_key


async def trial(rules: RuleSet, ctx: RequestContext, resolve: Resolve) -> dict[str, Any]:
    """What ``rules`` make of the request in ``ctx``, condition by condition."""
    facts = Facts(ctx, resolve)
    quota_note = None
    if rules.quotas is not None:
        quotas = rules.quotas
        model = facts.model_key() if quotas.per_model else ""
        try:
            facts.quotas = await quotas.read(caller_key(ctx.principal_id), model, time.time())
        except Exception as exc:
            quota_note = f"the quota counters could not be read ({type(exc).__name__}: {exc})"
    shown: list[dict[str, Any]] = []
    outcome: dict[str, Any] | None = None
    shadowed: list[str] = []
    for rule in rules.all:
        item: dict[str, Any] = {
            "name": rule.name,
            "weight": rule.weight,
            "mode": rule.mode,
            "source": rule.source,
            "action": rule.action.model_dump(mode="json"),
        }
        if rule.mode == "off":
            item["result"] = None
            item["evaluated"] = False
            shown.append(item)
            continue
        result = rule.test(facts)
        item["result"] = result
        item["conditions"] = rule.root.explain(facts)
        applies = bool(result) and outcome is None and rule.mode == "enforce"
        item["applies"] = applies
        if applies:
            outcome = describe(rule, facts, ctx, resolve)
        elif result and outcome is None and rule.mode == "shadow":
            shadowed.append(rule.name)
        shown.append(item)
    req = ctx.req
    answer: dict[str, Any] = {
        "request": {
            "model": req.model if req is not None else None,
            "stream": ctx.stream,
            "user": ctx.principal.email if ctx.principal is not None else None,
            "prompt_tokens": facts.tokens(),
        },
        "rules": shown,
        "outcome": outcome or {"action": "none"},
        "shadow_matches": shadowed,  # recorded on the audit row, not enforced
    }
    if facts.quotas is not None:
        answer["quota"] = as_mapping(facts.quotas)
    if quota_note is not None:
        answer["quota_error"] = quota_note
    return answer


def describe(rule: CompiledRule, facts: Facts, ctx: RequestContext, resolve: Resolve) -> dict[str, Any]:
    """What ``rule``'s action would do to the request, without doing it."""
    out: dict[str, Any] = {"rule": rule.name, "action": rule.action.type}
    req = ctx.req
    assert req is not None
    kind = rule.action.type
    if kind == "block":
        answer = refusal(rule, facts)
        out.update(status=answer.status, message=answer.message, retry_after=answer.retry_after)
        out["values"] = answer.values
    elif kind == "reroute":
        step = reroute(rule, ctx.principal, resolve)
        out.update({"from": req.model, "to": step.target, "allowed": step.allowed})
        if not step.allowed:
            err = reroute_refused(rule, step)
            out["refused"] = {"status": err.status, "message": err.message}
    elif kind == "rewrite":
        assert rule.rewrite is not None
        try:
            fields, count = rewritten(req, rule.rewrite, rule.name)
        except GatewayError as err:  # the text would be left empty: the request is refused
            out["refused"] = {"status": err.status, "message": err.message}
            return out
        out["replacements"] = count
        if "messages" in fields:
            out["messages"] = [
                {"role": m.role, "text": m.text()} for m in fields["messages"] if isinstance(req, ChatRequest)
            ]
        elif "inputs" in fields:
            out["inputs"] = fields["inputs"]
    return out
