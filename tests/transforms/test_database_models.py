"""Models created through /admin/models carry header rules and transformations too: checked when
saved (a bad one is a 400 naming the field), stored, reloaded, and applied at the fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control, message
from tests.fakes import OpenAIUpstream
from tests.harness import settings

RULES = {"force": {"x-team": "research"}, "drop": [{"regex": "^x-title$"}]}
TRANSFORMATIONS = [
    {"type": "regex_replace", "name": "mask-ids", "pattern": "ID-\\d+", "replacement": "ID-?"},
    {"type": "jsonpath_add", "path": "$.metadata.source", "value": "waypost"},
]


@pytest.fixture
async def api(openai_upstream: OpenAIUpstream, database: dict[str, Any]) -> AsyncIterator[Control]:
    async with control(settings(database=database)) as client:
        yield client


async def ask(api: Control, model: str, text: str) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return await api.post("/v1/chat/completions", body)


async def test_a_stored_model_s_rules_reach_its_upstream_and_can_be_changed(
    api: Control, openai_upstream: OpenAIUpstream
) -> None:
    created = await api.post(
        "/admin/models",
        {
            "name": "db-gpt",
            "provider": "openai",
            "base_url": openai_upstream.url + "/v1",
            "api_key": openai_upstream.api_key,
            "headers": {"X-Title": "app"},
            "header_rules": RULES,
            "transformations": TRANSFORMATIONS,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["config"]["transformations"][0]["name"] == "mask-ids"

    assert (await ask(api, "db-gpt", "about ID-42")).status_code == 200
    first = openai_upstream.last
    changed = await api.patch(
        "/admin/models/db-gpt", {"transformations": [{**TRANSFORMATIONS[0], "enabled": False}]}
    )
    assert changed.status_code == 200, changed.text
    assert (await ask(api, "db-gpt", "about ID-42")).status_code == 200
    second = openai_upstream.last

    assert first.headers["x-team"] == "research" and "x-title" not in first.headers
    assert first.json["messages"][0]["content"] == "about ID-?"
    assert first.json["metadata"] == {"source": "waypost"}
    assert second.json["messages"][0]["content"] == "about ID-42" and "metadata" not in second.json
    assert second.headers["x-team"] == "research"  # the header rules were left as they were


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"header_rules": {"force": {"Authorization": "Bearer stolen"}}}, "header_rules.force"),
        ({"transformations": [{"type": "jsonpath_drop", "path": "$.model"}]}, "transformations"),
    ],
)
async def test_a_stored_model_with_a_bad_rule_is_refused_naming_the_field(
    api: Control, fields: dict[str, Any], named: str
) -> None:
    refused = await api.post("/admin/models", {"name": "bad", "provider": "mock", **fields})

    assert refused.status_code == 400, refused.text
    assert named in message(refused)
