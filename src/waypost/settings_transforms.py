"""What header rules and content transformations are (docs/policy.md, "Header rules",
"Transformations"): one schema for the global sections (``header_rules``, ``transformations``) and
a model's own (``models[].header_rules``, ``models[].transformations``), whether the model comes
from the config file or the database.

Everything is checked and compiled here, at load: regular expressions by RE2 (linear time: no
pattern can hang a worker), JSONPath queries (RFC 9535) by ``python-jsonpath``, replacement
templates against the groups their pattern has, and every rule that would touch what the gateway
itself must set (credentials, transport headers, the model, streaming) is refused naming its key.
What is compiled lives on the settings object, so applying a rule
(``providers/outbound.py``) never compiles or fails for a reason known at load.

``waypost.settings`` re-exports the public classes: import them from there.
"""

from __future__ import annotations

import re
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal

import orjson
from pydantic import Discriminator, Field, PrivateAttr, RootModel, Tag, field_validator, model_validator

from waypost.providers.credentials import CREDENTIAL_NAME
from waypost.settings_metering import _Strict
from waypost.settings_rules import MAX_PATTERN, Replacement, compile_regex

HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)
# Headers of the transport and of the call itself: no rule drops, adds or forces them. Bedrock
# signs its ``x-amz-`` headers (SigV4), so those are the gateway's too.
TRANSPORT_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Top-level members of an upstream body the gateway owns: which model is called (and billed), how
# the answer is read, and the usage report metering needs. No JSONPath transformation touches them.
GATEWAY_MEMBERS = frozenset({"model", "stream", "stream_options"})
# Top-level members that carry the request's content in one wire format or another (chat,
# Messages, Converse and Ollama ``messages``, Gemini ``contents``, legacy ``prompt``, embeddings):
# a transformation may change what is inside them, never remove them or leave them empty.
CONTENT_MEMBERS = frozenset({"messages", "contents", "prompt", "input", "inputText", "texts"})
Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
FLAGS = {"ignore_case": "i", "multiline": "m", "dot_all": "s"}


def protected_header(name: str) -> str | None:
    """Why no header rule may touch ``name`` (any case), or None when rules may."""
    lower = name.lower()
    if lower in TRANSPORT_HEADERS or lower.startswith("x-amz-"):
        return "the gateway sets it for the upstream call"
    if CREDENTIAL_NAME.search(lower):
        return (
            "it carries a credential: the upstream always gets the model's own, set by the gateway, "
            "and never a caller's"
        )
    return None


def _header_name(name: str) -> str:
    if not HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid header name")
    why = protected_header(name)
    if why is not None:
        raise ValueError(f"no header rule may touch {name!r}: {why}")
    return name


class HeaderPattern(_Strict):
    """A ``drop`` entry matching header names by regular expression (RE2, case-insensitive,
    searched: anchor it with ``^`` and ``$`` to match whole names)."""

    regex: str = Field(min_length=1, max_length=MAX_PATTERN)
    _compiled: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _compiles(self) -> HeaderPattern:
        self._compiled = compile_regex("(?i)" + self.regex)
        return self

    def search(self, name: str) -> bool:
        return self._compiled.search(name) is not None


# A ``drop`` entry: a name, or a pattern; told apart up front so an error names the one meant.
DropEntry = Annotated[
    Annotated[str, Tag("name")] | Annotated[HeaderPattern, Tag("regex")],
    Discriminator(lambda v: "name" if isinstance(v, str) else "regex"),
]


class HeaderRuleSettings(_Strict):
    """What the upstream receives beyond the headers its wire format needs (docs/policy.md,
    "Header rules"). Applied in this order: ``drop_all``, ``drop``, ``add``, ``force``; the
    global rules first, then the model's own. Credentials and transport headers are out of reach
    of every rule."""

    drop: list[DropEntry] = Field(default_factory=list)  # names (any case), or {regex: ...}
    drop_all: bool = False  # every header a rule may touch
    add: dict[str, str] = Field(default_factory=dict)  # set when absent
    force: dict[str, str] = Field(default_factory=dict)  # set, replacing any value

    _names: frozenset[str] = PrivateAttr(frozenset())
    _patterns: tuple[HeaderPattern, ...] = PrivateAttr(())

    @field_validator("drop")
    @classmethod
    def _drop_names(cls, value: list[str | HeaderPattern]) -> list[str | HeaderPattern]:
        for i, entry in enumerate(value):
            if isinstance(entry, str):
                try:
                    _header_name(entry)
                except ValueError as exc:
                    raise ValueError(f"[{i}]: {exc}") from None
        return value

    @field_validator("add", "force")
    @classmethod
    def _set_headers(cls, value: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name, text in value.items():
            _header_name(name)
            if name.lower() in seen:
                raise ValueError(f"{name!r} is given twice (header names are case-insensitive)")
            seen.add(name.lower())
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"the value of {name!r} holds a line break or NUL")
        return value

    @model_validator(mode="after")
    def _compiled(self) -> HeaderRuleSettings:
        self._names = frozenset(e.lower() for e in self.drop if isinstance(e, str))
        self._patterns = tuple(e for e in self.drop if isinstance(e, HeaderPattern))
        return self

    @property
    def active(self) -> bool:
        return bool(self.drop or self.drop_all or self.add or self.force)

    def drops(self, name: str) -> bool:
        """Whether ``name`` (lower-case, not protected) is dropped by ``drop_all`` or ``drop``."""
        return self.drop_all or name in self._names or any(p.search(name) for p in self._patterns)


