"""What a cached answer is keyed on, whose it is, and which requests are cached at all.

The key is a hash of everything that shapes the answer, after every earlier stage's edits (a
rule's reroute or rewrite, a transformation: the cache is the last stage, so it keys the request
as it would go upstream):

* the canonical request's generating fields: model, messages (system included), tools and tool
  choice, response format, thinking, token limit, temperature, top_p, top_k, stop sequences,
  seed, penalties and the number of choices;
* every field of the client's body the canonical model does not carry (``logprobs``,
  ``logit_bias``, ``service_tier``, Anthropic's ``output_config``, ...), verbatim: a
  same-format upstream receives them, and they may change the answer. When decoding dropped
  something (a note such as an audio part), the whole body, since the canonical request is
  then not all the upstream sees;
* the endpoint family: chat (``/v1/chat/completions``, ``/v1/messages`` and ``/v1/responses``
  share entries: an answer replays into any of the formats) or legacy completions (a raw
  continuation, never shared);
* the client headers forwarded upstream (``ctx.passthrough_headers``: ``anthropic-beta`` turns on
  features that change the answer), but ``anthropic-version``: it shapes the wire format, which a
  replay writes itself, not the answer, and every SDK release sends its own (keying it would
  split the entries shared between formats and SDK versions);
* the tenant: the caller's user, or (``cache.tenant: group``) the caller's exact set of groups.

Not in it: ``stream`` and its usage option (an answer replays streamed or not), ``user`` and
``metadata`` (labels for the provider's records, which do not change the answer), the caller's
tags and its other headers.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Mapping
from typing import Any

import orjson

from waypost.core.types import ChatRequest
from waypost.security.principal import Principal

VERSION = 2  # part of every key: entries of another layout are never found (2: fields as a list)
CHAT_ENDPOINTS = frozenset({"chat", "messages", "completions", "responses"})
# The canonical fields that shape an answer (``stream``, ``include_usage``, ``user`` and
# ``metadata`` do not).
KEY_FIELDS = (
    "model",
    "messages",
    "max_tokens",
    "choices",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "tools",
    "tool_choice",
    "response_format",
    "thinking",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)
_key_values = operator.attrgetter(*KEY_FIELDS)

# Per client format, the body fields its decoder carries into the canonical request (or that do
# not change the answer); any other field of the body is keyed verbatim.
READ_FIELDS: dict[str, frozenset[str]] = {
    "openai": frozenset(
        {
            "model",
            "messages",
            "max_tokens",
            "max_completion_tokens",
            "n",
            "temperature",
            "top_p",
            "top_k",
            "stop",
            "tools",
            "functions",
            "tool_choice",
            "function_call",
            "parallel_tool_calls",
            "response_format",
            "reasoning_effort",
            "thinking",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "stream",
            "stream_options",
            "user",
            "metadata",
        }
    ),
    "anthropic": frozenset(
        {
            "model",
            "messages",
            "system",
            "max_tokens",
            "temperature",
            "top_p",
            "top_k",
            "stop_sequences",
            "tools",
            "tool_choice",
            "thinking",
            "stream",
            "metadata",
        }
    ),
    # The Responses API: ``store`` and ``previous_response_id`` do not change the answer (a
    # previous response's conversation is expanded into ``messages``, which are keyed).
    "openai_responses": frozenset(
        {
            "model",
            "input",
            "instructions",
            "max_output_tokens",
            "temperature",
            "top_p",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "text",
            "reasoning",
            "stream",
            "store",
            "previous_response_id",
            "user",
            "metadata",
        }
    ),
    "openai_completions": frozenset(
        {
            "model",
            "prompt",
            "max_tokens",
            "n",
            "best_of",
            "temperature",
            "top_p",
            "stop",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "stream",
            "stream_options",
            "user",
        }
    ),
}
_STREAM_FIELDS = frozenset({"stream", "stream_options"})
# Forwarded client headers that do not change the answer (see the module's docstring).
UNKEYED_HEADERS = frozenset({"anthropic-version"})


def tenant_of(principal: Principal | None, mode: str) -> tuple[str, tuple[str, ...]]:
    """The caller's tenant (part of the key) and the tags its entries carry for invalidation:
    its user, and under ``group`` its groups too."""
    if principal is None:
        return "anonymous", ()
    user = f"user:{principal.user_id}"
    if mode == "group" and principal.groups:
        groups = tuple(f"group:{g}" for g in sorted(principal.groups))
        return "|".join(groups), (user, *groups)
    return user, (user,)


def sampled(req: ChatRequest) -> bool:
    """Whether the request samples: a temperature above 0, or none (every provider's default is
    above 0: 1 for OpenAI and Anthropic)."""
    return req.temperature is None or req.temperature > 0


def replayable(req: ChatRequest) -> bool:
    """Whether the answer can be replayed whole from the canonical response (text, tool calls,
    thinking): not when the request asks a same-format upstream for more (log probabilities,
    audio, Anthropic's server tools and MCP servers, whose blocks the canonical model drops)."""
    body: Mapping[str, Any] = req.passthrough.body if req.passthrough is not None else {}
    source = req.source_format
    if source == "openai":
        modalities = body.get("modalities")
        return not (
            body.get("logprobs")
            or body.get("top_logprobs") is not None
            or body.get("audio") is not None
            or (isinstance(modalities, list) and any(m != "text" for m in modalities))
        )
    if source == "openai_completions":
        return body.get("logprobs") is None
    if source == "openai_responses":  # built-in tools' results and log probabilities are not canonical
        include = body.get("include")
        logprobs = isinstance(include, list) and "message.output_text.logprobs" in include
        return not (req.hosted_tools or logprobs or body.get("top_logprobs"))
    if source == "anthropic":
        tools = body.get("tools")
        server_tools = isinstance(tools, list) and any(
            isinstance(t, dict) and t.get("type") not in (None, "custom") for t in tools
        )
        return not (server_tools or body.get("mcp_servers") or body.get("container") is not None)
    return True


def cache_key(req: ChatRequest, tenant: str, decoder_notes: int, forwarded: Mapping[str, str]) -> str:
    """The request's key: a hex digest of what shapes its answer and whose it is. ``forwarded``:
    the client headers the upstream receives (``ctx.passthrough_headers``)."""
    fields = _key_values(req)  # in KEY_FIELDS' order (a list: half the cost of a dict)
    source = req.source_format or ""
    family = "completions" if source == "openai_completions" else "chat"
    body: Mapping[str, Any] = req.passthrough.body if req.passthrough is not None else {}
    if decoder_notes:
        extra = {k: v for k, v in body.items() if k not in _STREAM_FIELDS}
    else:
        read = READ_FIELDS.get(source, _STREAM_FIELDS)
        extra = {k: v for k, v in body.items() if k not in read}
    headers = {k: v for k, v in forwarded.items() if k not in UNKEYED_HEADERS}
    material = orjson.dumps([VERSION, family, tenant, fields, extra, headers])
    return hashlib.blake2b(material, digest_size=20).hexdigest()
