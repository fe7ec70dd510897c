"""What a policy rule is (docs/policy.md, "Rules"): one schema for the rules declared in the config
file (``rules.rules``), those created through ``/admin/rules`` and those stored in the database.
Everything is checked here, at load or at save time, so that the rules engine
(``pipeline/rules``) compiles a rule without failing: operators that fit the value they test,
regular expressions that RE2 compiles (linear time: no pattern can hang the server), replacement
templates that name groups the pattern has, bounded sizes.

``waypost.settings`` re-exports ``RuleSpec``: import it from there.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any, Literal

import re2
from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from waypost.settings_metering import _Strict

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
Operator = Literal["exact", "regex", "contains", "in", "gt", "lt", "gte", "lte"]
NUMERIC_OPERATORS = frozenset({"gt", "lt", "gte", "lte"})
TEXT_OPERATORS = frozenset({"regex", "contains"})
Scalar = bool | int | float | str
RULE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$"  # also what X-Waypost-Applied-Rules carries
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)
MAX_PATTERN = 2000  # characters of one regular expression
MAX_LIST = 1000  # values of one ``in``
MAX_CONDITIONS = 100  # leaves of one rule
MAX_DEPTH = 8  # nesting of and/or groups
MAX_WINDOW = 31 * 86400  # seconds: a quota's longest rolling window
REGEX_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern
# In a replacement: ``\\g<name or number>``, ``\\1`` .. ``\\99``, or an escaped backslash.
_TEMPLATE = re.compile(r"\\(?:g<([^>]*)>|([1-9][0-9]?)|(\\))")

PARAMETER_KINDS: dict[str, str] = {
    "model": "text",
    "max_tokens": "number",
    "temperature": "number",
    "top_p": "number",
    "top_k": "number",
    "stream": "bool",
}


def regex_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # an invalid pattern is the caller's error, not a log line
    options.max_mem = REGEX_MEMORY
    return options


@lru_cache(maxsize=4096)
def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (cached); ``ValueError`` saying why it cannot be."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"the pattern is {len(pattern)} characters long; at most {MAX_PATTERN}")
    try:
        return re2.compile(pattern, regex_options())
    except re2.error as exc:
        why = exc.args[0] if exc.args else exc
        if isinstance(why, bytes):
            why = why.decode("utf-8", "replace")
        raise ValueError(
            f"{pattern[:100]!r} is not a regular expression RE2 accepts ({why}); RE2 runs in linear "
            "time, so it has no backreferences or lookaround"
        ) from None


class Replacement:
    """A regex replacement, applied by a function rather than by the engine's own template
    expansion (google-re2 expands a string replacement on UTF-8 bytes and returns non-ASCII text
    it inserts mangled). Only group references (``\\1`` .. ``\\99``, ``\\g<n>``, ``\\g<name>``)
    and ``\\\\`` are escapes: other text, backslashes and non-ASCII included, goes in as written.
    ``ValueError`` names a group the pattern does not have."""

    __slots__ = ("_pieces", "regex")

    def __init__(self, regex: Any, replacement: str) -> None:
        self.regex = regex
        self._pieces = _parse_template(replacement, regex.groups, dict(regex.groupindex))

    def _expand(self, m: Any) -> str:
        return "".join(p if isinstance(p, str) else (m.group(p) or "") for p in self._pieces)

    def subn(self, text: str) -> tuple[str, int]:
        """``text`` with every match replaced, and how many there were."""
        pieces = self._pieces
        if len(pieces) == 1 and isinstance(pieces[0], str):
            literal = pieces[0]
            new, n = self.regex.subn(lambda _m: literal, text)
        else:
            new, n = self.regex.subn(self._expand, text)
        return str(new), int(n)

    def sub(self, text: str) -> str:
        return self.subn(text)[0]


def _parse_template(text: str, groups: int, names: dict[str, int]) -> tuple[str | int, ...]:
    """A replacement's pieces in order: literal text (str) and group numbers (int)."""
    pieces: list[str | int] = []
    literal: list[str] = []
    pos = 0
    for m in _TEMPLATE.finditer(text):
        literal.append(text[pos : m.start()])
        pos = m.end()
        ref, number, backslash = m.groups()
        if backslash:
            literal.append("\\")
            continue
        if number:
            group = int(number)
        elif ref.isdigit():
            group = int(ref)
        elif ref in names:
            group = names[ref]
        else:
            raise ValueError(f"replacement refers to group {ref!r}, which the pattern does not name")
        if group > groups:
            raise ValueError(f"replacement refers to group {group}; the pattern has {groups} group(s)")
        pieces.append("".join(literal))
        literal = []
        pieces.append(group)
    literal.append(text[pos:])
    pieces.append("".join(literal))
    return tuple(p for p in pieces if p != "") or ("",)