class _Transformation(_Strict):
    type: str  # each kind narrows it to its own name (the discriminator)
    name: str | None = Field(None, min_length=1, max_length=100)  # how errors name it
    enabled: bool = True

    @property
    def label(self) -> str:
        """How a message names it: its name, or what it is."""
        what = f"{self.type} {self.target}"
        return f"{self.name!r} ({what})" if self.name else what

    @property
    def target(self) -> str:
        raise NotImplementedError


class RegexReplace(_Transformation):
    """Replace ``pattern`` with ``replacement`` in the text of the messages of ``roles`` (text
    parts, tool results' text and plain-text documents) and in embedding inputs."""

    type: Literal["regex_replace"]
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN)
    # ``\\1`` .. ``\\99``, ``\\g<n>`` and ``\\g<name>`` insert groups; ``\\\\`` a backslash.
    replacement: str = Field("", max_length=2000)
    flags: list[Literal["ignore_case", "multiline", "dot_all"]] = Field(default_factory=list)
    roles: list[Role] = Field(default_factory=lambda: list(ROLES), min_length=1)

    _replacement: Any = PrivateAttr(None)  # a Replacement

    @model_validator(mode="after")
    def _compiles(self) -> RegexReplace:
        inline = "".join(sorted(FLAGS[f] for f in set(self.flags)))
        regex = compile_regex(f"(?{inline}){self.pattern}" if inline else self.pattern)
        self._replacement = Replacement(regex, self.replacement)
        return self

    @property
    def target(self) -> str:
        return f"/{self.pattern[:60]}/"

    def apply(self, text: str) -> str:
        return str(self._replacement.sub(text))


class JsonPathDrop(_Transformation):
    """Remove every node ``path`` (RFC 9535) selects from the body sent upstream."""

    type: Literal["jsonpath_drop"]
    path: str = Field(min_length=1, max_length=MAX_PATTERN)
    _query: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _compiles(self) -> JsonPathDrop:
        query = compile_jsonpath(self.path)
        first = _first_member(query)
        if first in GATEWAY_MEMBERS:
            raise ValueError(f"{self.path!r} would remove {first!r}, which the gateway sets itself")
        parts = singular_parts(query)
        if parts == ():
            raise ValueError("'$' would remove the whole body")
        if parts is not None and len(parts) == 1 and parts[0] in CONTENT_MEMBERS:
            raise ValueError(f"{self.path!r} would remove {parts[0]!r}, which carries the request")
        self._query = query
        return self

    @property
    def target(self) -> str:
        return self.path

    def matches(self, body: Any) -> list[Any]:
        """The nodes selected (``jsonpath.JSONPathMatch``)."""
        return list(self._query.finditer(body))


class JsonPathAdd(_Transformation):
    """Set ``value`` at ``path`` (a singular query: names and indexes only) in the body sent
    upstream, creating missing objects on the way; with ``overwrite: false`` only when absent."""

    type: Literal["jsonpath_add"]
    path: str = Field(min_length=1, max_length=MAX_PATTERN)
    value: Any = Field(...)  # any JSON value
    overwrite: bool = True
    _parts: tuple[str | int, ...] = PrivateAttr(())
    _value: bytes = PrivateAttr(b"null")

    @model_validator(mode="after")
    def _compiles(self) -> JsonPathAdd:
        parts = singular_parts(compile_jsonpath(self.path))
        if not parts:
            raise ValueError(
                f"{self.path!r} is not a path to one member: use names and indexes only, e.g. "
                "$.metadata.team or $['service_tier']"
            )
        if parts[0] in GATEWAY_MEMBERS:
            raise ValueError(f"{self.path!r} would set {parts[0]!r}, which the gateway sets itself")
        if len(parts) == 1 and parts[0] in CONTENT_MEMBERS:
            raise ValueError(f"{self.path!r} would replace {parts[0]!r}, which carries the request")
        try:
            self._value = orjson.dumps(self.value)
        except TypeError as exc:
            raise ValueError(f"value is not JSON: {exc}") from None
        self._parts = parts
        return self

    @property
    def target(self) -> str:
        return self.path

    @property
    def parts(self) -> tuple[str | int, ...]:
        return self._parts

    def fresh_value(self) -> Any:
        """A copy of the value (each body gets its own)."""
        return orjson.loads(self._value)


