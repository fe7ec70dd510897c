"""What a matched rule does to a request: reroute it, block it, let it through, rewrite it. Each
action is worked out here once for both uses: applied to a live request (the stage), or described
without sending anything (``POST /admin/rules/test``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from waypost.core.errors import BadRequest, Forbidden, GatewayError, ModelNotFound
from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    EmbeddingRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    ToolResultPart,
)
from waypost.pipeline.rules.compile import CompiledRule, Rewrite
from waypost.pipeline.rules.facts import Facts, Unknown
from waypost.pipeline.rules.quota import QuotaSpec
from waypost.security.principal import Principal
from waypost.settings_rules import BlockAction, QuotaCondition

# ``{{ dotted.path }}``: a reference is a plain name, never an expression.
_REFERENCE = re.compile(r"\{\{\s*([A-Za-z0-9_][A-Za-z0-9_.:-]*)\s*\}\}")
_P = TypeVar("_P", bound=Part)
MAX_MESSAGE = 4000  # characters of a rendered block message

_TYPES = {  # status -> (OpenAI error type, Anthropic error type)
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "authentication_error"),
    402: ("insufficient_quota", "billing_error"),
    403: ("permission_error", "permission_error"),
    404: ("invalid_request_error", "not_found_error"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_error"),
}


class RuleBlocked(GatewayError):
    """A rule refused the request; its status and message are the rule's."""

    code = "blocked_by_rule"

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.openai_type, self.anthropic_type = _TYPES.get(
            status, ("invalid_request_error", "invalid_request_error")
        )


def render(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{{ name }}`` that ``values`` has replaced by its value; any other
    reference stays as written. One pass: a value is never read as a template itself."""

    def lookup(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return _REFERENCE.sub(lookup, template)[:MAX_MESSAGE]


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    retry_after: int | None  # seconds, when a quota condition says when room comes back
    values: dict[str, str]  # what the message could refer to

    def error(self) -> RuleBlocked:
        return RuleBlocked(self.message, status=self.status, retry_after=self.retry_after)


def refusal(rule: CompiledRule, facts: Facts) -> Refusal:
    """The block action's answer: its message with the matched conditions' values filled in, its
    status (403; 429 for a rule on a quota), and when a quota frees room (``Retry-After``)."""
    action = rule.action
    assert isinstance(action, BlockAction)
    values = rule.published(facts)
    waits = []
    for leaf in rule.quota_leaves:
        if leaf.test(facts) is not True:
            continue
        spec = leaf.spec
        assert isinstance(spec, QuotaCondition)
        view = facts.quota(QuotaSpec(spec.window, bool(spec.per)))
        if not isinstance(view, Unknown):
            wait = view.next_free(spec.metric)
            waits.append(wait if wait > 0 else spec.window)
    status = action.status or (429 if rule.quotas else 403)
    retry_after = max(waits) if waits else None
    return Refusal(status, render(action.message, values), retry_after, values)


@dataclass(frozen=True, slots=True)
class Reroute:
    target: str
    resolved: str | None  # the model entry it resolves to; None: no such model
    allowed: bool


def reroute(rule: CompiledRule, principal: Principal | None, resolve: Callable[[str], str | None]) -> Reroute:
    """Where the rule sends the request, and whether the caller may use that model (the check
    the router makes on every request, made here so the refusal names the rule)."""
    target = getattr(rule.action, "model", "")
    resolved = resolve(target)
    allowed = resolved is not None and (principal is None or principal.may_use(resolved))
    return Reroute(target, resolved, allowed)


def reroute_refused(rule: CompiledRule, step: Reroute) -> GatewayError:
    if step.resolved is None:
        return ModelNotFound(
            f"Rule {rule.name!r} sends this request to model {step.target!r}, which does not exist.",
            param="model",
        )
    return Forbidden(
        f"Rule {rule.name!r} sends this request to model {step.target!r}, which you do not have access to."
    )


def rewritten(
    req: ChatRequest | EmbeddingRequest, rewrite: Rewrite, rule: str = ""
) -> tuple[dict[str, Any], int]:
    """The fields of ``req`` with ``rewrite`` (of the rule named ``rule``) applied (for
    ``req.edit``; empty when nothing matched) and how many replacements were made: text parts,
    tool results' text and plain-text documents. ``req`` is not changed. ``BadRequest`` naming
    the rule when a text would be left empty (upstreams refuse empty text blocks)."""

    def subn(text: str) -> tuple[str, int]:
        new, n = rewrite.replacement.subn(text)
        if n and not new and text:
            raise BadRequest(
                f"Rule {rule!r} left a text of the request empty; the request was not sent upstream."
            )
        return new, n

    if isinstance(req, EmbeddingRequest):
        if "user" not in rewrite.roles:
            return {}, 0
        total = 0
        inputs: list[str] = []
        for text in req.inputs:
            new, n = subn(text)
            inputs.append(new)
            total += n
        return ({"inputs": inputs} if total else {}), total
    total = 0
    messages: list[Message] = []
    for message in req.messages:
        if message.role not in rewrite.roles:
            messages.append(message)
            continue
        content: list[Part] = []
        changed = 0
        for part in message.content:
            if isinstance(part, ToolResultPart):
                inner: list[TextPart | ImagePart | DocumentPart] = []
                found = 0
                for piece in part.content:
                    piece, n = _rewrite_part(piece, subn)
                    inner.append(piece)
                    found += n
                if found:
                    part = replace(part, content=inner)
                    changed += found
            else:
                part, n = _rewrite_part(part, subn)
                changed += n
            content.append(part)
        messages.append(replace(message, content=content) if changed else message)
        total += changed
    return ({"messages": messages} if total else {}), total


def _rewrite_part(part: _P, subn: Callable[[str], tuple[str, int]]) -> tuple[_P, int]:
    """``part`` with its text rewritten (a text part, or a plain-text document), and how many
    replacements were made; any other part as it is."""
    if isinstance(part, TextPart | DocumentPart) and part.text:
        new, n = subn(part.text)
        if n:
            return replace(part, text=new), n
    return part, 0