class _Leaf(_Strict):
    type: str  # each kind narrows it (declared here so that it comes first in a rule's JSON)
    operator: Operator
    value: Scalar | list[Scalar]
    negate: bool = False

    def value_kind(self) -> str:
        """What the condition tests: ``text``, ``number`` or ``bool``."""
        return "text"

    @model_validator(mode="after")
    def _operator_fits(self) -> _Leaf:
        kind, op, value = self.value_kind(), self.operator, self.value
        if op == "in":
            if not isinstance(value, list) or not value:
                raise ValueError("operator 'in' takes a non-empty list as value")
            if len(value) > MAX_LIST:
                raise ValueError(f"operator 'in' takes at most {MAX_LIST} values")
            for item in value:
                _check_scalar(kind, item, "in")
            return self
        if isinstance(value, list):
            raise ValueError(f"operator {op!r} takes one value, not a list (a list goes with 'in')")
        if op in TEXT_OPERATORS:
            if kind != "text":
                raise ValueError(f"operator {op!r} applies to text; this condition tests a {kind}")
            if not isinstance(value, str) or not value:
                raise ValueError(f"operator {op!r} takes a non-empty string")
            if op == "regex":
                compile_regex(value)
            return self
        if op in NUMERIC_OPERATORS:
            if kind == "bool":
                raise ValueError(f"operator {op!r} compares numbers; this condition tests true or false")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"operator {op!r} takes a number")
            return self
        _check_scalar(kind, value, "exact")
        return self


def _check_scalar(kind: str, value: Scalar, op: str) -> None:
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"operator {op!r} on a number takes numbers, not {value!r}")
    if kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"operator {op!r} on true/false takes true or false, not {value!r}")


class ParameterCondition(_Leaf):
    """A request parameter: the model asked for, the output cap, sampling settings, streaming."""

    type: Literal["parameter"]
    parameter: Literal["model", "max_tokens", "temperature", "top_p", "top_k", "stream"]

    def value_kind(self) -> str:
        return PARAMETER_KINDS[self.parameter]


class HeaderCondition(_Leaf):
    """A request header, named case-insensitively; numeric operators read its value as a number."""

    type: Literal["header"]
    header: str = Field(min_length=1, max_length=128)

    @field_validator("header")
    @classmethod
    def _token(cls, name: str) -> str:
        if not HEADER_NAME.match(name):
            raise ValueError(f"{name[:60]!r} is not a header name")
        return name.lower()

    def value_kind(self) -> str:
        return "number" if self.operator in NUMERIC_OPERATORS else "text"


class ContentCondition(_Leaf):
    """The text of the conversation's messages (``messages``: every turn but the system prompt)
    or of its system prompt (``system``)."""

    type: Literal["content"]
    target: Literal["messages", "system"] = "messages"

    @model_validator(mode="after")
    def _text_only(self) -> ContentCondition:
        if self.operator in NUMERIC_OPERATORS:
            raise ValueError(
                f"operator {self.operator!r} compares numbers; use a function condition "
                "(message_length, count_tokens, keyword_count) to measure content"
            )
        return self


class FunctionCondition(_Leaf):
    """A measure of the request: its prompt's estimated tokens (``count_tokens``), the characters
    of its text (``message_length``), or how often ``keywords`` occur in it (``keyword_count``,
    whole words, case-insensitive)."""

    type: Literal["function"]
    function: Literal["count_tokens", "message_length", "keyword_count"]
    target: Literal["messages", "system"] = "messages"  # message_length and keyword_count
    keywords: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=200
    )

    def value_kind(self) -> str:
        return "number"

    @model_validator(mode="after")
    def _keywords(self) -> FunctionCondition:
        if self.function == "keyword_count" and not self.keywords:
            raise ValueError("function 'keyword_count' needs keywords")
        if self.function != "keyword_count" and self.keywords:
            raise ValueError(f"function {self.function!r} takes no keywords")
        return self


class QuotaCondition(_Leaf):
    """What the caller (its user) used over the last ``window`` seconds, from successful requests:
    ``cost`` in USD, ``tokens`` (input and output) or ``requests``; ``per: [model]`` counts each
    model apart (the model the request resolves to)."""

    type: Literal["quota"]
    metric: Literal["cost", "tokens", "requests"]
    window: int = Field(ge=1, le=MAX_WINDOW)
    per: list[Literal["model"]] = Field(default_factory=list, max_length=1)

    def value_kind(self) -> str:
        return "number"


def _kind(value: Any) -> str | None:
    """The tag of a condition: ``group`` for ``{"and": [...]}`` / ``{"or": [...]}``, else its type."""
    if isinstance(value, dict):
        if "and" in value or "or" in value:
            return "group"
        kind = value.get("type")
        return kind if isinstance(kind, str) else None
    if isinstance(value, Group):
        return "group"
    return getattr(value, "type", None)


