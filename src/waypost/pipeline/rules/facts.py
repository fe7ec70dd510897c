"""What rule conditions read about a request, worked out once per request and only when a
condition asks (the text of the messages is joined at most once, the prompt counted at most once).

``RequestFacts`` reads a live request (``RequestContext``); a replay over the audit log reads a
row (``pipeline.rules.replay``), which lacks some of it: a fact it cannot know is ``UNKNOWN``,
with the reason, and the conditions that need it are neither true nor false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from waypost.core.context import RequestContext
from waypost.core.types import ChatRequest, DocumentPart, EmbeddingRequest, Part, TextPart, ToolResultPart
from waypost.metering.estimate import estimate_input_tokens, estimate_tokens
from waypost.pipeline.rules.quota import QuotaSpec, QuotaView
from waypost.security.principal import Principal


class Unknown:
    """A fact the evaluation cannot know (a replay's row does not hold it)."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown()

NO_HEADERS = "request headers are not kept in the audit log"
NO_BODY = "the request's body is not in the audit log (audit.log_bodies was off)"
NO_QUOTA = "the state backend did not answer"

Resolve = Callable[[str], str | None]  # a model name -> the model entry it resolves to (None: none)


def message_text(req: ChatRequest | EmbeddingRequest, target: str) -> str:
    """The text of ``req``'s messages (every turn but the system prompt, tool results included)
    or of its system prompt; an embedding request's inputs are its messages."""
    if isinstance(req, EmbeddingRequest):
        return "\n".join(req.inputs) if target == "messages" else ""
    if target == "system":
        return req.system_text()
    texts: list[str] = []
    for message in req.messages:
        if message.role == "system":
            continue
        for part in message.content:
            if isinstance(part, ToolResultPart):
                texts.append("".join(_part_text(p) for p in part.content))
            else:
                texts.append(_part_text(part))
    return "\n".join(t for t in texts if t)


def _part_text(part: Part) -> str:
    """A part's text: a text part's, or a plain-text document's (a document can carry the very
    content a condition looks for, as the transformations rewrite it too)."""
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, DocumentPart) and part.text:
        return part.text
    return ""


def prompt_tokens(req: ChatRequest | EmbeddingRequest) -> int:
    if isinstance(req, EmbeddingRequest):
        return estimate_tokens(req.inputs)
    return estimate_input_tokens(req)


class Facts:
    """A live request's facts. Subclasses (a replayed row) override what they know otherwise."""

    __slots__ = ("_model_key", "_texts", "_tokens", "ctx", "quotas", "resolve")

    def __init__(self, ctx: RequestContext, resolve: Resolve) -> None:
        self.ctx = ctx
        self.resolve = resolve
        self.quotas: Mapping[QuotaSpec, QuotaView] | None = None  # None: not read (or unreadable)
        self._texts: dict[str, str] = {}
        self._tokens: int | None = None
        self._model_key: str | None = None

    @property
    def principal(self) -> Principal | None:
        return self.ctx.principal

    def model(self) -> str | Unknown:
        req = self.ctx.req
        assert req is not None
        return req.model

    def parameter(self, name: str) -> Any:
        """``max_tokens``, ``temperature``, ``top_p``, ``top_k`` or ``stream``; None when unset."""
        req = self.ctx.req
        if name == "stream":
            return self.ctx.stream
        return getattr(req, name, None)

    def header(self, name: str) -> str | Unknown | None:
        return self.ctx.headers.get(name)

    def text(self, target: str) -> str | Unknown:
        text = self._texts.get(target)
        if text is None:
            req = self.ctx.req
            assert req is not None
            text = self._texts[target] = message_text(req, target)
        return text

    def tokens(self) -> int | Unknown:
        if self._tokens is None:
            req = self.ctx.req
            assert req is not None
            self._tokens = prompt_tokens(req)
        return self._tokens

    def quota(self, spec: QuotaSpec) -> QuotaView | Unknown:
        quotas = self.quotas
        if quotas is None:
            return UNKNOWN
        return quotas.get(spec) or QuotaView.EMPTY

    def model_key(self) -> str:
        """The model a per-model quota counts under: the one the request's model resolves to."""
        if self._model_key is None:
            name = self.model()
            name = name if isinstance(name, str) else ""
            self._model_key = self.resolve(name) or name
        return self._model_key

    def why_unknown(self, kind: str) -> str:
        """Why a fact of ``kind`` (header, content, parameter, function, quota) is ``UNKNOWN``."""
        return NO_QUOTA if kind == "quota" else "unknown"
