"""What changes in a request as it leaves for an upstream (docs/policy.md, "Header rules" and
"Transformations"): header rules, ``regex_replace`` on the text, and ``jsonpath_drop`` /
``jsonpath_add`` on the body. The settings (``settings_transforms``) compiled everything at load;
here it is applied.

Where each applies, and why there:

* Header rules, global then the model's own, on the headers of every upstream call
  (``HttpClient.post``; Bedrock before it signs), after the provider has assembled them: the
  wire format's own headers, the model's configured ``headers``, and the only client headers
  that are ever candidates for forwarding (``api/dataplane.py`` ``PASSTHROUGH_HEADERS``:
  ``anthropic-beta`` and ``anthropic-version``, to an Anthropic-dialect upstream). Credentials
  and transport headers are out of every rule's reach (``protected_header``), so the provider
  credential is always the model's own and a caller's key never leaves.
* ``regex_replace``: the global ones once, in the pipeline (``pipeline/transforms.py``), the
  model's own on each attempt at that model (``for_deployment``, from the router), fallbacks
  included; both through ``ChatRequest.edit`` so a same-format upstream gets the edited text.
* JSONPath: on the chat body sent upstream, in the upstream's own format, after translation
  (``OutboundRules.body``, called by each provider once it has encoded the request): a model's
  rules are written for its provider's format, and on the same-format path that body is the
  client's own with the gateway's edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, TypeVar

import orjson

from waypost.core.errors import BadRequest
from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    EmbeddingRequest,
    Message,
    Part,
    TextPart,
    ToolResultPart,
)
from waypost.providers.base import Deployment
from waypost.settings import (
    CONTENT_MEMBERS,
    GATEWAY_MEMBERS,
    HeaderRuleSettings,
    JsonPathAdd,
    JsonPathDrop,
    RegexReplace,
    Settings,
    protected_header,
)

R = TypeVar("R", ChatRequest, EmbeddingRequest)
BodyRule = JsonPathDrop | JsonPathAdd


class OutboundRules:
    """The global header rules and JSONPath transformations; a model's own come with its
    ``Deployment``. Built once per app; with nothing configured every method returns its input."""

    __slots__ = ("header_rules", "jsonpath")

    def __init__(
        self, header_rules: HeaderRuleSettings | None = None, jsonpath: Sequence[BodyRule] = ()
    ) -> None:
        self.header_rules = header_rules if header_rules is not None and header_rules.active else None
        self.jsonpath = tuple(jsonpath)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundRules:
        return cls(settings.header_rules, settings.transformations.jsonpath)

    def headers(self, dep: Deployment, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` after the global header rules, then the model's own."""
        own = dep.settings.header_rules
        if own is not None and not own.active:
            own = None
        if self.header_rules is None and own is None:
            return headers
        for rules in (self.header_rules, own):
            if rules is not None:
                headers = apply_header_rules(headers, rules)
        return headers

    def body(self, dep: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        """A chat body after the global JSONPath transformations, then the model's own."""
        own = dep.settings.transformations.jsonpath
        if not self.jsonpath and not own:
            return body
        return transform_body(body, (*self.jsonpath, *own))


# -- headers ----------------------------------------------------------------------------------


@lru_cache(maxsize=1024)  # the names an upstream call carries are few and fixed
def _protected(name: str) -> bool:
    return protected_header(name) is not None


def apply_header_rules(headers: dict[str, str], rules: HeaderRuleSettings) -> dict[str, str]:
    """A new header set: ``drop_all`` and ``drop`` (never a protected header), ``add`` where
    absent, ``force`` over any value."""
    out: dict[str, str] = {}
    present: dict[str, str] = {}  # lower-case name -> the name as sent
    for name, value in headers.items():
        lower = name.lower()
        if not _protected(lower) and rules.drops(lower):
            continue
        out[name] = value
        present[lower] = name
    for name, value in rules.add.items():
        if name.lower() not in present:
            out[name] = value
            present[name.lower()] = name
    for name, value in rules.force.items():
        old = present.pop(name.lower(), None)
        if old is not None:
            del out[old]
        out[name] = value
        present[name.lower()] = name
    return out


# -- regex_replace ----------------------------------------------------------------------------


def for_deployment(req: R, dep: Deployment) -> R:
    """The request as ``dep`` gets it: with the model's own ``regex_replace`` transformations
    applied to a copy (the request itself stays as the pipeline left it, for other attempts)."""
    rules = dep.settings.transformations.text
    if not rules:
        return req
    changed = rewrite(req, rules)
    if changed is None:
        return req
    copy = replace(req)
    copy.edit(**changed)
    return copy


def rewrite(req: ChatRequest | EmbeddingRequest, rules: Sequence[RegexReplace]) -> dict[str, Any] | None:
    """The fields ``rules`` change, as ``edit`` takes them (``messages`` or ``inputs``); None
    when nothing changed. ``BadRequest`` naming the transformation that left a text empty."""
    if isinstance(req, ChatRequest):
        messages = rewrite_messages(req.messages, rules)
        return None if messages is None else {"messages": messages}
    inputs = rewrite_inputs(req.inputs, rules)
    return None if inputs is None else {"inputs": inputs}


def rewrite_messages(messages: list[Message], rules: Sequence[RegexReplace]) -> list[Message] | None:
    """New messages with the text of each rule's roles rewritten (text parts, tool results'
    text, plain-text documents; never tool arguments or thinking, whose signatures would break);
    None when no text changed. Unchanged messages are shared, not copied."""
    out: list[Message] | None = None
    for i, msg in enumerate(messages):
        own = [r for r in rules if msg.role in r.roles]
        if not own:
            continue
        parts: list[Part] | None = None
        for j, part in enumerate(msg.content):
            new = _rewrite_part(part, own)
            if new is not part:
                if parts is None:
                    parts = list(msg.content)
                parts[j] = new
        if parts is not None:
            if out is None:
                out = list(messages)
            out[i] = replace(msg, content=parts)
    return out


def rewrite_inputs(inputs: list[str], rules: Sequence[RegexReplace]) -> list[str] | None:
    """Embedding inputs rewritten by the rules that apply to ``user`` text; None when unchanged."""
    own = [r for r in rules if "user" in r.roles]
    out = [rewrite_text(text, own) for text in inputs] if own else inputs
    return None if out == inputs else out


def rewrite_text(text: str, rules: Sequence[RegexReplace]) -> str:
    for rule in rules:
        new = rule.apply(text)
        if not new and text:
            # Upstreams refuse empty text blocks (Anthropic, Bedrock): say which rule did it.
            raise BadRequest(
                f"The transformation {rule.label} left a text of the request empty; the request "
                "was not sent upstream."
            )
        text = new
    return text


def _rewrite_part(part: Part, rules: Sequence[RegexReplace]) -> Part:
    if isinstance(part, TextPart):
        text = rewrite_text(part.text, rules)
        return part if text == part.text else replace(part, text=text)
    if isinstance(part, ToolResultPart):
        content = [_rewrite_part(p, rules) for p in part.content]
        if all(new is old for new, old in zip(content, part.content, strict=True)):
            return part
        return replace(part, content=content)  # type: ignore[arg-type]  # same part kinds
    if isinstance(part, DocumentPart) and part.text:
        text = rewrite_text(part.text, rules)
        return part if text == part.text else replace(part, text=text)
    return part


# -- JSONPath ---------------------------------------------------------------------------------


def transform_body(body: dict[str, Any], rules: Sequence[BodyRule]) -> dict[str, Any]:
    """A copy of ``body`` with ``rules`` applied in order. The copy is deep: on the same-format
    path the body shares its objects with the client's own (the audit log's, and the next
    attempt's). ``BadRequest`` naming the rule that would make the request invalid."""
    body = orjson.loads(orjson.dumps(body))
    for rule in rules:
        before = _content(body)
        if isinstance(rule, JsonPathDrop):
            _drop(body, rule)
        else:
            _add(body, rule)
        for name, (kind, filled) in before.items():
            value = body.get(name)
            if name not in body or type(value) is not kind or (filled and not value):
                state = (
                    "without"
                    if name not in body
                    else "with an empty"
                    if filled and not value
                    else "with another"
                )
                raise BadRequest(
                    f"The transformation {rule.label} would leave the request {state} {name!r}; the "
                    "request was not sent upstream."
                )
    return body


def _content(body: dict[str, Any]) -> dict[str, tuple[type, bool]]:
    return {name: (type(body[name]), bool(body[name])) for name in CONTENT_MEMBERS if name in body}


def _drop(body: dict[str, Any], rule: JsonPathDrop) -> None:
    targets: dict[int, tuple[Any, set[str | int]]] = {}  # container id -> (container, keys)
    for match in rule.matches(body):
        parts = tuple(match.parts)
        if not parts:
            raise BadRequest(f"The transformation {rule.label} would remove the whole request body.")
        if parts[0] in GATEWAY_MEMBERS:
            raise BadRequest(
                f"The transformation {rule.label} would remove {parts[0]!r}, which the gateway sets itself."
            )
        parent = match.parent.obj if match.parent is not None else body
        targets.setdefault(id(parent), (parent, set()))[1].add(parts[-1])
    for container, keys in targets.values():
        if isinstance(container, list):
            # Highest first, so each index still means what it meant; -1 and the last are one.
            indexes = {k % len(container) for k in keys if isinstance(k, int) and container}
            for index in sorted(indexes, reverse=True):
                del container[index]
        elif isinstance(container, dict):
            for key in keys:
                container.pop(key, None)


def _add(body: dict[str, Any], rule: JsonPathAdd) -> None:
    node: Any = body
    parts = rule.parts
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(part, str):
            if not isinstance(node, dict):
                raise BadRequest(
                    f"The transformation {rule.label} cannot set a member of {_path(parts[:depth])}: "
                    "it is not an object."
                )
            if last:
                if rule.overwrite or part not in node:
                    node[part] = rule.fresh_value()
                return
            node = node.setdefault(part, {})
        else:
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise BadRequest(
                    f"The transformation {rule.label} cannot reach index {part} of {_path(parts[:depth])}: "
                    "there is no such item."
                )
            if last:
                if rule.overwrite:
                    node[part] = rule.fresh_value()
                return
            node = node[part]


def _path(parts: Sequence[str | int]) -> str:
    """A normalized path (RFC 9535) to ``parts``, for messages."""
    return "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in parts)