class Group(_Strict):
    """Conditions that must all hold (``and``) or of which one must (``or``)."""

    all_of: list[Condition] | None = Field(None, alias="and", max_length=MAX_CONDITIONS)
    any_of: list[Condition] | None = Field(None, alias="or", max_length=MAX_CONDITIONS)
    negate: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_kind(self) -> Group:
        if (self.all_of is None) == (self.any_of is None):
            raise ValueError("a group has either 'and' or 'or' (a list of conditions), not both")
        return self

    @property
    def children(self) -> list[Condition]:
        return self.all_of if self.all_of is not None else self.any_of or []


Condition = Annotated[
    Annotated[Group, Tag("group")]
    | Annotated[ParameterCondition, Tag("parameter")]
    | Annotated[HeaderCondition, Tag("header")]
    | Annotated[ContentCondition, Tag("content")]
    | Annotated[FunctionCondition, Tag("function")]
    | Annotated[QuotaCondition, Tag("quota")],
    Discriminator(
        _kind,
        custom_error_type="condition_type",
        custom_error_message=(
            "a condition is a group ({'and': [...]} or {'or': [...]}) or has a type: "
            "parameter, header, content, function or quota"
        ),
    ),
]
Group.model_rebuild()


class RerouteAction(_Strict):
    """Send the request to another model (resolved as if the caller had named it)."""

    type: Literal["reroute"]
    model: str = Field(min_length=1, max_length=256)


class BlockAction(_Strict):
    """Refuse the request with ``message`` (``{{ dotted.path }}`` references filled in) and
    ``status`` (default 403, or 429 with ``Retry-After`` when the rule has a quota condition)."""

    type: Literal["block"]
    message: str = Field("This request was blocked by rule {{ rule.name }}.", min_length=1, max_length=2000)
    status: int | None = Field(None, ge=400, le=499)


class AllowAction(_Strict):
    """Let the request through: the rules after this one are not evaluated."""

    type: Literal["allow"]


class RewriteAction(_Strict):
    """Replace ``pattern`` with ``replacement`` (``\\1``, ``\\g<name>``) in the text of the
    messages of ``roles`` (every role by default) before the request goes upstream."""

    type: Literal["rewrite"]
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    replacement: str = Field("", max_length=2000)
    roles: list[Role] = Field(default_factory=lambda: list(ROLES), min_length=1)

    @model_validator(mode="after")
    def _compiles(self) -> RewriteAction:
        Replacement(compile_regex(self.pattern), self.replacement)  # raises naming a bad group
        return self


Action = Annotated[RerouteAction | BlockAction | AllowAction | RewriteAction, Field(discriminator="type")]
Mode = Literal["enforce", "shadow", "off"]


class RuleSpec(_Strict):
    """One rule: when ``conditions`` hold (a list: all of them; none: every request), ``action``."""

    name: str = Field(min_length=1, max_length=128, pattern=RULE_NAME)
    description: str = Field("", max_length=2000)
    weight: int = Field(0, ge=-1_000_000, le=1_000_000)  # highest first
    # enforce: applied; shadow: evaluated and recorded, never applied; off: not evaluated.
    mode: Mode = "enforce"
    enabled: bool = True  # false: the same as mode off
    # Given as one group, one condition or a list (all of them); kept as one group.
    conditions: Group = Field(default_factory=lambda: Group(all_of=[]))
    action: Action

    @field_validator("conditions", mode="before")
    @classmethod
    def _as_group(cls, value: Any) -> Any:
        if value is None:
            return {"and": []}
        if isinstance(value, list):
            return {"and": value}
        if isinstance(value, dict) and "and" not in value and "or" not in value:
            return {"and": [value]}
        return value

    @field_validator("conditions")
    @classmethod
    def _bounded(cls, value: Group) -> Group:
        leaves = _count(value, 0)
        if leaves > MAX_CONDITIONS:
            raise ValueError(f"{leaves} conditions; a rule has at most {MAX_CONDITIONS}")
        return value

    @property
    def effective_mode(self) -> Mode:
        return self.mode if self.enabled else "off"

    def stored_conditions(self) -> dict[str, Any]:
        """The conditions as the database keeps them: one group."""
        return self.conditions.model_dump(mode="json", by_alias=True, exclude_none=True)

    def quota_conditions(self) -> list[QuotaCondition]:
        return [c for c in _leaves(self.conditions) if isinstance(c, QuotaCondition)]


def _leaves(node: Condition) -> list[Condition]:
    if isinstance(node, Group):
        return [leaf for child in node.children for leaf in _leaves(child)]
    return [node]


def _count(node: Condition, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise ValueError(f"groups are nested more than {MAX_DEPTH} deep")
    if isinstance(node, Group):
        return sum(_count(child, depth + 1) for child in node.children)
    return 1
