"""``waypost users``, ``waypost groups`` and ``waypost permissions`` (admin)."""

from __future__ import annotations

from typing import Any

import typer

from waypost.cli.client import UrlOption, connect, fail, fetch, prompt_secret, read_stdin_secret, ref, send
from waypost.cli.identity import user_fields
from waypost.cli.output import (
    JsonOption,
    fields,
    joined,
    key,
    print_answer,
    print_json,
    print_rows,
    table,
    when,
    yes_no,
)

users_app = typer.Typer(help="Manage users (admin).", no_args_is_help=True)
groups_app = typer.Typer(help="Manage groups and their members (admin).", no_args_is_help=True)
permissions_app = typer.Typer(help="List, grant and revoke permissions (admin).", no_args_is_help=True)

UserArg = typer.Argument(..., help="User id or e-mail.")
GroupArg = typer.Argument(..., help="Group id or name.")
RoleOption = typer.Option(None, "--role", help="admin, user or gateway (a service account).")
PasswordPromptOption = typer.Option(False, "--password", help="Prompt for a password (not echoed).")
PasswordStdinOption = typer.Option(False, "--password-stdin", help="Read the password from standard input.")


def _password(prompt: bool, stdin: bool) -> str | None:
    if prompt and stdin:
        fail("give --password or --password-stdin, not both", 2)
    if stdin:
        return read_stdin_secret("password")
    return prompt_secret("password", confirm=True) if prompt else None


# -- users ------------------------------------------------------------------------------------


