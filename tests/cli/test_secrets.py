"""``waypost secrets``: values go in and are never printed by any command."""

from __future__ import annotations

from tests.cli.conftest import Cli

VALUE = "sk-this-value-must-never-be-printed-8c1d"


def test_a_secret_value_is_never_printed(admin: Cli) -> None:
    admin.ok(
        "secrets",
        "create",
        "upstream-key",
        "--description",
        "OpenAI key",
        "--value-stdin",
        input=VALUE + "\n",
    )
    admin.ok(
        "models",
        "create",
        "with-secret",
        "--provider",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key-secret",
        "upstream-key",
    )

    for args in (
        ("secrets", "list"),
        ("secrets", "list", "--json"),
        ("secrets", "show", "upstream-key"),
        ("secrets", "show", "upstream-key", "--json"),
        ("models", "show", "with-secret"),
        ("models", "show", "with-secret", "--json"),
        ("models", "list", "--json"),
    ):
        admin.ok(*args)

    assert "secret://upstream-key" in admin.ok("models", "show", "with-secret")
    assert all(VALUE not in output for output in admin.outputs)


def test_secrets_list_shows_name_description_and_update_time(admin: Cli) -> None:
    admin.ok("secrets", "create", "listed", "--description", "For the list", "--value-stdin", input="v-123\n")

    row = next(line for line in admin.ok("secrets", "list").splitlines() if "listed" in line)

    assert "For the list" in row
    assert admin.json("secrets", "show", "listed").keys() == {
        "name",
        "description",
        "created_at",
        "updated_at",
    }


def test_secrets_create_prompts_twice_and_refuses_a_mismatch(admin: Cli) -> None:
    result = admin.run("secrets", "create", "prompted", input="first-value\nsecond-value\nfinal\nfinal\n")

    assert result.exit_code == 0, result.output
    assert "first-value" not in result.output
    assert "do not match" in result.output.lower()
    assert "prompted" in admin.ok("secrets", "list")


def test_secrets_update_and_delete(admin: Cli) -> None:
    admin.ok("secrets", "create", "temp", "--value-stdin", input="one\n")

    admin.ok("secrets", "update", "temp", "--value-stdin", "--description", "Changed", input="two\n")
    assert admin.json("secrets", "show", "temp")["description"] == "Changed"

    admin.ok("secrets", "delete", "temp")
    assert "temp" not in {s["name"] for s in admin.json("secrets", "list")["data"]}


def test_a_secret_a_model_uses_cannot_be_deleted(admin: Cli) -> None:
    admin.ok("secrets", "create", "in-use", "--value-stdin", input="v\n")
    admin.ok(
        "models",
        "create",
        "uses-it",
        "--provider",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key-secret",
        "in-use",
    )

    err = admin.fails("secrets", "delete", "in-use")

    assert "in-use" in err or "uses-it" in err


def test_secrets_rotate_reports_the_count(admin: Cli) -> None:
    admin.ok("secrets", "create", "rotated", "--value-stdin", input="v\n")

    assert admin.json("secrets", "rotate")["rotated"] >= 1
