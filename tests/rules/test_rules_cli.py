"""``waypost rules``: create, list, show, update, test and delete against a real gateway."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.conftest import Cli, admin, cli, gateway  # noqa: F401  (the fixtures)

MODEL_IS_ECHO = "{type: parameter, parameter: model, operator: exact, value: echo}"


def test_a_rule_is_managed_from_the_command_line(admin: Cli) -> None:  # noqa: F811
    created = admin.ok(
        "rules", "create", "no-secrets", "--weight", "5", "--description", "keep secrets in",
        "--when", MODEL_IS_ECHO, "--when", '{"type": "content", "operator": "contains", "value": "secret"}',
        "--block", "No secrets, {{ request.model }}.",
    )  # fmt: skip
    assert "Created rule no-secrets" in created and "block" in created

    listed = admin.ok("rules", "list")
    assert "no-secrets" in listed and "enforce" in listed
    shown = admin.json("rules", "show", "no-secrets")
    assert shown["weight"] == 5 and len(shown["conditions"]["and"]) == 2
    assert "keep secrets in" in admin.ok("rules", "show", "no-secrets")

    admin.ok("rules", "update", "no-secrets", "--mode", "shadow", "--weight", "7")
    assert (
        admin.json("rules", "show", "no-secrets")["mode"],
        admin.json("rules", "show", "no-secrets")["weight"],
    ) == ("shadow", 7)
    admin.ok("rules", "update", "no-secrets", "--disable")
    assert admin.json("rules", "show", "no-secrets")["mode"] == "off"
    admin.ok("rules", "update", "no-secrets", "--enable")

    admin.ok("rules", "delete", "no-secrets")
    assert "No rules." in admin.ok("rules", "list")


def test_rules_are_tried_from_the_command_line(admin: Cli, tmp_path: Path) -> None:  # noqa: F811
    draft = tmp_path / "draft.yaml"
    draft.write_text(
        "name: long-prompts\n"
        "conditions:\n"
        "  - {type: function, function: message_length, operator: gt, value: 10}\n"
        "action: {type: block, message: 'Too long ({{ function.message_length.value }} characters).', status: 413}\n"
    )

    out = admin.ok(
        "rules", "test", "--rule", str(draft), "--message", "far more than ten characters", "--model", "echo"
    )
    answer = json.loads(
        admin.ok("rules", "test", "--rule", str(draft), "--message", "short", "--model", "echo", "--json")
    )

    assert "[yes] long-prompts" in out and "applies" in out
    assert "outcome: rule long-prompts: block 413 'Too long (28 characters).'" in out
    assert answer["sample"]["outcome"] == {"action": "none"}
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    replay = admin.ok("rules", "test", "--rule", str(draft), "--since", since)
    assert "replayed" in replay and "would change" in replay


def test_a_bad_rule_fails_with_the_gateways_message(admin: Cli) -> None:  # noqa: F811
    error = admin.fails(
        "rules", "create", "bad", "--when", "{type: content, operator: regex, value: '(a)\\1'}", "--allow"
    )

    assert "conditions.and.0.content" in error and "backreferences" in error
    assert admin.run("rules", "create", "x").exit_code == 2  # no action
    assert admin.run("rules", "create", "x", "--allow", "--block", "no").exit_code == 2  # two actions
    assert admin.run("rules", "update", "x").exit_code == 2  # nothing to change