@users_app.command("list")
def list_users(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List users."""
    print_rows(
        fetch(url, "/admin/users"),
        as_json,
        [
            ("id", key("id")),
            ("email", key("email")),
            ("name", key("display_name")),
            ("role", key("role")),
            ("active", lambda u: yes_no(u.get("active"))),
            ("groups", lambda u: joined(u.get("groups"))),
        ],
        empty="No users.",
    )


@users_app.command("show")
def show_user(user: str = UserArg, url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show a user with their effective permissions."""
    answer = fetch(url, f"/admin/users/{ref(user)}")
    if as_json:
        print_json(answer)
    else:
        user_fields(answer)


@users_app.command("create")
def create_user(
    email: str = typer.Argument(..., help="E-mail address (the login name)."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    role: str = typer.Option("user", "--role", help="admin, user or gateway (a service account)."),
    groups: list[str] | None = typer.Option(None, "--group", "-g", help="Add to this group (repeatable)."),
    inactive: bool = typer.Option(False, "--inactive", help="Create the account disabled."),
    password: bool = PasswordPromptOption,
    password_stdin: bool = PasswordStdinOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a user (without a password, they can only sign in with SSO or use tokens)."""
    body: dict[str, Any] = {"email": email, "role": role, "active": not inactive}
    if name is not None:
        body["display_name"] = name
    if groups:
        body["groups"] = groups
    secret = _password(password, password_stdin)
    if secret is not None:
        body["password"] = secret
    answer = send(url, "POST", "/admin/users", body)
    print_answer(
        answer, as_json, f"Created user {answer.get('id')} {answer.get('email')} ({answer.get('role')})."
    )


@users_app.command("update")
def update_user(
    user: str = UserArg,
    email: str | None = typer.Option(None, "--email", help="New e-mail."),
    name: str | None = typer.Option(None, "--name", help="New display name."),
    role: str | None = RoleOption,
    active: bool | None = typer.Option(None, "--active/--inactive", help="Enable or disable the account."),
    password: bool = PasswordPromptOption,
    password_stdin: bool = PasswordStdinOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Change a user's e-mail, name, role, active flag or password."""
    changes = {"email": email, "display_name": name, "role": role, "active": active}
    body: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    secret = _password(password, password_stdin)
    if secret is not None:
        body["password"] = secret
    if not body:
        fail("nothing to change: give --email, --name, --role, --active/--inactive or --password", 2)
    answer = send(url, "PATCH", f"/admin/users/{ref(user)}", body)
    print_answer(answer, as_json, f"Updated user {answer.get('id')} {answer.get('email')}.")


@users_app.command("delete")
def delete_user(user: str = UserArg, url: str = UrlOption) -> None:
    """Delete a user with their tokens and sessions."""
    send(url, "DELETE", f"/admin/users/{ref(user)}")
    typer.echo(f"Deleted user {user}.")


# -- groups -----------------------------------------------------------------------------------


def _members(group: dict[str, Any]) -> str:
    members = group.get("members") or ()
    return joined(m.get("email") or m.get("id") if isinstance(m, dict) else m for m in members)


@groups_app.command("list")
def list_groups(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List groups."""
    print_rows(
        fetch(url, "/admin/groups"),
        as_json,
        [
            ("id", key("id")),
            ("name", key("name")),
            ("description", key("description")),
            ("members", _members),
        ],
        empty="No groups.",
    )


@groups_app.command("show")
def show_group(group: str = GroupArg, url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show a group, its members and its permissions."""
    answer = fetch(url, f"/admin/groups/{ref(group)}")
    if as_json:
        print_json(answer)
        return
    fields(
        [
            ("id", str(answer.get("id"))),
            ("name", str(answer.get("name"))),
            ("description", answer.get("description") or "-"),
            ("members", _members(answer)),
            ("permissions", joined(answer.get("permissions"), "none")),
            ("created", when(answer.get("created_at"))),
        ]
    )


@groups_app.command("create")
def create_group(
    name: str = typer.Argument(..., help="Group name."),
    description: str = typer.Option("", "--description", "-d", help="What the group is for."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a group."""
    answer = send(url, "POST", "/admin/groups", {"name": name, "description": description})
    print_answer(answer, as_json, f"Created group {answer.get('id')} {answer.get('name')}.")


@groups_app.command("update")
def update_group(
    group: str = GroupArg,
    name: str | None = typer.Option(None, "--name", help="New name."),
    description: str | None = typer.Option(None, "--description", "-d", help="New description."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename a group or change its description."""
    body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    if not body:
        fail("nothing to change: give --name or --description", 2)
    answer = send(url, "PATCH", f"/admin/groups/{ref(group)}", body)
    print_answer(answer, as_json, f"Updated group {answer.get('id')} {answer.get('name')}.")


@groups_app.command("delete")
def delete_group(group: str = GroupArg, url: str = UrlOption) -> None:
    """Delete a group (its members stay; they lose what the group gave them)."""
    send(url, "DELETE", f"/admin/groups/{ref(group)}")
    typer.echo(f"Deleted group {group}.")


@groups_app.command("add-member")
def add_member(group: str = GroupArg, user: str = UserArg, url: str = UrlOption) -> None:
    """Add a user to a group."""
    send(url, "POST", f"/admin/groups/{ref(group)}/members", {"user": user})
    typer.echo(f"Added {user} to {group}.")


@groups_app.command("remove-member")
def remove_member(group: str = GroupArg, user: str = UserArg, url: str = UrlOption) -> None:
    """Remove a user from a group."""
    send(url, "DELETE", f"/admin/groups/{ref(group)}/members/{ref(user)}")
    typer.echo(f"Removed {user} from {group}.")


# -- permissions ------------------------------------------------------------------------------


def _owner(user: str | None, group: str | None) -> str:
    if (user is None) == (group is None):
        fail("give exactly one of --user or --group", 2)
    return f"/admin/users/{ref(user)}" if user is not None else f"/admin/groups/{ref(group or '')}"


OwnerUserOption = typer.Option(None, "--user", "-u", help="User id or e-mail.")
OwnerGroupOption = typer.Option(None, "--group", "-g", help="Group id or name.")


@permissions_app.command("list")
def list_permissions(
    user: str | None = OwnerUserOption,
    group: str | None = OwnerGroupOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """List every permission and the roles, or those granted to one user or group."""
    if user is None and group is None:
        answer = fetch(url, "/admin/permissions")
    else:
        answer = fetch(url, f"{_owner(user, group)}/permissions")
    if as_json:
        print_json(answer)
        return
    if user is not None or group is not None:
        direct = set(answer.get("direct") or ())
        rows = [{"name": p, "how": "direct" if p in direct else "role or group"} for p in answer["effective"]]
        table(rows, [("permission", key("name")), ("granted", key("how"))], empty="No permissions.")
        return
    roles: dict[str, list[str]] = answer.get("roles") or {}
    table(
        answer["data"],
        [
            ("permission", key("name")),
            ("description", key("description")),
            ("roles", lambda p: joined(r for r, perms in roles.items() if p.get("name") in perms)),
        ],
        empty="No permissions.",
    )


@permissions_app.command("grant")
def grant(
    permissions: list[str] = typer.Argument(..., help="Permission names, e.g. model.view."),
    user: str | None = OwnerUserOption,
    group: str | None = OwnerGroupOption,
    url: str = UrlOption,
) -> None:
    """Grant permissions to a user or a group."""
    owner = _owner(user, group)
    send(url, "POST", f"{owner}/permissions", {"permissions": permissions})
    typer.echo(f"Granted {', '.join(permissions)} to {user or group}.")


@permissions_app.command("revoke")
def revoke(
    permissions: list[str] = typer.Argument(..., help="Permission names."),
    user: str | None = OwnerUserOption,
    group: str | None = OwnerGroupOption,
    url: str = UrlOption,
) -> None:
    """Revoke permissions granted directly to a user or a group."""
    owner = _owner(user, group)
    with connect(url) as api:
        for permission in permissions:
            api.delete(f"{owner}/permissions/{ref(permission)}")
    typer.echo(f"Revoked {', '.join(permissions)} from {user or group}.")