Transformation = Annotated[RegexReplace | JsonPathDrop | JsonPathAdd, Field(discriminator="type")]


class TransformSettings(RootModel[list[Transformation]]):
    """Transformations, in order; the disabled ones are kept but not applied."""

    root: list[Transformation] = Field(default_factory=list)

    # Cached on first use (the instance's own attributes afterwards): read on every request,
    # where a pydantic private attribute costs a ``__getattr__`` call each time.
    @cached_property
    def text(self) -> tuple[RegexReplace, ...]:
        """The enabled ``regex_replace`` transformations, in order."""
        return tuple(t for t in self.root if t.enabled and isinstance(t, RegexReplace))

    @cached_property
    def jsonpath(self) -> tuple[JsonPathDrop | JsonPathAdd, ...]:
        """The enabled ``jsonpath_drop`` / ``jsonpath_add`` transformations, in order."""
        return tuple(t for t in self.root if t.enabled and isinstance(t, JsonPathDrop | JsonPathAdd))


# -- JSONPath (RFC 9535) ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def jsonpath_environment() -> Any:
    """A strict RFC 9535 environment whose ``match()`` and ``search()`` filter functions run
    RE2: a filter may compare against a pattern taken from the body itself, so a backtracking
    engine there would let a caller hang the worker."""
    import jsonpath
    from jsonpath.function_extensions import ExpressionType, FilterFunction

    class _Regex(FilterFunction):
        arg_types = [ExpressionType.VALUE, ExpressionType.VALUE]
        return_type = ExpressionType.LOGICAL

        def __init__(self, whole: bool) -> None:
            self.whole = whole

        def __call__(self, value: object, pattern: object) -> bool:
            if not isinstance(value, str) or not isinstance(pattern, str):
                return False
            try:
                regex = compile_regex(pattern)
            except ValueError:
                return False  # RFC 9535: an invalid pattern matches nothing
            found = regex.fullmatch(value) if self.whole else regex.search(value)
            return found is not None

    class _Environment(jsonpath.JSONPathEnvironment):
        def setup_function_extensions(self) -> None:
            super().setup_function_extensions()
            self.function_extensions["match"] = _Regex(whole=True)
            self.function_extensions["search"] = _Regex(whole=False)

    return _Environment(strict=True)


def compile_jsonpath(path: str) -> Any:
    """``path`` compiled (``jsonpath.JSONPath``); ``ValueError`` saying why it cannot be."""
    from jsonpath import JSONPathError

    try:
        return jsonpath_environment().compile(path)
    except JSONPathError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path!r} is not a JSONPath query (RFC 9535): {first}") from None


def singular_parts(query: Any) -> tuple[str | int, ...] | None:
    """The names and indexes of a query made of single name or index selectors only (``$`` is
    ``()``); None for any other query."""
    from jsonpath.segments import JSONPathChildSegment
    from jsonpath.selectors import IndexSelector, NameSelector

    parts: list[str | int] = []
    for segment in getattr(query, "segments", None) or ():
        selectors = segment.selectors
        if type(segment) is not JSONPathChildSegment or len(selectors) != 1:
            return None
        selector = selectors[0]
        if type(selector) is NameSelector:
            parts.append(selector.name)
        elif type(selector) is IndexSelector:
            parts.append(selector.index)
        else:
            return None
    return tuple(parts)


def _first_member(query: Any) -> str | None:
    """The member name the query's first segment selects, when it selects one name only."""
    from jsonpath.segments import JSONPathChildSegment
    from jsonpath.selectors import NameSelector

    segments = getattr(query, "segments", None) or ()
    if not segments or type(segments[0]) is not JSONPathChildSegment or len(segments[0].selectors) != 1:
        return None
    selector = segments[0].selectors[0]
    return selector.name if type(selector) is NameSelector else None
