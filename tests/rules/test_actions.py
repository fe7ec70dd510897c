"""Each action on a real gateway, what the upstream then receives (checked at the fake), the
order of rules, shadow mode, and what the answer and the audit row say about the decision."""

from __future__ import annotations

from tests.control.client import Control
from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.rules.conftest import add_rule, audit_row, chat, user_token


def model_is(name: str) -> dict[str, object]:
    return {"type": "parameter", "parameter": "model", "operator": "exact", "value": name}


def header_is(name: str, value: str) -> dict[str, object]:
    return {"type": "header", "header": name, "operator": "exact", "value": value}


async def test_reroute_sends_the_request_to_the_target_model(api: Control, upstream: OpenAIUpstream) -> None:
    await add_rule(
        api, name="to-mini", conditions=[model_is("gpt")], action={"type": "reroute", "model": "mini"}
    )

    answer = await chat(api, "gpt", headers={"x-request-id": "reroute-1"})

    assert answer.status_code == 200, answer.text
    assert upstream.last.json["model"] == "gpt-4o-mini"  # mini's upstream model
    assert answer.headers["x-waypost-deployment"] == "mini"
    assert answer.headers["x-waypost-applied-rules"] == "to-mini"
    row = await audit_row(api, "reroute-1")
    assert row["rules"] == [
        {
            "stage": "rules",
            "rule": "to-mini",
            "action": "reroute",
            "mode": "enforce",
            "from": "gpt",
            "to": "mini",
        }
    ]
    assert row["model"] == "mini"


async def test_a_reroute_to_a_model_the_caller_may_not_use_is_refused(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await add_rule(
        api, name="to-secret", conditions=[model_is("gpt")], action={"type": "reroute", "model": "secret"}
    )
    token = await user_token(api, "bob@example.com")

    refused = await api.post(
        "/v1/chat/completions",
        {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]},
        token=token,
        headers={"x-request-id": "reroute-refused"},
    )
    admin = await chat(api, "gpt")  # the administrator may use every model

    assert refused.status_code == 403
    message = refused.json()["error"]["message"]
    assert "'to-secret'" in message and "'secret'" in message and "access" in message
    assert refused.headers["x-waypost-applied-rules"] == "to-secret"
    assert admin.status_code == 200 and admin.headers["x-waypost-deployment"] == "secret"
    assert upstream.hits == 1  # only the administrator's request went upstream
    row = await audit_row(api, "reroute-refused")
    assert row["rules"][0]["refused"] is True and row["status"] == 403


