"""The attributes of a request's spans and of the GenAI client metrics, read from its
``RequestContext`` once it is over (docs/operations.md, "Traces").

Names follow the OpenTelemetry GenAI semantic conventions of the pinned
``opentelemetry-semantic-conventions`` release (pyproject.toml); a test holds every name used here
to that registry, so none is invented or deprecated (``gen_ai.provider.name``, never the old
``gen_ai.system``). Our own attributes are in the ``waypost.`` namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from waypost.core.context import Attempt, RequestContext
from waypost.core.types import ChatRequest, Usage

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
MAX_TOKENS = "gen_ai.request.max_tokens"
TEMPERATURE = "gen_ai.request.temperature"
TOP_P = "gen_ai.request.top_p"
STREAM = "gen_ai.request.stream"
INPUT_TOKENS = "gen_ai.usage.input_tokens"  # cache reads and writes included, as the convention says
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"  # reasoning included
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
INPUT_MESSAGES = "gen_ai.input.messages"  # only with audit.log_bodies
OUTPUT_MESSAGES = "gen_ai.output.messages"  # only with audit.log_bodies
TOKEN_TYPE = "gen_ai.token.type"  # the token usage metric's
ERROR_TYPE = "error.type"
HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS = "http.response.status_code"

# Waypost's own (a namespace of ours: not in the registry by design).
REQUEST_ID = "waypost.request_id"
DEPLOYMENT = "waypost.deployment"
ATTEMPT = "waypost.attempt"
ANSWERED_BY = "waypost.answered_by"

# The GenAI names of the provider types whose well-known value differs from ours; others are ours.
PROVIDER_NAMES = {
    "azure": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
}
# The operation each data-plane endpoint performs (``RequestContext.endpoint``).
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "classify": "chat",
    "plan": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
    "embed": "embeddings",
}

Attributes = dict[str, Any]
Mask = Callable[[str], str]


def operation_of(ctx: RequestContext) -> str:
    return OPERATIONS.get(ctx.endpoint, ctx.endpoint)


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


def request_model(ctx: RequestContext) -> str:
    req = ctx.req
    return req.model if req is not None else ""


def span_name(operation: str, model: str) -> str:
    """The convention's span name: ``{operation} {model}``."""
    return f"{operation} {model}" if model else operation


def served_attempt(ctx: RequestContext) -> Attempt | None:
    """The attempt that answered: the router stops at it, so it is the last one."""
    return ctx.attempts[-1] if ctx.served is not None and ctx.attempts else None


def error_type(ctx: RequestContext) -> str | None:
    if ctx.error is not None:
        return type(ctx.error).__name__
    if ctx.status == 499:
        return "ClientGone"
    return str(ctx.status) if ctx.status >= 400 else None


def request_attributes(ctx: RequestContext, route: str, mask: Mask | None) -> Attributes:
    """The request span's: what was asked, who served it, what it used. ``mask``: bodies go in
    (masked) only when body logging is on."""
    attrs: Attributes = {
        OPERATION: operation_of(ctx),
        HTTP_METHOD: "POST",
        HTTP_ROUTE: route,
        HTTP_STATUS: ctx.status,
        REQUEST_ID: ctx.request_id,
    }
    if ctx.req is not None:
        attrs[REQUEST_MODEL] = ctx.req.model
        attrs.update(parameters(ctx))
    if ctx.served is not None:
        dep = ctx.served.deployment
        attrs[PROVIDER] = provider_name(dep.settings.preset or dep.provider)
        attrs[DEPLOYMENT] = dep.name
    if ctx.answered_by is not None:
        attrs[ANSWERED_BY] = ctx.answered_by
    attrs.update(answer(ctx))
    if ctx.usage is not None:
        attrs.update(usage_attributes(ctx.usage))
    if ctx.stream and ctx.first_byte_at is not None:
        attrs[TIME_TO_FIRST_CHUNK] = ctx.first_byte_at - ctx.started
    if (err := error_type(ctx)) is not None:
        attrs[ERROR_TYPE] = err
    if mask is not None:
        attrs.update(bodies(ctx, mask))
    return attrs


def attempt_attributes(ctx: RequestContext, attempt: Attempt, provider: str, served: bool) -> Attributes:
    """An upstream attempt's span: the call as the upstream saw it (its metrics' attributes and
    more). ``provider``: the preset or provider type it went to (``TraceIds.attempt_providers``)."""
    attrs = metric_attributes(ctx, attempt, provider, served)
    attrs[DEPLOYMENT] = attempt.model
    attrs[ATTEMPT] = attempt.number
    attrs.update(parameters(ctx))
    if attempt.status:
        attrs[HTTP_STATUS] = attempt.status
    if served:
        attrs.update(answer(ctx))
        usage = attempt.usage or ctx.usage
        if usage is not None:
            attrs.update(usage_attributes(usage))
        if ctx.stream and attempt.ended is not None:
            attrs[TIME_TO_FIRST_CHUNK] = attempt.ended - attempt.started  # its stream opened then
    return attrs


def parameters(ctx: RequestContext) -> Attributes:
    req = ctx.req
    attrs: Attributes = {}
    if isinstance(req, ChatRequest):
        attrs[STREAM] = req.stream
        if req.max_tokens is not None:
            attrs[MAX_TOKENS] = req.max_tokens
        if req.temperature is not None:
            attrs[TEMPERATURE] = req.temperature
        if req.top_p is not None:
            attrs[TOP_P] = req.top_p
    return attrs


def answer(ctx: RequestContext) -> Attributes:
    attrs: Attributes = {}
    if ctx.response_model:
        attrs[RESPONSE_MODEL] = ctx.response_model
    if ctx.finish_reason:
        attrs[FINISH_REASONS] = [str(ctx.finish_reason)]  # the enum's plain value
    return attrs


def usage_attributes(usage: Usage) -> Attributes:
    attrs: Attributes = {INPUT_TOKENS: usage.input_tokens, OUTPUT_TOKENS: usage.output_tokens}
    if usage.cache_read_tokens:
        attrs[CACHE_READ_TOKENS] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        attrs[CACHE_CREATION_TOKENS] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        attrs[REASONING_TOKENS] = usage.reasoning_tokens
    return attrs


def bodies(ctx: RequestContext, mask: Mask) -> Attributes:
    """What was asked and answered, masked like the audit log's bodies (``audit.log_bodies``)."""
    attrs: Attributes = {}
    body = ctx.body
    if isinstance(body, dict):
        asked = {k: body[k] for k in ("system", "messages", "prompt", "input") if k in body}
        if asked:
            attrs[INPUT_MESSAGES] = mask(orjson.dumps(asked).decode())
    if ctx.response_body is not None:
        attrs[OUTPUT_MESSAGES] = mask(ctx.response_body.decode("utf-8", "replace"))
    return attrs


def metric_attributes(ctx: RequestContext, attempt: Attempt, provider: str, served: bool) -> Attributes:
    """The GenAI client metrics' attributes for one attempt (low cardinality: no ids)."""
    attrs: Attributes = {
        OPERATION: operation_of(ctx),
        PROVIDER: provider_name(provider),
        REQUEST_MODEL: attempt.upstream_model,
    }
    if served and ctx.response_model:
        attrs[RESPONSE_MODEL] = ctx.response_model
    if attempt.error is not None or attempt.ended is None:
        attrs[ERROR_TYPE] = attempt.error or "Cancelled"
    return attrs
