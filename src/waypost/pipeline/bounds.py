"""Upper bounds on request fields, and the policy for fields that would steer a downstream proxy.

Metering, limits and budgets need a bounded worst case per request: how many completions, how
many output tokens each, how much input. A request above a bound is refused with a 400 that names
the field (in the caller's format); nothing is clamped, so a client never gets less than it asked
for without knowing. The bounds come from the ``limits`` settings section and, for output tokens,
from each model's ``max_output_tokens``.

The router applies this once per request, before the first upstream call (``admit_*``), and
narrows each request's deployments to those whose output maximum it fits (``fitting``). Both edit
or refuse the canonical request, the client's body (``passthrough``) included, so the
same-format fast path sees the same.
What the formats themselves bound (``top_logprobs`` <= 20, ...) is checked while decoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from waypost.core.errors import BadRequest
from waypost.core.types import ChatRequest, EmbeddingRequest
from waypost.providers.base import Deployment
from waypost.settings import LimitsSettings, Settings
from waypost.wire.steering import without_steering

STEERING_NOTE = "fields that would steer an upstream proxy dropped: "


@dataclass(frozen=True, slots=True)
class RequestBounds:
    """The bounds and the steering-field policy, built once from the settings."""

    limits: LimitsSettings = field(default_factory=LimitsSettings)
    steering: Literal["drop", "refuse"] = "drop"

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestBounds:
        return cls(settings.limits, settings.security.steering_fields)

    def admit_chat(self, req: ChatRequest) -> None:
        """Refuse a chat request above a static bound; drop (or refuse) its steering fields."""
        limits = self.limits
        if req.choices > limits.max_choices:
            param = _choices_param(req)
            raise BadRequest(
                f"{param}: the request asks for {req.choices} completions, above the limit of "
                f"{limits.max_choices}.",
                param=param,
            )
        # The client's body counts too: the fast path forwards entries the decoder left out.
        raw = _client_body(req)
        messages = max(len(req.messages), _length(raw.get("messages")))
        if messages > limits.max_messages:
            raise _too_many("messages", messages, "messages", limits.max_messages)
        functions = _length(raw.get("functions"))
        tools = max(len(req.tools), _length(raw.get("tools")) + functions)
        if tools > limits.max_tools:
            param = "functions" if functions > tools - functions else "tools"
            raise _too_many(param, tools, "tools", limits.max_tools)
        if len(req.stop) > limits.max_stop_sequences:
            param = "stop_sequences" if req.source_format == "anthropic" else "stop"
            raise _too_many(param, len(req.stop), "stop sequences", limits.max_stop_sequences)
        self.admit_fields(req)

    def admit_embedding(self, req: EmbeddingRequest) -> None:
        """Refuse an embeddings request above a bound; drop (or refuse) its steering fields."""
        limits = self.limits
        inputs = len(req.token_inputs) if req.token_inputs is not None else len(req.inputs)
        if inputs > limits.max_embedding_inputs:
            raise _too_many("input", inputs, "inputs", limits.max_embedding_inputs)
        if req.dimensions is not None and req.dimensions > limits.max_embedding_dimensions:
            raise BadRequest(
                f"dimensions: {req.dimensions} exceeds the limit of {limits.max_embedding_dimensions}.",
                param="dimensions",
            )
        self.admit_fields(req)

    def admit_fields(self, req: ChatRequest | EmbeddingRequest) -> None:
        """Drop the body's steering fields (noted for ``X-Waypost-Dropped``), or refuse the first."""
        passthrough = req.passthrough
        if passthrough is None:
            return
        cleaned, found = without_steering(passthrough.body)
        if not found:
            return
        if self.steering == "refuse":
            raise BadRequest(
                f"{found[0]}: this field would steer the upstream call, and this gateway refuses it.",
                param=found[0],
            )
        req.passthrough = passthrough.with_body(cleaned)
        req.notes.append(STEERING_NOTE + ", ".join(_short(path) for path in found))

    def output_limit(self, dep: Deployment) -> int:
        """The most output tokens a request may ask of ``dep``: its own maximum, within the ceiling."""
        ceiling = self.limits.max_output_tokens
        own = dep.settings.max_output_tokens
        return ceiling if own is None or own > ceiling else own

    def fitting(self, req: ChatRequest, chain: Sequence[Deployment]) -> list[Deployment]:
        """The deployments whose output maximum the request's output caps fit. Refused (400 naming
        the field) when none does; a fallback that cannot take it is skipped."""
        caps = output_caps(req)
        if not caps:
            return list(chain)
        param, asked = max(caps, key=lambda cap: cap[1])
        fit = [dep for dep in chain if asked <= self.output_limit(dep)]
        if fit:
            return fit
        limit = max(self.output_limit(dep) for dep in chain)
        raise BadRequest(
            f"{param}: {asked} exceeds the limit of {limit} for model '{req.model}'.", param=param
        )


def output_caps(req: ChatRequest) -> list[tuple[str, int]]:
    """Each field of the request that bounds its output tokens, with its value. An OpenAI body
    may carry both ``max_completion_tokens`` (the canonical one then) and ``max_tokens``, and the
    fast path forwards both: a server that knows only ``max_tokens`` would honour that one."""
    caps: list[tuple[str, int]] = []
    raw = _client_body(req)
    both = req.source_format == "openai" and raw.get("max_completion_tokens") is not None
    if req.max_tokens is not None:
        caps.append(("max_completion_tokens" if both else "max_tokens", req.max_tokens))
    if both:
        other = raw.get("max_tokens")
        if isinstance(other, int | float) and not isinstance(other, bool):
            caps.append(("max_tokens", int(other)))  # the decoder accepted it as an integer
    thinking = req.thinking
    if thinking is not None and thinking.budget_tokens is not None:
        caps.append(("thinking.budget_tokens", thinking.budget_tokens))
    return caps


def _client_body(req: ChatRequest) -> Mapping[str, Any]:
    """The body the client sent, which the same-format fast path forwards; empty if none."""
    return req.passthrough.body if req.passthrough is not None else {}


def _too_many(param: str, count: int, what: str, limit: int) -> BadRequest:
    return BadRequest(f"{param}: {count} {what} exceed the limit of {limit}.", param=param)


def _length(value: Any) -> int:
    return len(value) if type(value) is list else 0


def _choices_param(req: ChatRequest) -> str:
    """The field that multiplied the completions: ``n``, or on legacy completions ``best_of``
    (when larger) or ``prompt`` (several prompts, one completion each)."""
    raw = _client_body(req)
    n, best_of = raw.get("n") or 1, raw.get("best_of") or 1
    if req.source_format == "openai_completions" and max(n, best_of) == 1:
        return "prompt"
    return "best_of" if best_of > n else "n"


def _short(path: str) -> str:
    """A client-chosen key, at most 80 characters. (``X-Waypost-Dropped`` makes every note
    printable ASCII, this one too.)"""
    return path if len(path) <= 80 else path[:77] + "..."
