"""``waypost limits``: create, list, show, update and delete against a real gateway."""

from __future__ import annotations

from tests.cli.conftest import Cli, admin, cli, gateway  # noqa: F401  (the CLI suite's fixtures)


def test_a_limit_is_managed_from_the_command_line(admin: Cli) -> None:  # noqa: F811
    created = admin.ok(
        "limits", "create", "team-rpm", "--scope", "default", "--rpm", "600", "--tpm", "200000",
        "--window", "day:requests=10000,output_tokens=90000", "--concurrency", "20", "-d", "per user",
    )  # fmt: skip
    assert "Created rate limit team-rpm" in created and "20 at once" in created

    listed = admin.ok("limits", "list")
    assert "team-rpm" in listed and "each user" in listed
    shown = admin.json("limits", "show", "team-rpm")
    assert shown["windows"] == [
        {"per": "minute", "requests": 600, "tokens": 200000, "input_tokens": None, "output_tokens": None},
        {"per": "day", "requests": 10000, "tokens": None, "input_tokens": None, "output_tokens": 90000},
    ]
    assert (shown["concurrency"], shown["description"]) == (20, "per user")
    assert "per user" in admin.ok("limits", "show", "team-rpm")

    admin.ok(
        "limits", "update", "team-rpm", "--rpm", "60", "--window", "day:", "--concurrency", "0", "--disabled"
    )
    updated = admin.json("limits", "show", "team-rpm")
    assert [(w["per"], w["requests"], w["tokens"]) for w in updated["windows"]] == [("minute", 60, 200000)]
    assert (updated["concurrency"], updated["enabled"]) == (None, False)

    admin.ok("limits", "delete", "team-rpm")
    assert "No rate limits." in admin.ok("limits", "list")


def test_a_bad_limit_fails_with_the_gateways_message(admin: Cli) -> None:  # noqa: F811
    assert "needs a target" in admin.fails("limits", "create", "x", "--scope", "user", "--rpm", "5")
    assert "needs windows, concurrency or both" in admin.fails("limits", "create", "x", "--scope", "default")
    assert (
        admin.run("limits", "create", "x", "--scope", "default", "--window", "week:requests=1").exit_code == 2
    )
    assert admin.run("limits", "update", "x").exit_code == 2  # nothing to change
