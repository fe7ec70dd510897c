"""``waypost tokens``: API tokens of every user (token.* permissions)."""

from __future__ import annotations

from typing import Any

import typer

from waypost.cli.client import UrlOption, connect, expiry, fail, ref, send
from waypost.cli.output import Cell, JsonOption, fields, joined, key, print_answer, print_json, table, when

app = typer.Typer(help="Manage API tokens (admin).", no_args_is_help=True)

ModelsOption = typer.Option(
    None, "--model", "-m", help="Restrict the token to this model (repeatable; default: the owner's models)."
)
TokenNameArg = typer.Argument(..., help="A name saying what the token is for.")
ExpiresInOption = typer.Option(None, "--expires-in-days", min=1, help="Expire after this many days.")
ExpiresAtOption = typer.Option(
    None, "--expires-at", help="Expire at this ISO date or date-time (local time)."
)


def token_columns(users: dict[Any, str] | None) -> list[tuple[str, Cell]]:
    """Columns of a token table; ``users`` maps ids to e-mails (no user column when ``None``)."""
    columns: list[tuple[str, Cell]] = [("id", key("id")), ("name", key("name")), ("prefix", key("prefix"))]
    if users is not None:
        columns.append(("user", lambda t: users.get(t.get("user_id", -1), str(t.get("user_id")))))
    columns += [
        ("models", lambda t: joined(t.get("models"), "all")),
        ("expires", lambda t: when(t.get("expires_at"))),
        ("last used", lambda t: when(t.get("last_used_at"))),
    ]
    return columns


def token_fields(token: dict[str, Any], owner: str | None = None) -> None:
    fields(
        [
            ("id", str(token.get("id"))),
            ("name", str(token.get("name"))),
            ("prefix", str(token.get("prefix"))),
            ("user", owner or str(token.get("user_id"))),
            ("models", joined(token.get("models"), "all the owner's models")),
            ("expires", when(token.get("expires_at"))),
            ("last used", when(token.get("last_used_at"))),
            ("created", when(token.get("created_at"))),
        ]
    )


def new_token_body(
    name: str, models: list[str] | None, expires_in_days: int | None, expires_at: str | None
) -> dict[str, Any]:
    """What minting a token sends: its name, its expiry and the models it is restricted to (if any)."""
    body: dict[str, Any] = {"name": name, **expiry(expires_in_days, expires_at)}
    if models:
        body["models"] = models
    return body


def print_new_token(token: dict[str, Any], as_json: bool, owner: str | None = None) -> None:
    """The plaintext alone on stdout (easy to capture), the explanation on stderr."""
    if as_json:
        print_json(token)
        return
    plaintext = token.get("token")
    if not plaintext:
        fail("the gateway did not return the new token's value")
    whose = f" for {owner}" if owner else ""
    typer.echo(f"Created token {token.get('id')} {token.get('name')!r}{whose}:", err=True)
    typer.echo(plaintext)
    typer.echo("Copy it now: it will not be shown again.", err=True)


@app.command("list")
def list_tokens(
    user: str | None = typer.Option(None, "--user", "-u", help="Only this user's tokens (id or e-mail)."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """List API tokens."""
    with connect(url) as api:
        answer = api.get("/admin/tokens", user=user)
        if as_json:
            print_json(answer)
            return
        users = api.user_emails()
    table(answer["data"], token_columns(users), empty="No tokens.")


@app.command("show")
def show_token(
    token_id: int = typer.Argument(..., help="Token id."), url: str = UrlOption, as_json: bool = JsonOption
) -> None:
    """Show one token (never its value)."""
    with connect(url) as api:
        token = api.get(f"/admin/tokens/{token_id}")
        if as_json:
            print_json(token)
            return
        owner = api.user_emails().get(token.get("user_id"))
    token_fields(token, owner)


@app.command("create")
def create_token(
    name: str = TokenNameArg,
    user: str = typer.Option(..., "--user", "-u", help="Owner (id or e-mail)."),
    models: list[str] | None = ModelsOption,
    expires_in_days: int | None = ExpiresInOption,
    expires_at: str | None = ExpiresAtOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Mint an API token for a user; its value is printed once."""
    body = {"user": user, **new_token_body(name, models, expires_in_days, expires_at)}
    print_new_token(send(url, "POST", "/admin/tokens", body), as_json, user)


@app.command("update")
def update_token(
    token_id: int = typer.Argument(..., help="Token id."),
    name: str | None = typer.Option(None, "--name", help="New name."),
    models: list[str] | None = ModelsOption,
    all_models: bool = typer.Option(False, "--all-models", help="Lift the model restriction."),
    expires_at: str | None = ExpiresAtOption,
    no_expiry: bool = typer.Option(False, "--no-expiry", help="Never expire."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename a token, change its models or its expiry."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if models and all_models:
        fail("give --model or --all-models, not both", 2)
    if models:
        body["models"] = models
    elif all_models:
        body["models"] = None
    if expires_at is not None and no_expiry:
        fail("give --expires-at or --no-expiry, not both", 2)
    if no_expiry:
        body["expires_at"] = None
    elif expires_at is not None:
        body.update(expiry(None, expires_at))
    if not body:
        fail("nothing to change: give --name, --model, --all-models, --expires-at or --no-expiry", 2)
    print_answer(send(url, "PATCH", f"/admin/tokens/{token_id}", body), as_json, f"Updated token {token_id}.")


@app.command("delete")
def delete_token(token_id: int = typer.Argument(..., help="Token id."), url: str = UrlOption) -> None:
    """Revoke a token at once."""
    send(url, "DELETE", f"/admin/tokens/{ref(token_id)}")
    typer.echo(f"Deleted token {token_id}.")
