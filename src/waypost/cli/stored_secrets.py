"""``waypost secrets``: encrypted values models refer to as ``secret://NAME`` (admin)."""

from __future__ import annotations

from typing import Any

import typer

from waypost.cli.client import UrlOption, fail, fetch, prompt_secret, read_stdin_secret, ref, send
from waypost.cli.output import JsonOption, fields, key, print_answer, print_json, print_rows, when

app = typer.Typer(help="Manage encrypted secrets (admin); values are never shown back.", no_args_is_help=True)

NameArg = typer.Argument(..., help="Secret name (letters, digits, . _ -).")
ValueStdinOption = typer.Option(False, "--value-stdin", help="Read the value from standard input.")
DescriptionOption = typer.Option(None, "--description", "-d", help="What the secret is.")


@app.command("list")
def list_secrets(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List secrets (names and descriptions only)."""
    print_rows(
        fetch(url, "/admin/secrets"),
        as_json,
        [
            ("name", key("name")),
            ("description", key("description")),
            ("updated", lambda s: when(s.get("updated_at"))),
        ],
        empty="No secrets.",
    )


@app.command("show")
def show_secret(name: str = NameArg, url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show a secret's description and dates (never its value)."""
    answer = fetch(url, f"/admin/secrets/{ref(name)}")
    if as_json:
        print_json(answer)
        return
    fields(
        [
            ("name", str(answer.get("name"))),
            ("description", answer.get("description") or "-"),
            ("reference", f"secret://{answer.get('name')}"),
            ("created", when(answer.get("created_at"))),
            ("updated", when(answer.get("updated_at"))),
        ]
    )


@app.command("create")
def create_secret(
    name: str = NameArg,
    description: str | None = DescriptionOption,
    value_stdin: bool = ValueStdinOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Store a new secret; the value is prompted for twice without echo."""
    value = read_stdin_secret("value") if value_stdin else prompt_secret("value", confirm=True)
    body: dict[str, Any] = {"name": name, "value": value}
    if description is not None:
        body["description"] = description
    answer = send(url, "POST", "/admin/secrets", body)
    print_answer(answer, as_json, f"Created secret {name}; refer to it as secret://{name}.")


@app.command("update")
def update_secret(
    name: str = NameArg,
    description: str | None = DescriptionOption,
    value: bool = typer.Option(False, "--value", help="Prompt for a new value (not echoed)."),
    value_stdin: bool = ValueStdinOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Replace a secret's value or change its description."""
    if value and value_stdin:
        fail("give --value or --value-stdin, not both", 2)
    body: dict[str, Any] = {}
    if value_stdin:
        body["value"] = read_stdin_secret("value")
    elif value:
        body["value"] = prompt_secret("value", confirm=True)
    if description is not None:
        body["description"] = description
    if not body:
        fail("nothing to change: give --value, --value-stdin or --description", 2)
    print_answer(send(url, "PATCH", f"/admin/secrets/{ref(name)}", body), as_json, f"Updated secret {name}.")


@app.command("delete")
def delete_secret(name: str = NameArg, url: str = UrlOption) -> None:
    """Delete a secret no database model refers to."""
    send(url, "DELETE", f"/admin/secrets/{ref(name)}")
    typer.echo(f"Deleted secret {name}.")


@app.command("rotate")
def rotate(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Re-encrypt every secret with the first of security.encryption_keys."""
    answer = send(url, "POST", "/admin/secrets/rotate")
    print_answer(answer, as_json, f"Re-encrypted {answer.get('rotated', 0)} secret(s) with the primary key.")
