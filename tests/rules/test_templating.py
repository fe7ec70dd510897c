"""Block messages: ``{{ dotted.path }}`` references filled from what the matched conditions
publish, plain lookups only; anything else stays as written."""

from __future__ import annotations

from tests.control.client import Control
from tests.rules.conftest import add_rule, chat
from waypost.pipeline.rules.actions import render


def test_known_references_are_filled_and_the_rest_left_as_written() -> None:
    values = {"quota.cost.value": "1.50", "rule.name": "r"}

    text = render(
        "{{quota.cost.value}} / {{ quota.cost.value }} {{ nope }} {{ 1+1 }} {{ rule.name | upper }} {{",
        values,
    )

    assert text == "1.50 / 1.50 {{ nope }} {{ 1+1 }} {{ rule.name | upper }} {{"


def test_a_value_is_never_read_as_a_template() -> None:
    assert (
        render("{{ header.x.value }}", {"header.x.value": "{{ rule.name }}", "rule.name": "r"})
        == "{{ rule.name }}"
    )


async def test_a_block_message_names_what_matched(api: Control) -> None:
    await add_rule(
        api,
        conditions=[
            {"type": "header", "header": "x-team", "operator": "in", "value": ["red", "{{ rule.name }}"]},
            {"type": "parameter", "parameter": "max_tokens", "operator": "gt", "value": 100},
            {"type": "header", "header": "x-other", "operator": "exact", "value": "z", "negate": True},
        ],
        action={
            "type": "block",
            "message": "{{ rule.name }}: team {{ header.x-team.value }} asked {{ parameter.max_tokens.value }} "
            "(over {{ parameter.max_tokens.threshold }}) of {{ request.model }}; {{ quota.cost.value }}",
        },
    )

    red = await chat(api, headers={"x-team": "red"}, max_tokens=500)
    sneaky = await chat(api, headers={"x-team": "{{ rule.name }}"}, max_tokens=500)

    assert red.json()["error"]["message"] == "r: team red asked 500 (over 100) of gpt; {{ quota.cost.value }}"
    assert sneaky.json()["error"]["message"].startswith("r: team {{ rule.name }} asked")
