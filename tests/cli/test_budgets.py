"""``waypost budgets``: create, list, show, update, reset and delete against a real gateway."""

from __future__ import annotations

from tests.cli.conftest import Cli


def test_a_budget_is_managed_from_the_command_line(admin: Cli) -> None:
    admin.ok(
        "budgets", "create", "team-monthly", "--scope", "global", "--limit-usd", "50", "--alert-at", "50,90",
        "--description", "everyone, together",
    )  # fmt: skip

    listed = admin.ok("budgets", "list")
    assert "team-monthly" in listed and "$50.00" in listed and "everyone" in listed
    shown = admin.json("budgets", "show", "team-monthly")
    assert (shown["limit_usd"], shown["alert_thresholds"], shown["period"]) == (50, [50, 90], "monthly")
    assert "remaining" in admin.ok("budgets", "show", "team-monthly")

    admin.ok(
        "budgets", "update", "team-monthly", "--limit-tokens", "1000000", "--period", "weekly", "--rolling"
    )
    updated = admin.json("budgets", "show", "team-monthly")
    assert (updated["limit_tokens"], updated["period"], updated["rolling"]) == (1_000_000, "weekly", True)

    assert "reset to zero" in admin.ok("budgets", "reset", "team-monthly")
    assert "recounted from the audit log" in admin.ok("budgets", "reset", "team-monthly", "--keep-usage")
    admin.ok("budgets", "delete", "team-monthly")
    assert "No budgets." in admin.ok("budgets", "list")


def test_a_bad_budget_fails_with_the_gateways_message(admin: Cli) -> None:
    error = admin.fails("budgets", "create", "b", "--scope", "user", "--limit-usd", "5")

    assert "needs a target" in error
    assert admin.run("budgets", "update", "b").exit_code == 2  # nothing to change
