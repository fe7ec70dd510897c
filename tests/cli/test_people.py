"""``waypost users``, ``groups``, ``permissions`` and ``me``."""

from __future__ import annotations

from tests.cli.conftest import Cli

PASSWORD = "Bob-Has-A-Long-Passw0rd"


def test_users_create_then_list_and_show(admin: Cli) -> None:
    out = admin.ok("users", "create", "carol@example.com", "--name", "Carol C", "--role", "user")
    assert "Created user" in out

    listing = admin.ok("users", "list")
    row = next(line for line in listing.splitlines() if "carol@example.com" in line)
    assert "Carol C" in row
    assert "user" in row
    assert "yes" in row  # active

    shown = admin.ok("users", "show", "carol@example.com")
    assert "Carol C" in shown
    assert "last login" in shown
    assert "never" in shown


def test_users_list_json_is_the_api_answer(admin: Cli) -> None:
    admin.ok("users", "create", "dave@example.com")

    data = admin.json("users", "list")["data"]

    assert {"admin@localhost", "dave@example.com"} <= {u["email"] for u in data}


def test_users_update_changes_the_fields_given(admin: Cli) -> None:
    admin.ok("users", "create", "erin@example.com", "--name", "Erin")

    admin.ok("users", "update", "erin@example.com", "--name", "Erin E", "--inactive")

    user = admin.json("users", "show", "erin@example.com")
    assert user["display_name"] == "Erin E"
    assert user["active"] is False


def test_users_delete_removes_the_user(admin: Cli) -> None:
    admin.ok("users", "create", "frank@example.com")

    admin.ok("users", "delete", "frank@example.com")

    assert "frank@example.com" not in admin.ok("users", "list")
    assert admin.fails("users", "show", "frank@example.com").startswith("error: ")


def test_a_created_user_can_log_in_with_the_password_given_on_stdin(admin: Cli) -> None:
    admin.ok("users", "create", "bob@example.com", "--password-stdin", input=PASSWORD + "\n")
    admin.ok("logout")

    admin.login("bob@example.com", PASSWORD)

    assert admin.json("whoami")["email"] == "bob@example.com"
    assert "error: " in admin.fails("users", "list")  # a plain user has no user.view


def test_a_weak_password_is_refused_with_the_server_reason(admin: Cli) -> None:
    err = admin.fails("users", "create", "weak@example.com", "--password-stdin", input="admin\n")

    assert err.startswith("error: ")
    assert "password" in err.lower()


def test_groups_create_add_and_remove_members(admin: Cli) -> None:
    admin.ok("users", "create", "gina@example.com")
    admin.ok("groups", "create", "eng", "--description", "Engineering")

    admin.ok("groups", "add-member", "eng", "gina@example.com")

    assert "gina@example.com" in admin.ok("groups", "show", "eng")
    assert "eng" in admin.json("users", "show", "gina@example.com")["groups"]
    row = next(line for line in admin.ok("groups", "list").splitlines() if "Engineering" in line)
    assert "gina@example.com" in row

    admin.ok("groups", "remove-member", "eng", "gina@example.com")

    assert admin.json("users", "show", "gina@example.com")["groups"] == []


def test_groups_update_and_delete(admin: Cli) -> None:
    admin.ok("groups", "create", "ops")

    admin.ok("groups", "update", "ops", "--name", "sre", "--description", "Reliability")
    assert "Reliability" in admin.ok("groups", "show", "sre")

    admin.ok("groups", "delete", "sre")
    assert "sre" not in {g["name"] for g in admin.json("groups", "list")["data"]}


def test_permissions_list_shows_each_permission_and_its_roles(admin: Cli) -> None:
    out = admin.ok("permissions", "list")

    row = next(line for line in out.splitlines() if line.strip().startswith("model.view"))
    assert "admin" in row
    assert {"name", "description"} <= admin.json("permissions", "list")["data"][0].keys()


def test_permissions_grant_and_revoke_for_a_user(admin: Cli) -> None:
    admin.ok("users", "create", "hank@example.com")

    admin.ok("permissions", "grant", "model.view", "usage.view", "--user", "hank@example.com")
    granted = admin.ok("permissions", "list", "--user", "hank@example.com")
    assert "model.view" in granted
    assert "usage.view" in granted
    assert "model.view" in admin.json("users", "show", "hank@example.com")["permissions"]

    admin.ok("permissions", "revoke", "model.view", "--user", "hank@example.com")
    assert "model.view" not in admin.ok("permissions", "list", "--user", "hank@example.com")


def test_permissions_grant_to_a_group_reaches_its_members(admin: Cli) -> None:
    admin.ok("users", "create", "ivy@example.com")
    admin.ok("groups", "create", "auditors")
    admin.ok("groups", "add-member", "auditors", "ivy@example.com")

    admin.ok("permissions", "grant", "audit.view", "--group", "auditors")

    assert "audit.view" in admin.ok("groups", "show", "auditors")
    assert "audit.view" in admin.json("users", "show", "ivy@example.com")["permissions"]


def test_an_unknown_permission_is_an_error_naming_it(admin: Cli) -> None:
    admin.ok("users", "create", "jack@example.com")

    err = admin.fails("permissions", "grant", "no.such", "--user", "jack@example.com")

    assert "no.such" in err


def test_me_password_changes_the_password(admin: Cli) -> None:
    admin.ok("users", "create", "kim@example.com", "--password-stdin", input=PASSWORD + "\n")
    admin.ok("logout")
    admin.login("kim@example.com", PASSWORD)

    new = "Kim-Chose-Another-Passw0rd"
    assert "logged in again" in admin.ok("me", "password", input=f"{PASSWORD}\n{new}\n{new}\n")
    # The CLI's own session survives the change (the gateway ended it; the CLI logged in again).
    assert admin.json("whoami")["email"] == "kim@example.com"
    admin.ok("logout")

    assert "Invalid e-mail or password" in admin.fails(
        "login", "--email", "kim@example.com", "--password-stdin", input=PASSWORD + "\n"
    )
    admin.login("kim@example.com", new)


def test_usage_errors_exit_with_status_2(admin: Cli) -> None:
    result = admin.run("users", "update", "admin@localhost")

    assert result.exit_code == 2
    assert "nothing to change" in result.stderr
