"""/admin/rules: create, list, show, change, delete; validation at save time naming the field
(hostile regular expressions included); config-file rules read-only; permissions; the admin
trail; and each worker's rule cache (the worker that changed a rule applies it at once, others
within ``rules.cache_ttl``)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.control.client import Control, control
from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.rules.conftest import add_rule, chat, gateway_settings

BLOCK_RED = {
    "name": "no-red",
    "description": "Team red is paused",
    "weight": 5,
    "conditions": [{"type": "header", "header": "X-Team", "operator": "exact", "value": "red"}],
    "action": {"type": "block", "message": "paused"},
}


async def test_a_rule_is_created_listed_shown_changed_and_deleted(api: Control) -> None:
    created = await add_rule(api, **BLOCK_RED)
    assert created["source"] == "database" and created["enabled"] and created["mode"] == "enforce"
    assert created["conditions"]["and"][0]["header"] == "x-team"  # header names are kept lower-case

    listed = (await api.get("/admin/rules")).json()["data"]
    shown = (await api.get(f"/admin/rules/{created['id']}")).json()
    assert [r["name"] for r in listed] == ["no-red"] and shown == created

    changed = await api.patch("/admin/rules/no-red", {"mode": "shadow", "weight": 9})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["mode"], changed.json()["weight"]) == ("shadow", 9)
    assert changed.json()["conditions"] == created["conditions"]  # what was not sent stays
    disabled = (await api.patch("/admin/rules/no-red", {"enabled": False})).json()
    assert (disabled["enabled"], disabled["mode"]) == (False, "off")
    enabled = (await api.patch("/admin/rules/no-red", {"enabled": True})).json()
    assert enabled["mode"] == "enforce"

    assert (await api.delete("/admin/rules/no-red")).status_code == 204
    assert (await api.get("/admin/rules/no-red")).status_code == 404


async def test_changes_are_in_the_admin_trail(api: Control) -> None:
    created = await add_rule(api, **BLOCK_RED)
    await api.patch("/admin/rules/no-red", {"weight": 1})
    await api.delete("/admin/rules/no-red")

    trail = (await api.get("/admin/audit-trail", params={"target_type": "rule"})).json()["data"]

    assert [e["action"] for e in trail] == ["rule.delete", "rule.update", "rule.create"]
    assert all(e["target_id"] == str(created["id"]) for e in trail)
    assert trail[1]["before"]["weight"] == 5 and trail[1]["after"]["weight"] == 1


@pytest.mark.parametrize(
    ("rule", "field", "words"),
    [
        (
            {"conditions": [{"type": "content", "operator": "regex", "value": r"(a+)\1"}]},
            "conditions.and.0.content",
            "no backreferences",
        ),
        (
            {"conditions": [{"type": "content", "operator": "regex", "value": "(?<=a)b"}]},
            "conditions.and.0.content",
            "not a regular expression RE2 accepts",
        ),
        (
            {
                "conditions": [
                    {"type": "parameter", "parameter": "max_tokens", "operator": "contains", "value": "1"}
                ]
            },
            "conditions.and.0.parameter",
            "applies to text",
        ),
        (
            {
                "conditions": {
                    "or": [{"type": "header", "header": "bad header", "operator": "exact", "value": "x"}]
                }
            },
            "conditions.or.0.header.header",
            "not a header name",
        ),
        ({"conditions": [{"type": "weather"}]}, "conditions.and.0", "has a type"),
        (
            {"conditions": [{"type": "function", "function": "keyword_count", "operator": "gt", "value": 1}]},
            "conditions.and.0.function",
            "needs keywords",
        ),
        (
            {"conditions": [{"type": "quota", "metric": "cost", "window": 0, "operator": "gt", "value": 1}]},
            "conditions.and.0.quota.window",
            "greater than or equal to 1",
        ),
        (
            {"action": {"type": "rewrite", "pattern": "(a)", "replacement": r"\2"}},
            "action.rewrite",
            "group 2",
        ),
        ({"action": {"type": "block", "status": 200}}, "action.block.status", "400"),
        ({"action": {"type": "reroute", "model": "nope"}}, "action.model", "no model named 'nope'"),
        ({"name": "has space"}, "name", "pattern"),
    ],
)
async def test_an_invalid_rule_is_refused_naming_the_field(
    api: Control, rule: dict[str, Any], field: str, words: str
) -> None:
    answer = await api.post("/admin/rules", {"name": "r", "action": {"type": "block"}, **rule})

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert field in error["message"] and words in error["message"], error["message"]
    assert (await api.get("/admin/rules")).json()["data"] == []


async def test_a_change_is_validated_as_a_whole_rule(api: Control) -> None:
    await add_rule(api, **BLOCK_RED)

    answer = await api.patch("/admin/rules/no-red", {"action": {"type": "reroute"}})

    assert answer.status_code == 400 and "action.reroute.model" in answer.json()["error"]["message"]


async def test_a_name_is_taken_once(api: Control) -> None:
    await add_rule(api, **BLOCK_RED)

    again = await api.post("/admin/rules", BLOCK_RED)

    assert again.status_code == 409 and "'no-red' already exists" in again.json()["error"]["message"]


async def test_a_catastrophic_pattern_is_accepted_and_runs_in_linear_time(api: Control) -> None:
    # (a+)+$ backtracks exponentially in Python's re on "aaa...b"; RE2 answers at once. A gateway
    # with a backtracking engine would never answer this request.
    await add_rule(api, conditions=[{"type": "content", "operator": "regex", "value": "^(a+)+$"}])

    answer = await chat(api, content="a" * 100_000 + "b")

    assert answer.status_code == 200


async def test_rules_need_the_rule_permissions(api: Control) -> None:
    viewer = await api.person("viewer@example.com", permissions=("rule.view",))
    nobody = await api.person("nobody@example.com")
    await add_rule(api, **BLOCK_RED)

    assert (await api.get("/admin/rules", token=nobody.token)).status_code == 403
    assert (await api.get("/admin/rules", token=viewer.token)).status_code == 200
    refused = await api.post("/admin/rules", {**BLOCK_RED, "name": "x"}, token=viewer.token)
    assert refused.status_code == 403 and "rule.create" in refused.json()["error"]["message"]
    assert (await api.patch("/admin/rules/no-red", {"weight": 1}, token=viewer.token)).status_code == 403
    assert (await api.delete("/admin/rules/no-red", token=viewer.token)).status_code == 403


async def test_config_file_rules_apply_and_are_read_only_through_the_api(
    upstream: OpenAIUpstream, claude: AnthropicUpstream, database: dict[str, Any]
) -> None:
    rules = {"rules": [{**BLOCK_RED, "name": "from-config"}]}
    async with control(gateway_settings(upstream, claude, database=database, rules=rules)) as api:
        refused = await chat(api, headers={"x-team": "red"})
        listed = (await api.get("/admin/rules")).json()["data"]
        changed = await api.patch("/admin/rules/from-config", {"weight": 1})
        deleted = await api.delete("/admin/rules/from-config")
        clash = await api.post("/admin/rules", {**BLOCK_RED, "name": "from-config"})

    assert refused.status_code == 403 and refused.headers["x-waypost-applied-rules"] == "from-config"
    assert [(r["name"], r["source"], r["id"]) for r in listed] == [("from-config", "config", None)]
    for answer in (changed, deleted, clash):
        assert answer.status_code == 409 and "config file" in answer.json()["error"]["message"]


async def test_the_worker_that_changes_a_rule_applies_it_at_once_and_others_within_the_ttl(
    upstream: OpenAIUpstream, claude: AnthropicUpstream, database: dict[str, Any]
) -> None:
    slow = gateway_settings(upstream, claude, database=database, rules={"cache_ttl": 3600})
    quick = gateway_settings(upstream, claude, database=database, rules={"cache_ttl": 0.05})
    async with AsyncExitStack() as stack:
        changer = await stack.enter_async_context(control(slow))
        stale = await stack.enter_async_context(control(slow))
        fresh = await stack.enter_async_context(control(quick))
        red = {"x-team": "red"}

        await add_rule(changer, **BLOCK_RED)

        assert (await chat(changer, headers=red)).status_code == 403  # at once
        assert (await chat(stale, headers=red)).status_code == 200  # its cache holds for an hour
        for _ in range(400):  # within its 50 ms TTL (bounded by the loop, not by a clock)
            if (await chat(fresh, headers=red)).status_code == 403:
                break
        assert (await chat(fresh, headers=red)).status_code == 403

        await changer.delete("/admin/rules/no-red")
        assert (await chat(changer, headers=red)).status_code == 200
        for _ in range(400):
            if (await chat(fresh, headers=red)).status_code == 200:
                break
        assert (await chat(fresh, headers=red)).status_code == 200


def test_a_config_rule_that_is_not_valid_fails_at_load_naming_its_key() -> None:
    from pydantic import ValidationError

    from waypost.settings import Settings

    bad = {
        "rules": {
            "rules": [
                {
                    "name": "x",
                    "conditions": [{"type": "content", "operator": "regex", "value": "(?=x)"}],
                    "action": {"type": "allow"},
                }
            ]
        }
    }
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(bad)

    assert "rules.rules.0.conditions.and.0.content" in str(caught.value)


async def test_rules_turned_off_leave_the_stage_out(
    upstream: OpenAIUpstream, claude: AnthropicUpstream, database: dict[str, Any]
) -> None:
    async with control(
        gateway_settings(upstream, claude, database=database, rules={"enabled": False})
    ) as api:
        await add_rule(api, **BLOCK_RED)
        answer = await chat(api, headers={"x-team": "red"})
        stages = [s.name for s in api.container.pipeline.stages]

    assert answer.status_code == 200 and "rules" not in stages
