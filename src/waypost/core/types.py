"""The canonical request/response model: neither OpenAI- nor Anthropic-shaped.

Conventions every wire module relies on:

* Roles are ``system``, ``user`` and ``assistant``. Tool results are ``ToolResultPart``s inside a
  ``user`` message (one message may carry several, for parallel calls).
* ``ToolCallPart.arguments`` is the JSON text of the arguments, exactly as produced; use
  ``ToolCallPart.input()`` for the parsed object.
* ``Usage.input_tokens`` counts *all* prompt tokens, including cache reads and cache writes;
  ``cache_read_tokens`` and ``cache_write_tokens`` are subsets of it. ``output_tokens`` includes
  ``reasoning_tokens``.
* A request decoded from a client keeps the client's body (``passthrough``) for an upstream of
  the same format; a policy stage changes a request with ``edit`` so the change reaches that
  upstream too (see ``core.passthrough``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import orjson

from waypost.core.passthrough import Passthrough

Role = Literal["system", "user", "assistant"]
# Bookkeeping of a request, not what it asks for: ``edit`` does not change these.
_NOT_EDITABLE = frozenset({"source_format", "passthrough", "notes"})


def _edit(req: ChatRequest | EmbeddingRequest, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if name in _NOT_EDITABLE:
            raise AttributeError(f"{name!r} is not a field a policy stage edits")
        setattr(req, name, value)
    if req.passthrough is not None:
        req.passthrough = req.passthrough.with_edits(fields)


class FinishReason(StrEnum):
    """Why the model stopped. ``stop`` is a natural end of turn."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    STOP_SEQUENCE = "stop_sequence"
    CONTENT_FILTER = "content_filter"
    REFUSAL = "refusal"
    PAUSE = "pause"


@dataclass(slots=True)
class TextPart:
    text: str
    cache_control: dict[str, Any] | None = None
    kind: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image given inline (``data`` base64 + ``media_type``) or by ``url``."""

    data: str | None = None
    media_type: str | None = None
    url: str | None = None
    detail: str | None = None
    cache_control: dict[str, Any] | None = None
    kind: Literal["image"] = "image"


@dataclass(slots=True)
class DocumentPart:
    """A document (e.g. PDF) given inline as base64 ``data``, as plain ``text``, or by ``url``."""

    data: str | None = None
    media_type: str | None = None
    url: str | None = None
    text: str | None = None
    title: str | None = None
    filename: str | None = None
    cache_control: dict[str, Any] | None = None
    kind: Literal["document"] = "document"


@dataclass(slots=True)
class ToolCallPart:
    id: str
    name: str
    arguments: str = "{}"
    kind: Literal["tool_call"] = "tool_call"

    def input(self) -> Any:
        """The parsed arguments; ``{}`` for empty text. Raises ``ValueError`` on invalid JSON."""
        if not self.arguments.strip():
            return {}
        return orjson.loads(self.arguments)

    def input_object(self) -> tuple[dict[str, Any], str | None]:
        """The arguments as a JSON object, for formats that carry them as one: ``(value, None)``,
        or ``({}, why)`` when they are not valid JSON or not an object."""
        try:
            value = self.input()
        except ValueError:
            return {}, "had arguments that are not valid JSON"
        if not isinstance(value, dict):
            return {}, "had arguments that are not a JSON object"
        return value, None


@dataclass(slots=True)
class ToolResultPart:
    tool_call_id: str
    content: list[TextPart | ImagePart | DocumentPart] = field(default_factory=list)
    is_error: bool = False
    cache_control: dict[str, Any] | None = None
    kind: Literal["tool_result"] = "tool_result"

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class ThinkingPart:
    """Model reasoning. ``redacted`` thinking carries opaque ``data`` instead of ``text``."""

    text: str = ""
    signature: str | None = None
    redacted: bool = False
    data: str | None = None
    kind: Literal["thinking"] = "thinking"


Part = TextPart | ImagePart | DocumentPart | ToolCallPart | ToolResultPart | ThinkingPart


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Part] = field(default_factory=list)
    name: str | None = None

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None


@dataclass(slots=True)
class ToolChoice:
    """``auto`` (model decides), ``none``, ``required`` (any tool), or ``tool`` (the one ``name``)."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None
    parallel: bool | None = None  # None: the provider's default (parallel allowed)


