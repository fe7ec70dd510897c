"""Each condition type and each operator, on a real gateway: a blocking rule with one condition,
then a request it must hold for (refused with the rule's 403) and one it must not hold for (served).
"""

from __future__ import annotations

from typing import Any

from tests.control.client import Control
from tests.fakes import OpenAIUpstream
from tests.rules.conftest import add_rule, chat

Case = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]  # condition, holds for, not for


async def check(api: Control, cases: list[Case]) -> None:
    for i, (condition, holds, fails) in enumerate(cases):
        name = f"case-{i}"
        await add_rule(api, name=name, conditions=[condition], action={"type": "block", "message": name})
        refused = await chat(api, **holds)
        assert refused.status_code == 403, (condition, holds, refused.text)
        assert refused.json()["error"]["message"] == name
        served = await chat(api, **fails)
        assert served.status_code == 200, (condition, fails, served.text)
        assert (await api.delete(f"/admin/rules/{name}")).status_code == 204


def cond(kind: str, operator: str, value: Any, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "operator": operator, "value": value, **fields}


async def test_parameter_conditions_test_the_model_and_the_sampling_parameters(api: Control) -> None:
    model = "model"
    await check(
        api,
        [
            (cond("parameter", "exact", "mini", parameter=model), {"model": "mini"}, {"model": "gpt"}),
            (cond("parameter", "regex", "^m.n", parameter=model), {"model": "mini"}, {"model": "gpt"}),
            (cond("parameter", "contains", "in", parameter=model), {"model": "mini"}, {"model": "gpt"}),
            (cond("parameter", "in", ["x", "gpt"], parameter=model), {"model": "gpt"}, {"model": "mini"}),
            (cond("parameter", "gt", 100, parameter="max_tokens"), {"max_tokens": 101}, {"max_tokens": 100}),
            (cond("parameter", "gte", 100, parameter="max_tokens"), {"max_tokens": 100}, {"max_tokens": 99}),
            (
                cond("parameter", "lt", 0.5, parameter="temperature"),
                {"temperature": 0.2},
                {"temperature": 0.5},
            ),
            (cond("parameter", "lte", 0.5, parameter="top_p"), {"top_p": 0.5}, {"top_p": 0.9}),
            (
                cond("parameter", "exact", 0.7, parameter="temperature"),
                {"temperature": 0.7},
                {"temperature": 1},
            ),
            (cond("parameter", "in", [1, 2], parameter="max_tokens"), {"max_tokens": 2}, {"max_tokens": 3}),
            (cond("parameter", "exact", True, parameter="stream"), {"stream": True}, {"stream": False}),
            # An unset parameter meets no operator (here: no max_tokens at all).
            (cond("parameter", "lt", 10**9, parameter="max_tokens"), {"max_tokens": 5}, {}),
        ],
    )


async def test_top_k_is_tested_on_an_anthropic_caller(api: Control) -> None:
    await add_rule(api, conditions=[cond("parameter", "gte", 40, parameter="top_k")])
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"anthropic-version": "2023-06-01"}

    refused = await api.post("/v1/messages", {**body, "top_k": 40}, headers=headers)
    served = await api.post("/v1/messages", {**body, "top_k": 5}, headers=headers)

    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert served.status_code == 200, served.text


async def test_header_conditions_name_the_header_in_any_case(api: Control) -> None:
    await check(
        api,
        [
            (
                cond("header", "exact", "red", header="X-Team"),
                {"headers": {"x-team": "red"}},
                {"headers": {"X-TEAM": "blue"}},
            ),
            (
                cond("header", "contains", "bot", header="user-agent"),
                {"headers": {"User-Agent": "crawlbot/1.0"}},
                {"headers": {"User-Agent": "app/1.0"}},
            ),
            (
                cond("header", "regex", "^(dev|test)-", header="x-env"),
                {"headers": {"X-Env": "dev-3"}},
                {"headers": {"X-Env": "prod-1"}},
            ),
            (
                cond("header", "in", ["a", "b"], header="x-team"),
                {"headers": {"x-team": "b"}},
                {"headers": {}},
            ),
            (
                cond("header", "gt", 2, header="x-priority"),
                {"headers": {"x-priority": "3"}},
                {"headers": {"x-priority": "high"}},  # not a number: no numeric operator holds
            ),
        ],
    )


async def test_content_conditions_read_the_messages_or_the_system_prompt(api: Control) -> None:
    system = {
        "messages": [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "hi"}]
    }
    plain = {"messages": [{"role": "user", "content": "You are a pirate."}]}
    await check(
        api,
        [
            (cond("content", "contains", "password"), {"content": "my password is x"}, {"content": "hello"}),
            (
                cond("content", "regex", r"\b\d{3}-\d{2}-\d{4}\b"),
                {"content": "ssn 123-45-6789"},
                {"content": "123"},
            ),
            (cond("content", "exact", "ping"), {"content": "ping"}, {"content": "ping!"}),
            (cond("content", "in", ["yes", "no"]), {"content": "no"}, {"content": "maybe"}),
            (cond("content", "contains", "pirate", target="system"), system, plain),
        ],
    )


async def test_function_conditions_measure_tokens_length_and_keywords(api: Control) -> None:
    long = "word " * 400  # about 500 tokens by the estimate
    await check(
        api,
        [
            (cond("function", "gt", 300, function="count_tokens"), {"content": long}, {"content": "short"}),
            (
                cond("function", "gte", 10, function="message_length"),
                {"content": "0123456789"},
                {"content": "012"},
            ),
            (
                cond("function", "gte", 2, function="keyword_count", keywords=["secret", "classified"]),
                {"content": "Secret and CLASSIFIED notes"},
                {"content": "a secretary's notes"},  # whole words only
            ),
            (
                cond("function", "lt", 5, function="message_length", target="system"),
                {"messages": [{"role": "system", "content": "hey"}, {"role": "user", "content": "x"}]},
                {
                    "messages": [
                        {"role": "system", "content": "a long prompt"},
                        {"role": "user", "content": "x"},
                    ]
                },
            ),
        ],
    )


async def test_groups_nest_and_or_and_negate(api: Control) -> None:
    # Blocked: model gpt and (team red or not a streaming request with max_tokens over 100).
    conditions = {
        "and": [
            cond("parameter", "exact", "gpt", parameter="model"),
            {
                "or": [
                    cond("header", "exact", "red", header="x-team"),
                    {
                        "and": [
                            cond("parameter", "exact", True, parameter="stream"),
                            cond("parameter", "gt", 100, parameter="max_tokens"),
                        ],
                        "negate": True,
                    },
                ]
            },
        ]
    }
    await add_rule(api, conditions=conditions)

    assert (await chat(api, "gpt", headers={"x-team": "red"}, stream=True, max_tokens=500)).status_code == 403
    assert (await chat(api, "gpt", max_tokens=5)).status_code == 403  # not (stream and > 100)
    assert (await chat(api, "gpt", stream=True, max_tokens=500)).status_code == 200
    assert (await chat(api, "mini", headers={"x-team": "red"})).status_code == 200


async def test_a_negated_condition_holds_when_its_fact_is_missing(api: Control) -> None:
    await add_rule(api, conditions=[cond("header", "exact", "yes", header="x-approved", negate=True)])

    assert (await chat(api)).status_code == 403
    assert (await chat(api, headers={"x-approved": "yes"})).status_code == 200


async def test_a_rule_without_conditions_holds_for_every_request(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await add_rule(api, conditions=[], action={"type": "block", "message": "closed"})

    assert (await chat(api)).json()["error"]["message"] == "closed"
    assert upstream.hits == 0
