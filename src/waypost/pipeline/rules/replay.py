"""Draft rules replayed over the audit log (``POST /admin/rules/test`` with ``replay``): for each
request recorded in a time range, what the draft would decide, against what was decided then;
which decisions would change, counted and with examples.

A row holds who called, the model, whether it streamed, what it used and the rules' decisions;
its body only when ``audit.log_bodies`` was on. What a row does not hold cannot be evaluated:
headers never, the other parameters and the text only with a body. A rule whose answer depends on
such a condition leaves the request undetermined, and the report names the condition and why.
Quota conditions are evaluated from the recorded usage itself, replayed in order into counters of
their own (beginning one window before the range).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from waypost.core.context import RequestContext
from waypost.core.types import ChatRequest, EmbeddingRequest
from waypost.pipeline.rules.book import Resolve, RuleSet
from waypost.pipeline.rules.compile import CompiledRule
from waypost.pipeline.rules.facts import NO_BODY, NO_HEADERS, NO_QUOTA, UNKNOWN, Facts, Unknown
from waypost.pipeline.rules.quota import Quotas, caller_key
from waypost.state.memory import MemoryCounters
from waypost.store import Store
from waypost.wire.anthropic import messages as anthropic_messages
from waypost.wire.openai import chat as openai_chat
from waypost.wire.openai import completions as openai_completions
from waypost.wire.openai import embeddings as openai_embeddings

HISTORY_LIMIT = 100_000  # rows read before the range to fill the quota counters
Decision = tuple[str, str] | None  # (rule, action) of the rule that acted; None: none did

_DECODERS: dict[str, Callable[[Any], ChatRequest | EmbeddingRequest]] = {
    "chat": openai_chat.decode_request,
    "messages": anthropic_messages.decode_request,
    "count_tokens": anthropic_messages.decode_request,
    "completions": openai_completions.decode_request,
    "embeddings": openai_embeddings.decode_request,
}


def _decode(row: dict[str, Any]) -> tuple[ChatRequest | EmbeddingRequest | None, Any]:
    """The row's request decoded from its (masked) body, and the body; (None, None) without one."""
    text = row.get("request_body")
    decoder = _DECODERS.get(row.get("endpoint") or "")
    if not text or decoder is None:
        return None, None
    try:
        body = orjson.loads(text)
        return decoder(body), body
    except Exception:
        return None, None  # a body that no longer decodes (cut, masked into something else)


def _decisions(row: dict[str, Any]) -> list[dict[str, Any]]:
    value = row.get("rules")
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
    return [e for e in value or () if isinstance(e, dict) and e.get("stage") == "rules"]


def recorded(row: dict[str, Any]) -> Decision:
    """The decision made when the request was served: the enforced rule that acted, if any."""
    for entry in _decisions(row):
        if entry.get("mode", "enforce") == "enforce":
            return str(entry.get("rule")), str(entry.get("action"))
    return None


class RowFacts(Facts):
    """What a recorded request tells the conditions."""

    __slots__ = ("_model", "row")

    def __init__(self, row: dict[str, Any], resolve: Resolve) -> None:
        ctx = RequestContext(
            str(row["request_id"]),
            str(row.get("client_format") or ""),
            str(row.get("endpoint") or ""),
            stream=bool(row.get("stream")),
        )
        super().__init__(ctx, resolve)
        self.row = row
        ctx.req, body = _decode(row)
        # The model asked for: the body's, or the one a reroute started from (the row's
        # ``requested_model`` is the model after the rules).
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str):
            model = next(
                (e.get("from") for e in _decisions(row) if e.get("action") == "reroute" and e.get("from")),
                row.get("requested_model"),
            )
        self._model = model

    @property
    def has_body(self) -> bool:
        return self.ctx.req is not None

    def model(self) -> str | Unknown:
        return self._model if isinstance(self._model, str) else UNKNOWN

    def parameter(self, name: str) -> Any:
        if name == "stream":
            return bool(self.row.get("stream"))
        return UNKNOWN if self.ctx.req is None else super().parameter(name)

    def header(self, name: str) -> str | Unknown | None:
        return UNKNOWN

    def text(self, target: str) -> str | Unknown:
        return UNKNOWN if self.ctx.req is None else super().text(target)

    def tokens(self) -> int | Unknown:
        if self.ctx.req is not None:
            return super().tokens()
        row = self.row  # without a body: the prompt as the upstream counted it
        return (
            int(row.get("input_tokens") or 0)
            + int(row.get("cache_read_tokens") or 0)
            + int(row.get("cache_write_tokens") or 0)
        )

    def why_unknown(self, kind: str) -> str:
        if kind == "header":
            return NO_HEADERS
        return NO_QUOTA if kind == "quota" else NO_BODY


