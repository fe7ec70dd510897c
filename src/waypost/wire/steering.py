"""Body fields that would steer a downstream proxy: found and removed, without touching content.

Same-format upstreams receive the client's body almost as sent, and an upstream that is itself a
proxy (LiteLLM and the like) may honour fields that name another endpoint, another key, extra
headers or a whole router configuration. Waypost chooses the upstream and its credentials, so
those fields never leave it.

A key is a steering key when it is one of ``STEERING_KEYS`` or ends in ``_config`` (LiteLLM's
``user_config`` carries a whole model list with URLs and keys), except a field the client formats
define themselves (Anthropic's ``output_config``).

Where keys are looked for, precisely:

* every top-level key of the body;
* at any depth (objects and arrays) under every top-level field that is not content;
* never under the content fields of ``CONTENT_FIELDS``: messages, system prompts, prompts and
  inputs, tools and their JSON schemas, tool choice, response formats (schemas again), predicted
  output, logit bias and Anthropic's MCP server list. A tool parameter named ``base_url`` or a
  tool call whose arguments hold an ``api_key`` is the user's data and stays as it is.

Pure functions: the body given is never changed; a copy is made only when something is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STEERING_KEYS = frozenset(
    {
        # where the call goes
        "api_base",
        "base_url",
        "api_url",
        "azure_endpoint",
        "api_version",
        # with which credentials
        "api_key",
        "azure_ad_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "aws_region_name",
        "aws_profile_name",
        "vertex_credentials",
        "vertex_project",
        "vertex_location",
        # and what else goes with it
        "extra_headers",
        "extra_body",
        "extra_query",
    }
)
STEERING_SUFFIX = "_config"
# Fields of the client formats themselves whose names match the rule above.
FORMAT_FIELDS = frozenset({"output_config"})
CONTENT_FIELDS = frozenset(
    {
        "messages",
        "system",
        "prompt",
        "suffix",
        "input",
        "tools",
        "functions",
        "tool_choice",
        "function_call",
        "response_format",
        "output_config",
        "prediction",
        "logit_bias",
        "mcp_servers",
    }
)
_NOTHING: frozenset[str] = frozenset()  # below the top level, every field is looked into


def is_steering_key(key: str) -> bool:
    """Whether a body key would steer a downstream proxy (``output_config`` and co. excepted)."""
    return (key in STEERING_KEYS or key.endswith(STEERING_SUFFIX)) and key not in FORMAT_FIELDS


def without_steering(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], list[str]]:
    """``body`` minus its steering fields, and their paths (``metadata.base_url``,
    ``x[0].api_key``). ``body`` itself when there are none."""
    found: list[str] = []
    return _scrub_object(body, "", found, CONTENT_FIELDS), found


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _scrub_object(
    obj: Mapping[str, Any], path: str, found: list[str], skip: frozenset[str]
) -> Mapping[str, Any]:
    """``obj`` without steering keys, looking inside every value but those under ``skip``.
    The same object when nothing was removed; otherwise a copy (``obj`` stays as it was)."""
    out: dict[str, Any] | None = None
    for key, value in obj.items():
        # is_steering_key, inlined: this runs on every key of every request body.
        if key in STEERING_KEYS or (key.endswith(STEERING_SUFFIX) and key not in FORMAT_FIELDS):
            found.append(_join(path, key))
            if out is None:
                out = _head(obj, key)
            continue
        kind = type(value)
        if (kind is dict or kind is list) and key not in skip:
            cleaned = _scrub(value, _join(path, key), found)
            if cleaned is not value and out is None:
                out = _head(obj, key)
            value = cleaned
        if out is not None:
            out[key] = value
    return obj if out is None else out


def _head(obj: Mapping[str, Any], stop: str) -> dict[str, Any]:
    """The entries of ``obj`` before key ``stop``: the ones already known to stay."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key == stop:
            break
        out[key] = value
    return out


def _scrub(value: Any, path: str, found: list[str]) -> Any:
    if isinstance(value, dict):
        return _scrub_object(value, path, found, _NOTHING)
    if isinstance(value, list):
        out: list[Any] | None = None
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                cleaned = _scrub(item, f"{path}[{i}]", found)
                if cleaned is not item and out is None:
                    out = value[:i]
                item = cleaned
            if out is not None:
                out.append(item)
        return value if out is None else out
    return value
