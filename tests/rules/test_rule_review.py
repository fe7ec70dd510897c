"""Edges found in review: plain-text documents are content (conditions and rewrites), a rewrite
that empties a text is refused naming the rule, a reroute meets ``metering.unpriced: block``, a
config-file reroute to a model that does not exist is refused at load, and trying rules as another
user (whose quota counters the trial shows) needs ``usage.view``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.control.client import Control, control
from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.harness import model, settings
from tests.rules.conftest import PRICES, add_rule, chat, gateway_settings
from waypost.app import build_container
from waypost.settings import ConfigError

SECRET = {"type": "content", "target": "messages", "operator": "contains", "value": "launch-codes"}


def document_body(text: str, *, in_tool_result: bool = False) -> dict[str, Any]:
    """An Anthropic request whose only text of interest is a plain-text document."""
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    if not in_tool_result:
        content: list[dict[str, Any]] = [document, {"type": "text", "text": "summarise"}]
        return {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": content}]}
    return {
        "model": "claude",
        "max_tokens": 50,
        "messages": [
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [document]}],
            },
        ],
    }


def sent_documents(claude: AnthropicUpstream) -> list[str]:
    """The text of every plain-text document the upstream received, tool results' included."""
    found: list[str] = []

    def walk(blocks: Any) -> None:
        for block in blocks if isinstance(blocks, list) else []:
            if block.get("type") == "document":
                found.append(block["source"]["data"])
            elif block.get("type") == "tool_result":
                walk(block.get("content"))

    for message in claude.last.json["messages"]:
        walk(message["content"])
    return found


@pytest.mark.parametrize("in_tool_result", [False, True])
async def test_a_content_condition_reads_plain_text_documents(
    api: Control, claude: AnthropicUpstream, in_tool_result: bool
) -> None:
    await add_rule(api, name="no-secrets", conditions=[SECRET])

    refused = await api.post(
        "/v1/messages", document_body("the launch-codes are", in_tool_result=in_tool_result)
    )
    passed = await api.post("/v1/messages", document_body("the weather is", in_tool_result=in_tool_result))

    assert refused.status_code == 403, refused.text
    assert refused.headers["x-waypost-applied-rules"] == "no-secrets"
    assert passed.status_code == 200, passed.text
    assert claude.hits == 1


async def test_message_length_counts_plain_text_documents(api: Control, claude: AnthropicUpstream) -> None:
    long = {"type": "function", "function": "message_length", "operator": "gt", "value": 500}
    await add_rule(api, name="too-long", conditions=[long])

    refused = await api.post("/v1/messages", document_body("x" * 1000))

    assert refused.status_code == 403, refused.text
    assert claude.hits == 0


@pytest.mark.parametrize("in_tool_result", [False, True])
async def test_rewrite_reaches_plain_text_documents(
    api: Control, claude: AnthropicUpstream, in_tool_result: bool
) -> None:
    await add_rule(
        api,
        name="mask",
        conditions=[SECRET],
        action={"type": "rewrite", "pattern": "launch-codes", "replacement": "[masked]"},
    )

    answer = await api.post(
        "/v1/messages", document_body("the launch-codes are", in_tool_result=in_tool_result)
    )

    assert answer.status_code == 200, answer.text
    assert sent_documents(claude) == ["the [masked] are"]


async def test_a_rewrite_that_empties_a_text_is_refused_naming_the_rule(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await add_rule(
        api,
        name="strip-all",
        conditions=[{"type": "content", "target": "messages", "operator": "contains", "value": "hush"}],
        action={"type": "rewrite", "pattern": ".*", "replacement": ""},
    )

    refused = await chat(api, content="hush now")

    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]["message"]
    assert "'strip-all'" in message and "empty" in message
    assert upstream.hits == 0


async def test_a_reroute_to_an_unpriced_model_is_refused_under_unpriced_block(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = settings(
        model("gpt", "openai", upstream.url, "sk-x", upstream_model="gpt-4o", prices=PRICES, public=True),
        model(
            "free", "openai", upstream.url, "sk-x", upstream_model="house-model-without-price", public=True
        ),
        database=database,
        metering={"unpriced": "block"},
    )
    async with control(config) as api:
        await add_rule(
            api,
            name="to-free",
            conditions=[{"type": "parameter", "parameter": "model", "operator": "exact", "value": "gpt"}],
            action={"type": "reroute", "model": "free"},
        )
        direct = await chat(api, "free")
        rerouted = await chat(api, "gpt")

    assert direct.status_code == 400  # what metering answers for the model asked for
    assert rerouted.status_code == 400, rerouted.text
    message = rerouted.json()["error"]["message"]
    assert "'to-free'" in message and "'free'" in message and "unpriced" in message
    assert upstream.hits == 0


def test_a_config_file_reroute_to_a_model_that_does_not_exist_is_refused_at_load(
    upstream: OpenAIUpstream,
) -> None:
    rules = {
        "rules": [
            {
                "name": "to-nowhere",
                "conditions": [{"type": "header", "header": "x-team", "operator": "exact", "value": "red"}],
                "action": {"type": "reroute", "model": "no-such-model"},
            }
        ]
    }

    with pytest.raises(ConfigError, match=r"'to-nowhere'.*'no-such-model'"):
        build_container(gateway_settings(upstream, rules=rules))


async def test_trying_rules_as_another_user_needs_usage_view(api: Control) -> None:
    viewer = await api.person("viewer@example.com", permissions=("rule.view",))
    auditor = await api.person("auditor@example.com", permissions=("rule.view", "usage.view"))
    other = await api.person("other@example.com")
    sample = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}

    as_other = await api.post("/admin/rules/test", {"request": sample, "user": other.id}, token=viewer.token)
    as_missing = await api.post(
        "/admin/rules/test", {"request": sample, "user": "ghost@example.com"}, token=viewer.token
    )
    as_self = await api.post(
        "/admin/rules/test", {"request": sample, "user": viewer.email}, token=viewer.token
    )
    allowed = await api.post("/admin/rules/test", {"request": sample, "user": other.id}, token=auditor.token)

    assert as_other.status_code == 403 and "usage.view" in as_other.json()["error"]["message"]
    assert as_missing.status_code == 403  # refused before the lookup: existence is not told
    assert as_self.status_code == 200, as_self.text
    assert allowed.status_code == 200, allowed.text
