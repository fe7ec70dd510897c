"""Fields that would steer a downstream proxy are found at the top level and under every
non-content field, at any depth, and never inside content (messages, tools, schemas, prompts)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from waypost.wire.steering import is_steering_key, without_steering


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    "key", ["api_base", "base_url", "api_key", "extra_headers", "extra_body", "user_config", "router_config"]
)
def test_the_named_keys_and_any_config_key_steer(key: str) -> None:
    assert is_steering_key(key)


@pytest.mark.parametrize("key", ["output_config", "metadata", "max_tokens", "config", "configuration"])
def test_format_fields_and_lookalikes_do_not_steer(key: str) -> None:
    assert not is_steering_key(key)


def test_top_level_fields_are_dropped_and_the_rest_kept_in_order() -> None:
    body = chat(base_url="http://evil", temperature=0.5, api_key="sk-x", stream=True)
    cleaned, found = without_steering(body)
    assert found == ["base_url", "api_key"]
    assert list(cleaned) == ["model", "messages", "temperature", "stream"]


def test_nested_fields_of_non_content_objects_are_dropped_at_any_depth() -> None:
    body = chat(
        metadata={"user_id": "u1", "api_base": "http://evil", "deep": {"list": [{"user_config": {}}, 3]}},
        stream_options={"include_usage": True, "extra_headers": {"x": "y"}},
    )
    cleaned, found = without_steering(body)
    assert found == ["metadata.api_base", "metadata.deep.list[0].user_config", "stream_options.extra_headers"]
    assert cleaned["metadata"] == {"user_id": "u1", "deep": {"list": [{}, 3]}}
    assert cleaned["stream_options"] == {"include_usage": True}


def test_content_is_never_touched() -> None:
    schema = {"type": "object", "properties": {"base_url": {"type": "string"}, "api_key": {"type": "string"}}}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x", "extra_body": {}}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"api_key": 1}'}}
                ],
                "api_base": "kept: inside a message",
            },
        ],
        "system": [{"type": "text", "text": "s", "base_url": "kept"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
        "tool_choice": {"type": "function", "function": {"name": "f", "base_url": "kept"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort_config": 1},
        "prompt": [{"api_key": "kept"}],
        "input": [{"api_key": "kept"}],
        "prediction": {"type": "content", "content": {"base_url": "kept"}},
        "mcp_servers": [{"type": "url", "url": "https://mcp.example", "tool_config": {}}],
    }
    original = copy.deepcopy(body)
    cleaned, found = without_steering(body)
    assert found == []
    assert cleaned is body
    assert body == original


def test_the_body_given_is_never_changed() -> None:
    body = chat(api_key="sk-x", metadata={"base_url": "http://evil", "a": [{"extra_body": 1}]})
    original = copy.deepcopy(body)
    cleaned, _ = without_steering(body)
    assert body == original
    assert cleaned == chat(metadata={"a": [{}]})


def test_a_body_without_steering_fields_is_returned_as_it_is() -> None:
    body = chat(
        metadata={"user_id": "u"}, stop=["a", "b"], thinking={"type": "enabled", "budget_tokens": 2000}
    )
    assert without_steering(body) == (body, [])
    assert without_steering(body)[0] is body


def test_the_paths_of_the_fields_are_listed_in_order() -> None:
    assert without_steering(chat(extra_query={"a": 1}, metadata={"x": {"api_version": "1"}}))[1] == [
        "extra_query",
        "metadata.x.api_version",
    ]
