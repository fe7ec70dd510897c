"""Who you are on a gateway: login, logout, whoami, status, and ``waypost me`` self-service."""

from __future__ import annotations

import os
from typing import Any

import typer

from waypost.cli.client import (
    CallFailed,
    GatewayClient,
    UrlOption,
    connect,
    fail,
    fetch,
    prompt_secret,
    read_stdin_secret,
    send,
)
from waypost.cli.output import JsonOption, fields, joined, key, print_json, print_rows, table, when, yes_no
from waypost.cli.tokens import (
    ExpiresAtOption,
    ExpiresInOption,
    ModelsOption,
    TokenNameArg,
    new_token_body,
    print_new_token,
    token_columns,
)

me_app = typer.Typer(help="Your own account: models, API tokens, password.", no_args_is_help=True)
me_tokens_app = typer.Typer(help="Your API tokens.", no_args_is_help=True)
me_app.add_typer(me_tokens_app, name="tokens")


def login(
    email: str | None = typer.Option(None, "--email", "-e", help="Account e-mail (prompted when omitted)."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input instead of prompting."
    ),
    url: str = UrlOption,
) -> None:
    """Log in with e-mail and password; the session is kept in the credentials file."""
    if email is None:
        email = typer.prompt("E-mail", default="admin@localhost")
    password = read_stdin_secret("password") if password_stdin else prompt_secret("password", confirm=False)
    with GatewayClient(url) as api:
        try:
            answer = api.anonymous("POST", "/auth/login", {"email": email, "password": password})
        except CallFailed as exc:
            fail(exc.message)
        api.store.put(api.url, answer["access_token"], answer["refresh_token"])
    user = answer.get("user") or {}
    typer.echo(f"Logged in to {api.url} as {user.get('email', email)} ({user.get('role', 'user')}).")
    if os.environ.get("WAYPOST_TOKEN"):
        typer.echo("note: WAYPOST_TOKEN is set and is used instead of this login until unset.", err=True)


def logout(url: str = UrlOption) -> None:
    """End the session: revoke its refresh token on the gateway and forget it here."""
    with GatewayClient(url) as api:
        session = api.store.get(api.url)
        if session is None:
            typer.echo(f"Not logged in to {api.url}.")
            return
        api.store.remove(api.url)
        try:
            api.anonymous("POST", "/auth/logout", {"refresh_token": session.get("refresh_token", "")})
        except CallFailed as exc:
            # Forgotten here either way; the access token expires on its own shortly.
            typer.echo(f"warning: the gateway did not revoke the session: {exc.message}", err=True)
    typer.echo(f"Logged out of {api.url}.")


def user_fields(user: dict[str, Any]) -> None:
    pairs = [
        ("id", str(user.get("id"))),
        ("email", str(user.get("email"))),
        ("name", user.get("display_name") or "-"),
        ("role", str(user.get("role"))),
        ("active", yes_no(user.get("active"))),
        ("groups", joined(user.get("groups"))),
    ]
    if "permissions" in user:
        pairs.append(("permissions", joined(user.get("permissions"), "none")))
    pairs += [
        ("created", when(user.get("created_at"))),
        ("last login", when(user.get("last_login_at"))),
    ]
    fields(pairs)


def whoami(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show the account you are acting as."""
    me = fetch(url, "/me")
    if as_json:
        print_json(me)
    else:
        user_fields(me)


def status(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Check the gateway's health and security settings."""
    with connect(url) as api:
        answer = api.get("/admin/status")
    if as_json:
        print_json(answer)
        return
    typer.echo(f"{api.url}: {answer.get('status')}")
    checks = answer.get("checks") or []
    table(
        checks,
        [
            ("check", key("name")),
            ("ok", lambda c: "ok" if c.get("ok") else "FAIL"),
            ("detail", key("detail")),
        ],
        empty="No checks.",
    )


@me_app.command("models")
def my_models(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List the models you may use."""
    print_rows(
        fetch(url, "/me/models"),
        as_json,
        [
            ("name", key("name")),
            ("provider", key("provider")),
            ("source", key("source")),
            ("public", lambda m: yes_no(m.get("public"))),
        ],
        empty="No models.",
    )


@me_app.command("password")
def change_password(
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the current and the new password, one a line, from stdin."
    ),
    url: str = UrlOption,
) -> None:
    """Change your password."""
    if password_stdin:
        current, new = read_stdin_secret("current password"), read_stdin_secret("new password")
    else:
        current = prompt_secret("current password", confirm=False)
        new = prompt_secret("new password", confirm=True)
    with connect(url) as api:
        email = api.get("/me").get("email")
        api.request("POST", "/me/password", {"current_password": current, "new_password": new})
        # The gateway ends every session of the account, this CLI's too: log in again with
        # the new password, so the next command still works.
        if os.environ.get("WAYPOST_TOKEN") or api.store.get(api.url) is None:
            typer.echo("Password changed. Every login session of this account was ended.")
            return
        try:
            answer = api.anonymous("POST", "/auth/login", {"email": email, "password": new})
        except CallFailed as exc:
            api.store.remove(api.url)
            typer.echo(
                f"Password changed. Every session was ended, this one too, and logging in again failed"
                f" ({exc.message}): run `waypost login`."
            )
            return
        api.store.put(api.url, answer["access_token"], answer["refresh_token"])
    typer.echo("Password changed. Your other sessions were ended; this one is logged in again.")


@me_tokens_app.command("list")
def my_tokens(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List your API tokens."""
    print_rows(fetch(url, "/me/tokens"), as_json, token_columns(None), empty="No tokens.")


@me_tokens_app.command("create")
def create_my_token(
    name: str = TokenNameArg,
    models: list[str] | None = ModelsOption,
    expires_in_days: int | None = ExpiresInOption,
    expires_at: str | None = ExpiresAtOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Mint an API token for yourself; its value is printed once."""
    body = new_token_body(name, models, expires_in_days, expires_at)
    print_new_token(send(url, "POST", "/me/tokens", body), as_json)


@me_tokens_app.command("delete")
def delete_my_token(token_id: int = typer.Argument(..., help="Token id."), url: str = UrlOption) -> None:
    """Revoke one of your tokens."""
    send(url, "DELETE", f"/me/tokens/{token_id}")
    typer.echo(f"Deleted token {token_id}.")


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
    app.command()(whoami)
    app.command()(status)
    app.add_typer(me_app, name="me")