async def test_block_refuses_with_the_rules_message_and_status_in_the_callers_format(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await add_rule(
        api,
        name="no-red",
        conditions=[header_is("x-team", "red")],
        action={"type": "block", "message": "Team red is paused.", "status": 451},
    )
    await add_rule(api, name="no-blue", conditions=[header_is("x-team", "blue")])

    openai = await chat(api, headers={"x-team": "red"})
    anthropic = await api.post(
        "/v1/messages",
        {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-team": "blue", "anthropic-version": "2023-06-01"},
    )

    assert openai.status_code == 451
    assert openai.json()["error"]["message"] == "Team red is paused."
    assert openai.json()["error"]["code"] == "blocked_by_rule"
    assert openai.headers["x-waypost-applied-rules"] == "no-red"
    assert anthropic.status_code == 403  # the default status
    body = anthropic.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert body["error"]["message"] == "This request was blocked by rule no-blue."
    assert upstream.hits == 0


async def test_allow_stops_the_rules_below_it(api: Control) -> None:
    await add_rule(api, name="block-all", weight=1)
    await add_rule(api, name="vip", weight=10, conditions=[header_is("x-vip", "1")], action={"type": "allow"})

    allowed = await chat(api, headers={"x-vip": "1"})
    blocked = await chat(api)

    assert allowed.status_code == 200 and allowed.headers["x-waypost-applied-rules"] == "vip"
    assert blocked.status_code == 403 and blocked.headers["x-waypost-applied-rules"] == "block-all"


async def test_the_highest_weight_applies_first_and_alone(api: Control, upstream: OpenAIUpstream) -> None:
    await add_rule(api, name="low", weight=1, action={"type": "reroute", "model": "mini"})
    await add_rule(api, name="high", weight=5, action={"type": "reroute", "model": "gpt"})

    answer = await chat(api, "mini")

    assert answer.headers["x-waypost-applied-rules"] == "high"
    assert upstream.last.json["model"] == "gpt-4o"


async def test_rewrite_reaches_a_same_format_upstream(api: Control, upstream: OpenAIUpstream) -> None:
    await add_rule(
        api,
        name="mask-mail",
        action={"type": "rewrite", "pattern": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "replacement": "[email]"},
    )

    answer = await api.post(
        "/v1/chat/completions",
        {
            "model": "gpt",
            "messages": [
                {"role": "system", "content": "Reply to ops@example.com."},
                {"role": "user", "content": "I am jane.doe@example.org"},
            ],
            "seed": 7,  # a field the gateway forwards as it came
        },
        headers={"x-request-id": "rewrite-1"},
    )

    assert answer.status_code == 200
    sent = upstream.last.json
    assert [m["content"] for m in sent["messages"]] == ["Reply to [email].", "I am [email]"]
    assert sent["seed"] == 7
    row = await audit_row(api, "rewrite-1")
    assert row["rules"][0]["replacements"] == 2


async def test_rewrite_reaches_an_upstream_of_the_other_format_and_only_the_roles_named(
    api: Control, claude: AnthropicUpstream
) -> None:
    await add_rule(
        api,
        name="mask-digits",
        action={
            "type": "rewrite",
            "pattern": r"(\d{4})\d{8}(\d{4})",
            "replacement": r"\1********\2",
            "roles": ["user"],
        },
    )

    answer = await api.post(
        "/v1/chat/completions",
        {
            "model": "claude",
            "messages": [
                {"role": "system", "content": "card 4111111111111111"},
                {"role": "user", "content": "my card is 4111111111111111"},
            ],
        },
    )

    assert answer.status_code == 200, answer.text
    sent = claude.last.json
    assert "4111111111111111" in str(sent["system"])  # not a user message: left as it was
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "my card is 4111********1111"}]}
    ]


async def test_rewrite_keeps_non_ascii_text_in_the_replacement_and_around_it(
    api: Control, upstream: OpenAIUpstream
) -> None:
    # RE2's own expansion of a string replacement with group references mangles non-ASCII text.
    await add_rule(
        api,
        name="mask-city",
        action={"type": "rewrite", "pattern": r"([^@ ]+)@([^ ]+)", "replacement": r"«\1» chez \g<2> — é"},
    )

    answer = await api.post(
        "/v1/chat/completions",
        {"model": "gpt", "messages": [{"role": "user", "content": "Grüße: zoé@café ✓"}]},
    )

    assert answer.status_code == 200, answer.text
    assert upstream.last.json["messages"][0]["content"] == "Grüße: «zoé» chez café — é ✓"


async def test_a_shadow_rule_is_recorded_and_never_enforced(api: Control, upstream: OpenAIUpstream) -> None:
    await add_rule(api, name="would-block", mode="shadow", weight=10)
    await add_rule(api, name="to-mini", action={"type": "reroute", "model": "mini"})

    answer = await chat(api, "gpt", headers={"x-request-id": "shadow-1"})

    assert answer.status_code == 200
    assert answer.headers["x-waypost-applied-rules"] == "to-mini"  # the shadow rule is not named
    row = await audit_row(api, "shadow-1")
    assert [(d["rule"], d["action"], d["mode"]) for d in row["rules"]] == [
        ("would-block", "block", "shadow"),
        ("to-mini", "reroute", "enforce"),
    ]


async def test_a_rule_turned_off_is_not_evaluated(api: Control) -> None:
    await add_rule(api, name="off", mode="off")
    await add_rule(api, name="disabled", enabled=False)

    answer = await chat(api, headers={"x-request-id": "off-1"})

    assert answer.status_code == 200 and "x-waypost-applied-rules" not in answer.headers
    assert (await audit_row(api, "off-1"))["rules"] is None