def decide(rules: RuleSet, facts: Facts) -> tuple[Decision | Unknown, CompiledRule | None, list[str]]:
    """The draft's decision (``UNKNOWN``: it depends on what the row does not hold), the rule
    whose answer was unknown, and the shadow rules that held on the way."""
    shadow: list[str] = []
    for rule in rules.active:
        result = rule.test(facts)
        if rule.mode == "shadow":
            if result:
                shadow.append(rule.name)
            continue
        if result is None:
            return UNKNOWN, rule, shadow
        if result:
            return (rule.name, rule.action.type), rule, shadow
    return None, None, shadow


def _shown(decision: Decision) -> dict[str, str] | None:
    return None if decision is None else {"rule": decision[0], "action": decision[1]}


def _usage_tokens(row: dict[str, Any]) -> int:
    return sum(
        int(row.get(c) or 0)
        for c in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
    )


async def replay(
    store: Store,
    rules: RuleSet,
    since: datetime,
    until: datetime,
    resolve: Resolve,
    *,
    limit: int = 1000,
    examples: int = 10,
) -> dict[str, Any]:
    """The report of ``rules`` replayed over the requests recorded in [since, until)."""
    quotas: Quotas | None = None
    history = 0
    history_truncated = False
    if rules.quotas is not None:
        quotas = Quotas(MemoryCounters(), rules.quotas.specs)
        widest = max(s.window for s in quotas.specs)
        earlier = store.rules.requests(
            since - timedelta(seconds=widest), since, limit=HISTORY_LIMIT + 1, with_bodies=False, page=5000
        )
        seen = 0
        async for row in earlier:
            seen += 1
            if seen > HISTORY_LIMIT:
                history_truncated = True
                break
            history += await _count(quotas, row, resolve)
    replayed = 0
    truncated = False
    counts: Counter[str] = Counter()
    transitions: Counter[tuple[Decision, Decision]] = Counter()
    per_rule: dict[str, Counter[str]] = {r.name: Counter() for r in rules.all}
    unknown: Counter[tuple[str, str, str]] = Counter()
    shown: list[dict[str, Any]] = []
    async for row in store.rules.requests(since, until, limit=limit + 1):
        replayed += 1
        if replayed > limit:
            truncated = True
            break
        facts = RowFacts(row, resolve)
        counts["with_body"] += facts.has_body
        if quotas is not None:
            model = facts.model_key() if quotas.per_model else ""
            facts.quotas = await quotas.read(
                caller_key(row.get("user_id")), model, row["created_at"].timestamp()
            )
        then = recorded(row)
        now, rule, shadow = decide(rules, facts)
        for name in shadow:
            per_rule[name]["shadow_matches"] += 1
        if isinstance(now, Unknown):
            assert rule is not None
            counts["undetermined"] += 1
            per_rule[rule.name]["undetermined"] += 1
            for leaf in rule.root.unknown_leaves(facts):
                unknown[(rule.name, leaf.label, facts.why_unknown(leaf.kind))] += 1
        else:
            if now is not None:
                per_rule[now[0]]["would_apply"] += 1
            if now == then:
                counts["unchanged"] += 1
            else:
                counts["changed"] += 1
                transitions[(then, now)] += 1
                if len(shown) < examples:
                    shown.append(
                        {
                            "request_id": row["request_id"],
                            "created_at": row["created_at"].isoformat(),
                            "user": row.get("user_email"),
                            "endpoint": row.get("endpoint"),
                            "model": facts.model() if isinstance(facts.model(), str) else None,
                            "before": _shown(then),
                            "after": _shown(now),
                        }
                    )
        if quotas is not None:
            await _count(quotas, row, resolve)
    report: dict[str, Any] = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "requests": min(replayed, limit),
        "truncated": truncated,
        "with_body": counts["with_body"],
        "unchanged": counts["unchanged"],
        "changed": counts["changed"],
        "undetermined": counts["undetermined"],
        "transitions": [
            {"from": _shown(a), "to": _shown(b), "requests": n} for (a, b), n in transitions.most_common()
        ],
        "rules": [
            {
                "name": r.name,
                "mode": r.mode,
                "would_apply": per_rule[r.name]["would_apply"],
                "undetermined": per_rule[r.name]["undetermined"],
                "shadow_matches": per_rule[r.name]["shadow_matches"],
            }
            for r in rules.all
        ],
        "unevaluable": [
            {"rule": name, "condition": label, "reason": why, "requests": n}
            for (name, label, why), n in unknown.most_common()
        ],
        "examples": shown,
    }
    if quotas is not None:
        report["quota_history"] = {"requests": history, "truncated": history_truncated}
    return report


async def _count(quotas: Quotas, row: dict[str, Any], resolve: Resolve) -> int:
    """A recorded request into the replay's quota counters, as the stage counts a live one."""
    if row.get("status") != 200 or row.get("endpoint") == "count_tokens":
        return 0
    model = ""
    if quotas.per_model:
        asked = row.get("requested_model") or ""
        model = resolve(asked) or row.get("model") or asked
    await quotas.record(
        caller_key(row.get("user_id")),
        model,
        int(row.get("cost_micros") or 0),
        _usage_tokens(row),
        row["created_at"].timestamp(),
    )
    return 1