@dataclass(slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Thinking:
    """Extended thinking / reasoning. ``effort`` is OpenAI's ``reasoning_effort`` vocabulary."""

    enabled: bool = True
    budget_tokens: int | None = None
    effort: str | None = None
    adaptive: bool = False


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    max_tokens: int | None = None
    # How many completions the upstream generates for this request (OpenAI ``n``; on legacy
    # completions ``max(n, best_of)`` per prompt). Only same-format upstreams honour more than one.
    choices: int = 1
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    thinking: Thinking | None = None
    stream: bool = False
    include_usage: bool = False  # the client asked for usage in the stream (OpenAI)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Tools of the caller's format that only an upstream of that same format runs (the Responses
    # API's built-in tools: web search, file search...), as the client sent them. They reach the
    # upstream in the pass-through body; a request with any is refused by every other provider.
    hosted_tools: list[dict[str, Any]] = field(default_factory=list)
    # Where the request came from, and the client's body for an upstream of that format.
    source_format: str | None = None
    passthrough: Passthrough | None = None
    # What decoding and the policy stages dropped or approximated (human-readable). Encoders
    # return their own notes (``wire.encoded.Encoded``) and never add to these.
    notes: list[str] = field(default_factory=list)

    def system_text(self) -> str:
        return "\n\n".join(m.text() for m in self.messages if m.role == "system")

    def edit(self, **fields: Any) -> None:
        """Change fields after decoding (a policy stage's edit) so that the change reaches every
        upstream: the same-format fast path re-encodes exactly these fields over the client's
        body. Assigning attributes directly would not reach an upstream of the client's format."""
        _edit(self, fields)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    # Of ``cache_write_tokens``, those written for an hour (Anthropic's 1-hour cache, dearer than
    # the default 5-minute one); the rest were written at the default duration.
    cache_write_1h_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def merge(self, other: Usage) -> None:
        """Merge a later snapshot: providers report cumulative counts, so keep the maximum."""
        # Comparisons, not ``max``: merged for every usage a stream reports.
        if other.input_tokens > self.input_tokens:
            self.input_tokens = other.input_tokens
        if other.output_tokens > self.output_tokens:
            self.output_tokens = other.output_tokens
        if other.cache_read_tokens > self.cache_read_tokens:
            self.cache_read_tokens = other.cache_read_tokens
        if other.cache_write_tokens > self.cache_write_tokens:
            self.cache_write_tokens = other.cache_write_tokens
        if other.reasoning_tokens > self.reasoning_tokens:
            self.reasoning_tokens = other.reasoning_tokens
        if other.cache_write_1h_tokens > self.cache_write_1h_tokens:
            self.cache_write_1h_tokens = other.cache_write_1h_tokens


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    content: list[Part] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None
    usage: Usage = field(default_factory=Usage)
    created: int = 0
    # The upstream body, when it is already in the caller's wire format (same-format fast path).
    raw: bytes | None = field(default=None, compare=False, repr=False)
    # ``raw`` as the provider parsed it, when it kept it: the cost goes into its usage object
    # without parsing the body again (``api/chat.py``). Set with ``raw``, never edited elsewhere.
    raw_json: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.content if isinstance(p, ToolCallPart)]


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    inputs: list[str] = field(default_factory=list)
    token_inputs: list[list[int]] | None = None  # OpenAI also accepts pre-tokenised input
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] = "float"
    input_type: str | None = None  # a retrieval hint: "query" or "document" where providers take one
    user: str | None = None
    source_format: str | None = None
    passthrough: Passthrough | None = None
    notes: list[str] = field(default_factory=list)

    def edit(self, **fields: Any) -> None:
        """As ``ChatRequest.edit``."""
        _edit(self, fields)


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    vectors: list[list[float]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
