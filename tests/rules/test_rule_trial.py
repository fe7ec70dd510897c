"""POST /admin/rules/test: rules tried on a sample request (each condition's result, the outcome,
nothing sent), and replayed over the audit log (which decisions would change, and which
conditions a row cannot answer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.control.client import Control, control
from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.rules.conftest import add_rule, audit_row, chat, gateway_settings
from tests.usage_rows import insert, request_row

GPT = {"type": "parameter", "parameter": "model", "operator": "exact", "value": "gpt"}
RED = {"type": "header", "header": "x-team", "operator": "exact", "value": "red"}
LONG = {"type": "function", "function": "message_length", "operator": "gt", "value": 20}


async def test_a_sample_shows_each_condition_and_the_outcome_and_sends_nothing(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await add_rule(
        api,
        name="vip",
        weight=10,
        conditions=[{"type": "header", "header": "x-vip", "operator": "exact", "value": "1"}],
        action={"type": "allow"},
    )
    await add_rule(
        api,
        name="red-gpt",
        weight=5,
        conditions={"and": [GPT, {"or": [RED, LONG]}]},
        action={
            "type": "block",
            "message": "no {{ request.model }} for team {{ header.x-team.value }}",
            "status": 451,
        },
    )

    answer = await api.post(
        "/admin/rules/test",
        {
            "request": {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
            "headers": {"X-Team": "red"},
        },
    )

    assert answer.status_code == 200, answer.text
    sample = answer.json()["sample"]
    vip, red = sample["rules"]
    assert (vip["name"], vip["result"], vip["applies"]) == ("vip", False, False)
    assert (red["result"], red["applies"]) == (True, True)
    conditions = red["conditions"]["and"]
    assert (conditions[0]["seen"], conditions[0]["result"]) == ("gpt", True)
    header, length = conditions[1]["or"]
    assert (header["seen"], header["result"]) == ("red", True)
    assert (length["seen"], length["result"]) == (2, False)
    assert sample["outcome"] == {
        "rule": "red-gpt",
        "action": "block",
        "status": 451,
        "message": "no gpt for team red",
        "retry_after": None,
        "values": sample["outcome"]["values"],
    }
    assert upstream.hits == 0


async def test_a_draft_rule_is_tried_with_the_active_ones_without_being_saved(api: Control) -> None:
    await add_rule(api, name="to-mini", weight=1, action={"type": "reroute", "model": "mini"})
    draft = {
        "name": "rewrite-secret",
        "weight": 5,
        "action": {"type": "rewrite", "pattern": "secret", "replacement": "***"},
    }

    answer = await api.post(
        "/admin/rules/test",
        {
            "rule": draft,
            "request": {"model": "gpt", "messages": [{"role": "user", "content": "my secret, secret"}]},
        },
    )

    outcome = answer.json()["sample"]["outcome"]
    assert outcome["rule"] == "rewrite-secret" and outcome["replacements"] == 2
    assert outcome["messages"] == [{"role": "user", "text": "my ***, ***"}]
    assert [r["name"] for r in (await api.get("/admin/rules")).json()["data"]] == ["to-mini"]


async def test_a_sample_reroute_says_whether_the_user_may_use_the_target(api: Control) -> None:
    await api.person("dave@example.com")
    draft = {"name": "to-secret", "action": {"type": "reroute", "model": "secret"}}
    body = {
        "rule": draft,
        "user": "dave@example.com",
        "request": {"model": "gpt", "messages": [{"role": "user", "content": "x"}]},
    }

    outcome = (await api.post("/admin/rules/test", body)).json()["sample"]["outcome"]

    assert (outcome["from"], outcome["to"], outcome["allowed"]) == ("gpt", "secret", False)
    assert outcome["refused"]["status"] == 403


async def test_a_sample_in_the_anthropic_format_and_an_invalid_draft(api: Control) -> None:
    sample = {
        "model": "claude",
        "max_tokens": 5,
        "system": "be brief",
        "messages": [{"role": "user", "content": "x"}],
    }
    draft = {
        "name": "sys",
        "conditions": [{"type": "content", "target": "system", "operator": "contains", "value": "brief"}],
        "action": {"type": "block"},
    }

    good = await api.post("/admin/rules/test", {"rule": draft, "format": "anthropic", "request": sample})
    bad = await api.post(
        "/admin/rules/test",
        {
            "rule": {**draft, "action": {"type": "block", "status": 99}},
            "request": sample,
            "format": "anthropic",
        },
    )

    assert good.json()["sample"]["outcome"]["status"] == 403
    assert bad.status_code == 400 and "rule.action.block.status" in bad.json()["error"]["message"]


def recorded(minute: int, **fields: Any) -> dict[str, Any]:
    return request_row(created_at=datetime(2026, 5, 1, 12, minute, tzinfo=UTC), **fields)


async def test_a_replay_reports_the_decisions_that_would_change(api: Control) -> None:
    body = '{"model": "gpt", "messages": [{"role": "user", "content": "tell me the password"}]}'
    rows = [
        recorded(0, requested_model="gpt", request_id="a"),
        recorded(1, requested_model="mini", model="mini", request_id="b"),
        recorded(2, requested_model="gpt", request_id="c", request_body=body),
        # Blocked then by a rule the draft no longer has.
        recorded(3, requested_model="mini", model=None, status=403, request_id="d",
                 rules=[{"stage": "rules", "rule": "old", "action": "block", "mode": "enforce"}]),
        recorded(4, requested_model="gpt", request_id="e", stream=True),
    ]  # fmt: skip
    await insert(api.container.store, rows)
    drafts = [
        {"name": "no-password", "weight": 9, "conditions": [{"type": "content", "operator": "contains", "value": "password"}]},
        {"name": "gpt-to-mini", "weight": 1, "conditions": [GPT, {"type": "parameter", "parameter": "stream", "operator": "exact", "value": False}], "action": {"type": "reroute", "model": "mini"}},
    ]  # fmt: skip
    drafts[0]["action"] = {"type": "block"}
    span = {"since": "2026-05-01T12:00:00Z", "until": "2026-05-01T13:00:00Z"}

    answer = await api.post("/admin/rules/test", {"rules": drafts, "replay": span})

    assert answer.status_code == 200, answer.text
    report = answer.json()["replay"]
    assert (report["requests"], report["with_body"]) == (5, 1)
    # a: gpt, no body: the content rule cannot be answered -> undetermined.
    # b: mini -> no rule (the content rule is undetermined first: it has the higher weight).
    # c: the body says "password" -> blocked (was: nothing).
    # d, e: likewise undetermined without a body.
    assert report["undetermined"] == 4 and report["changed"] == 1
    assert report["transitions"] == [
        {"from": None, "to": {"rule": "no-password", "action": "block"}, "requests": 1}
    ]
    assert report["unevaluable"] == [
        {
            "rule": "no-password",
            "condition": "messages text",
            "reason": "the request's body is not in the audit log (audit.log_bodies was off)",
            "requests": 4,
        }
    ]
    assert report["examples"][0]["request_id"] == "c"


async def test_a_replay_of_rules_rows_can_answer_shows_every_change(api: Control) -> None:
    rows = [
        recorded(0, requested_model="gpt", request_id="a"),
        recorded(1, requested_model="mini", model="mini", request_id="b", rules=[{"stage": "rules", "rule": "x", "action": "reroute", "mode": "enforce", "from": "gpt", "to": "mini"}]),
        recorded(2, requested_model="mini", model="mini", request_id="c"),
        recorded(3, requested_model="gpt", request_id="too-late"),
    ]  # fmt: skip
    await insert(api.container.store, rows)
    draft = {"name": "x", "conditions": [GPT], "action": {"type": "reroute", "model": "mini"}}
    header = {"name": "h", "mode": "shadow", "conditions": [RED], "action": {"type": "block"}}
    span = {"since": "2026-05-01T12:00:00Z", "until": "2026-05-01T12:03:00Z", "examples": 5}

    report = (await api.post("/admin/rules/test", {"rules": [draft, header], "replay": span})).json()[
        "replay"
    ]

    # a: was nothing, now rerouted; b: rerouted then and now (its model asked for was gpt);
    # c: mini, nothing then and now. The shadow rule on a header decides nothing.
    assert (report["requests"], report["changed"], report["unchanged"], report["undetermined"]) == (
        3,
        1,
        2,
        0,
    )
    assert report["examples"] == [
        {
            "request_id": "a",
            "created_at": "2026-05-01T12:00:00+00:00",
            "user": "admin@localhost",
            "endpoint": "chat",
            "model": "gpt",
            "before": None,
            "after": {"rule": "x", "action": "reroute"},
        }
    ]
    assert {r["name"]: r["would_apply"] for r in report["rules"]} == {"x": 2, "h": 0}


async def test_a_replay_evaluates_quotas_from_the_recorded_usage(api: Control) -> None:
    rows = [recorded(m, request_id=f"q{m}", cost_micros=1000) for m in range(0, 5)]
    rows.insert(
        0,
        request_row(
            created_at=datetime(2026, 5, 1, 11, 59, tzinfo=UTC), request_id="before", cost_micros=1000
        ),
    )
    rows.append(recorded(5, request_id="failed", status=500, cost_micros=0))
    await insert(api.container.store, rows)
    draft = {
        "name": "q",
        "conditions": [
            {"type": "quota", "metric": "requests", "window": 3600, "operator": "gte", "value": 3}
        ],
    }
    span = {"since": "2026-05-01T12:00:00Z", "until": "2026-05-01T13:00:00Z"}

    report = (
        await api.post("/admin/rules/test", {"rule": {**draft, "action": {"type": "block"}}, "replay": span})
    ).json()["replay"]

    # Counted before each: 1 (the one before the range), 2, 3, 4, 5, 5: blocked from q2 on.
    assert report["changed"] == 4 and report["quota_history"] == {"requests": 1, "truncated": False}


async def test_a_replay_needs_the_audit_permission(api: Control) -> None:
    viewer = await api.person("viewer@example.com", permissions=("rule.view",))
    span = {"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}

    answer = await api.post("/admin/rules/test", {"replay": span}, token=viewer.token)

    assert answer.status_code == 403 and "audit.view" in answer.json()["error"]["message"]


async def test_a_replay_of_a_live_rule_shows_what_the_gateway_recorded(
    upstream: OpenAIUpstream, claude: AnthropicUpstream, database: dict[str, Any]
) -> None:
    config = gateway_settings(upstream, claude, database=database, audit={"log_bodies": True})
    async with control(config) as api:
        await add_rule(api, name="long", conditions=[LONG], action={"type": "block"})
        assert (await chat(api, content="a short one", headers={"x-request-id": "s"})).status_code == 200
        assert (
            await chat(api, content="this one is longer than 20", headers={"x-request-id": "l"})
        ).status_code == 403
        await audit_row(api, "s")
        await audit_row(api, "l")
        span = {"since": (datetime.now(UTC) - timedelta(minutes=5)).isoformat()}
        stricter = {"name": "long", "conditions": [{**LONG, "value": 5}], "action": {"type": "block"}}

        report = (await api.post("/admin/rules/test", {"rule": stricter, "replay": span})).json()["replay"]

    assert (report["requests"], report["with_body"], report["changed"], report["unchanged"]) == (2, 2, 1, 1)
    assert report["transitions"][0]["to"] == {"rule": "long", "action": "block"}


async def test_the_audit_log_is_read_page_by_page_in_order_up_to_the_limit(api: Control) -> None:
    await insert(api.container.store, [recorded(m % 3, request_id=f"p{m}") for m in range(7)])
    since, until = datetime(2026, 5, 1, 12, 0, tzinfo=UTC), datetime(2026, 5, 1, 13, 0, tzinfo=UTC)

    read = [r["request_id"] async for r in api.container.store.rules.requests(since, until, limit=5, page=2)]
    report = (
        await api.post(
            "/admin/rules/test",
            {"replay": {"since": since.isoformat(), "until": until.isoformat(), "limit": 6}},
        )
    ).json()["replay"]

    assert read == ["p0", "p3", "p6", "p1", "p4"]  # by time, then as written
    assert (report["requests"], report["truncated"]) == (6, True)
