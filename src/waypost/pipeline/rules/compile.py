"""Rules compiled for evaluation: each condition becomes a small object that reads one fact and
compares it with a matcher built once (a set for ``in``, a compiled RE2 pattern for ``regex``),
so that evaluating a rule per request is a few attribute lookups and calls.

A condition answers True, False or None: None when the fact it reads is unknown (a replayed
audit row that does not hold it, or quota counters that did not answer). Groups combine answers
in three-valued logic (an ``and`` with one false member is false whatever the unknown ones say);
the live path treats a rule whose answer is None as not matching.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import re2

from waypost.pipeline.rules.facts import UNKNOWN, Facts, Unknown
from waypost.pipeline.rules.quota import QuotaSpec, usd_text
from waypost.settings import RuleSpec
from waypost.settings_rules import (
    NUMERIC_OPERATORS,
    PARAMETER_KINDS,
    AllowAction,
    BlockAction,
    Condition,
    ContentCondition,
    FunctionCondition,
    Group,
    HeaderCondition,
    ParameterCondition,
    QuotaCondition,
    Replacement,
    RerouteAction,
    RewriteAction,
    compile_regex,
    regex_options,
)

SEEN_CHARS = 200  # of a text fact shown by the test endpoint or put in a block message

Matcher = Callable[[Any], bool]
Getter = Callable[[Facts], Any]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


# Characters with a meaning in RE2 syntax; a pattern without any is a literal string.
_REGEX_SYNTAX = frozenset("\\.^$|?*+()[]{}")


def matcher(op: str, target: Any, kind: str) -> Matcher:
    """A function telling whether a (known, present) value meets ``op target``."""
    if op == "regex":
        search = compile_regex(target).search  # validated (and compiled) either way
        if not _REGEX_SYNTAX.intersection(target):
            # No metacharacter: the pattern matches itself only, wherever it appears. A substring
            # test gives the same answer about twenty times faster than RE2's Python binding
            # (keyword rules are the common case).
            return lambda v: target in v
        return lambda v: search(v) is not None
    if op == "contains":
        return lambda v: target in v
    if op == "gt":
        return lambda v: v > target
    if op == "gte":
        return lambda v: v >= target
    if op == "lt":
        return lambda v: v < target
    if op == "lte":
        return lambda v: v <= target
    values = target if op == "in" else [target]
    if kind == "text":
        texts = frozenset(_as_text(v) for v in values)
        return texts.__contains__
    if kind == "bool":
        flags = frozenset(bool(v) for v in values)
        return lambda v: isinstance(v, bool) and v in flags
    numbers = frozenset(values)
    return lambda v: not isinstance(v, bool) and v in numbers


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class Leaf:
    """One condition: a fact, a matcher, maybe negated."""

    __slots__ = ("fact", "get", "kind", "label", "match", "negate", "spec")

    def __init__(self, spec: Condition, get: Getter, kind: str, fact: str, label: str) -> None:
        assert not isinstance(spec, Group)
        self.spec = spec
        self.get = get
        self.kind = kind  # what the fact is about: parameter, header, content, function, quota
        self.fact = fact  # the fact's name in the published values, e.g. "header.x-team"
        self.label = label  # for people: "header x-team", "quota cost over 3600s"
        self.match = matcher(spec.operator, spec.value, _value_kind(spec))
        self.negate = spec.negate

    def test(self, facts: Facts) -> bool | None:
        value = self.get(facts)
        if value is UNKNOWN:
            return None
        hit = value is not None and self.match(value)
        return hit is not self.negate

    def seen(self, facts: Facts) -> Any:
        """The fact as read, for people (long text cut)."""
        value = self.get(facts)
        if value is UNKNOWN:
            return None
        if isinstance(value, str) and len(value) > SEEN_CHARS:
            return value[:SEEN_CHARS] + "…"
        return value

    def publish(self, facts: Facts, out: dict[str, str]) -> None:
        """The values a block message may refer to, from this (matched) condition."""
        spec = self.spec
        value = self.seen(facts)
        if isinstance(spec, QuotaCondition):
            view = facts.quota(QuotaSpec(spec.window, bool(spec.per)))
            if isinstance(view, Unknown):
                return
            base = f"quota.{spec.metric}"
            shown = usd_text(view.cost_micros) if spec.metric == "cost" else str(view.value(spec.metric))
            _put(out, base + ".value", shown)
            _put(out, base + ".threshold", _shown(spec.value))
            _put(out, base + ".window", str(spec.window))
            _put(out, base + ".next_free", str(view.next_free(spec.metric)))
            return
        if value is not None:
            _put(out, self.fact + ".value", _shown(value))
        if spec.operator not in ("regex", "in"):
            _put(out, self.fact + ".threshold", _shown(spec.value))

    def explain(self, facts: Facts) -> dict[str, Any]:
        out = self.spec.model_dump(mode="json", exclude_defaults=True)
        out["type"] = self.spec.type
        out["seen"] = self.seen(facts)
        result = self.test(facts)
        out["result"] = result
        if result is None:
            out["unknown"] = facts.why_unknown(self.kind)
        return out

    def unknown_leaves(self, facts: Facts) -> list[Leaf]:
        return [self] if self.test(facts) is None else []


def _put(out: dict[str, str], key: str, value: str) -> None:
    out.setdefault(key, value)  # the first matched condition's value wins


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _value_kind(spec: Condition) -> str:
    assert not isinstance(spec, Group)
    return spec.value_kind()


class AllOf:
    __slots__ = ("children", "negate")

    def __init__(self, children: list[Node], negate: bool) -> None:
        self.children = children
        self.negate = negate

    def test(self, facts: Facts) -> bool | None:
        unknown = False
        for child in self.children:
            result = child.test(facts)
            if result is False:
                return self.negate
            if result is None:
                unknown = True
        return None if unknown else not self.negate

    def explain(self, facts: Facts) -> dict[str, Any]:
        out: dict[str, Any] = {"and": [c.explain(facts) for c in self.children]}
        if self.negate:
            out["negate"] = True
        out["result"] = self.test(facts)
        return out

    def publish(self, facts: Facts, out: dict[str, str]) -> None:
        for child in self.children:
            if child.test(facts):
                child.publish(facts, out)

    def unknown_leaves(self, facts: Facts) -> list[Leaf]:
        return [leaf for child in self.children for leaf in child.unknown_leaves(facts)]


class AnyOf(AllOf):
    __slots__ = ()

    def test(self, facts: Facts) -> bool | None:
        unknown = False
        for child in self.children:
            result = child.test(facts)
            if result is True:
                return not self.negate
            if result is None:
                unknown = True
        return None if unknown else self.negate

    def explain(self, facts: Facts) -> dict[str, Any]:
        out = super().explain(facts)
        out["or"] = out.pop("and")
        out["result"] = out.pop("result")
        return out


Node = Leaf | AllOf


def compile_condition(spec: Condition) -> Node:
    if isinstance(spec, Group):
        kind = AllOf if spec.all_of is not None else AnyOf
        return kind([compile_condition(c) for c in spec.children], spec.negate)
    if isinstance(spec, ParameterCondition):
        return _parameter(spec)
    if isinstance(spec, HeaderCondition):
        name = spec.header
        if spec.operator in NUMERIC_OPERATORS:

            def header_number(facts: Facts) -> Any:
                value = facts.header(name)
                return value if isinstance(value, Unknown) else _number(value)

            return Leaf(spec, header_number, "header", f"header.{name}", f"header {name}")
        return Leaf(spec, lambda f: f.header(name), "header", f"header.{name}", f"header {name}")
    if isinstance(spec, ContentCondition):
        target = spec.target
        return Leaf(spec, lambda f: f.text(target), "content", f"content.{target}", f"{target} text")
    if isinstance(spec, FunctionCondition):
        return _function(spec)
    assert isinstance(spec, QuotaCondition)
    quota = QuotaSpec(spec.window, bool(spec.per))
    metric = spec.metric

    def quota_value(facts: Facts) -> Any:
        view = facts.quota(quota)
        return view if isinstance(view, Unknown) else view.value(metric)

    per = " per model" if quota.per_model else ""
    return Leaf(spec, quota_value, "quota", f"quota.{metric}", f"quota {metric} over {spec.window}s{per}")


def _parameter(spec: ParameterCondition) -> Leaf:
    name = spec.parameter
    label = f"parameter {name}"
    if name == "model":
        return Leaf(spec, lambda f: f.model(), "parameter", "parameter.model", label)
    kind = PARAMETER_KINDS[name]

    def parameter(facts: Facts) -> Any:
        value = facts.parameter(name)
        if kind == "number" and isinstance(value, bool):
            return None
        return value

    return Leaf(spec, parameter, "parameter", f"parameter.{name}", label)


def _function(spec: FunctionCondition) -> Leaf:
    fn, target = spec.function, spec.target
    if fn == "count_tokens":
        return Leaf(spec, lambda f: f.tokens(), "function", "function.count_tokens", "prompt tokens")
    if fn == "message_length":

        def length(facts: Facts) -> Any:
            text = facts.text(target)
            return text if isinstance(text, Unknown) else len(text)

        return Leaf(spec, length, "function", "function.message_length", f"{target} length")
    words = "|".join(re2.escape(k) for k in spec.keywords)
    pattern = re2.compile(rf"(?i)\b(?:{words})\b", regex_options())

    def keyword_count(facts: Facts) -> Any:
        text = facts.text(target)
        if isinstance(text, Unknown):
            return text
        return sum(1 for _ in pattern.finditer(text))

    return Leaf(spec, keyword_count, "function", "function.keyword_count", f"keywords in {target}")


# -- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rewrite:
    """``pattern`` replaced by ``replacement`` in the text of messages of ``roles``."""

    replacement: Replacement  # the compiled RE2 pattern and what replaces its matches
    roles: frozenset[str]


@dataclass(eq=False, slots=True)
class CompiledRule:
    spec: RuleSpec
    root: Node
    source: str  # "config" or "database"
    id: int | None = None  # the database row's
    quotas: frozenset[QuotaSpec] = field(default_factory=frozenset)
    quota_leaves: tuple[Leaf, ...] = ()
    rewrite: Rewrite | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def mode(self) -> str:
        return self.spec.effective_mode

    @property
    def weight(self) -> int:
        return self.spec.weight

    @property
    def action(self) -> RerouteAction | BlockAction | AllowAction | RewriteAction:
        return self.spec.action

    def test(self, facts: Facts) -> bool | None:
        return self.root.test(facts)

    def published(self, facts: Facts) -> dict[str, str]:
        """What its block message may refer to: the rule, the request, its matched conditions."""
        out = {"rule.name": self.name}
        model = facts.model()
        if isinstance(model, str):
            out["request.model"] = model
        self.root.publish(facts, out)
        return out


def compile_rule(spec: RuleSpec, source: str, rule_id: int | None = None) -> CompiledRule:
    """``spec`` (validated: this does not fail) ready to evaluate."""
    root = compile_condition(spec.conditions)
    if isinstance(root, AllOf) and type(root) is AllOf and len(root.children) == 1 and not root.negate:
        root = root.children[0]  # the common single condition: one call less per request
    quotas = frozenset(QuotaSpec(c.window, bool(c.per)) for c in spec.quota_conditions())
    rewrite = None
    action = spec.action
    if isinstance(action, RewriteAction):
        rewrite = Rewrite(
            Replacement(compile_regex(action.pattern), action.replacement), frozenset(action.roles)
        )
    return CompiledRule(spec, root, source, rule_id, quotas, tuple(_quota_leaves(root)), rewrite)


def _quota_leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node] if node.kind == "quota" else []
    return [leaf for child in node.children for leaf in _quota_leaves(child)]


def ordered(rules: list[CompiledRule]) -> tuple[CompiledRule, ...]:
    """Highest weight first; equal weights by name (config rules before database ones)."""
    return tuple(sorted(rules, key=lambda r: (-r.weight, r.name, r.source != "config")))
