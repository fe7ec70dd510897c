"""``waypost models``: models stored in the database, next to those of the config file (admin)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml

from waypost.cli.client import UrlOption, fail, fetch, ref, send
from waypost.cli.output import JsonOption, fields, joined, key, print_answer, print_json, print_rows, yes_no
from waypost.providers.kinds import PROVIDER_TYPES

app = typer.Typer(help="Manage models (admin).", no_args_is_help=True)

NameArg = typer.Argument(..., help="Model name (what callers put in `model`).")
ProviderOption = typer.Option(
    None, "--provider", "-p", help=f"{', '.join(PROVIDER_TYPES)}, or a preset name."
)
BaseUrlOption = typer.Option(None, "--base-url", help="Upstream base URL.")
UpstreamOption = typer.Option(None, "--upstream-model", help="The model name the upstream knows.")
SecretOption = typer.Option(
    None, "--api-key-secret", help="Name of a stored secret holding the upstream API key."
)
PublicOption = typer.Option(None, "--public/--private", help="Usable by everyone, or only by assignees.")
SetOption = typer.Option(
    None, "--set", help="Any setting as key=value; dotted keys nest (retry.max_retries=0); JSON values."
)
FileOption = typer.Option(None, "--file", "-f", help="A YAML or JSON file with the model's settings.")


def assigned(model: dict[str, Any]) -> str:
    assignments = model.get("assignments") or {}
    names = [*(assignments.get("users") or ()), *(f"group:{g}" for g in assignments.get("groups") or ())]
    return joined(names)


def _value(text: str) -> Any:
    """JSON when it parses (numbers, true/false/null, lists, objects), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def model_body(
    file: Path | None,
    provider: str | None,
    base_url: str | None,
    upstream_model: str | None,
    api_key_secret: str | None,
    public: bool | None,
    settings: list[str] | None,
) -> dict[str, Any]:
    """The settings given by ``--file``, then the flags, then each ``--set`` (later wins)."""
    body: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            fail(f"cannot read {file}: {exc}", 2)
        if not isinstance(loaded, dict):
            fail(f"{file}: expected a mapping of model settings", 2)
        body.update(loaded)
    flags = {"provider": provider, "base_url": base_url, "upstream_model": upstream_model, "public": public}
    body.update({k: v for k, v in flags.items() if v is not None})
    if api_key_secret is not None:
        body["api_key"] = f"secret://{api_key_secret}"
    for item in settings or ():
        path, sep, raw = item.partition("=")
        if not sep or not path:
            fail(f"--set expects key=value, got {item!r}", 2)
        node = body
        *parents, leaf = path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                fail(f"--set {path}: {part!r} is not a mapping", 2)
            node = child
        node[leaf] = _value(raw)
    return body


@app.command("list")
def list_models(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List every model: from the config file and from the database."""
    print_rows(
        fetch(url, "/admin/models"),
        as_json,
        [
            ("name", key("name")),
            ("provider", key("provider")),
            ("source", key("source")),
            ("public", lambda m: yes_no(m.get("public"))),
            ("assigned", assigned),
            ("status", lambda m: f"disabled: {m['disabled']}" if m.get("disabled") else "enabled"),
        ],
        empty="No models.",
    )


@app.command("show")
def show_model(name: str = NameArg, url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show a model's settings (credentials appear as secret:// references or ********)."""
    answer = fetch(url, f"/admin/models/{ref(name)}")
    if as_json:
        print_json(answer)
        return
    fields(
        [
            ("name", str(answer.get("name"))),
            ("provider", str(answer.get("provider"))),
            ("source", str(answer.get("source"))),
            ("public", yes_no(answer.get("public"))),
            ("assigned", assigned(answer)),
        ]
    )
    config = _without_blanks(
        {k: v for k, v in (answer.get("config") or {}).items() if k not in ("provider", "public")}
    )
    if config:
        typer.echo("settings:")
        text = yaml.safe_dump(config, sort_keys=True, default_flow_style=False, allow_unicode=True)
        typer.echo("".join(f"  {line}\n" for line in text.splitlines()), nl=False)


def _without_blanks(node: Any) -> Any:
    """Settings minus the unset ones (null, empty lists and mappings), for reading."""
    if isinstance(node, dict):
        kept = {k: _without_blanks(v) for k, v in node.items()}
        return {k: v for k, v in kept.items() if v not in (None, [], {})}
    return node


ModelAction = Callable[[str, dict[str, Any], str, bool], None]


def with_model_flags(action: ModelAction) -> Callable[..., None]:
    """A command taking a model's name and settings flags that hands ``action`` the body they make."""

    def command(
        name: str = NameArg,
        provider: str | None = ProviderOption,
        base_url: str | None = BaseUrlOption,
        upstream_model: str | None = UpstreamOption,
        api_key_secret: str | None = SecretOption,
        public: bool | None = PublicOption,
        settings: list[str] | None = SetOption,
        file: Path | None = FileOption,
        url: str = UrlOption,
        as_json: bool = JsonOption,
    ) -> None:
        body = model_body(file, provider, base_url, upstream_model, api_key_secret, public, settings)
        action(name, body, url, as_json)

    command.__doc__ = action.__doc__  # typer takes the command's help from here
    return command


def create_model(name: str, body: dict[str, Any], url: str, as_json: bool) -> None:
    """Add a model to the database."""
    body["name"] = name
    answer = send(url, "POST", "/admin/models", body)
    print_answer(answer, as_json, f"Created model {answer.get('name')} ({answer.get('provider')}).")


def update_model(name: str, body: dict[str, Any], url: str, as_json: bool) -> None:
    """Change some of a database model's settings."""
    body.pop("name", None)
    if not body:
        fail("nothing to change: give --provider, --base-url, --set, --file, ...", 2)
    answer = send(url, "PATCH", f"/admin/models/{ref(name)}", body)
    print_answer(answer, as_json, f"Updated model {answer.get('name', name)}.")


app.command("create")(with_model_flags(create_model))
app.command("update")(with_model_flags(update_model))


@app.command("delete")
def delete_model(name: str = NameArg, url: str = UrlOption) -> None:
    """Delete a database model and its assignments."""
    send(url, "DELETE", f"/admin/models/{ref(name)}")
    typer.echo(f"Deleted model {name}.")


AssignUsers = typer.Option(None, "--user", "-u", help="User id or e-mail (repeatable).")
AssignGroups = typer.Option(None, "--group", "-g", help="Group id or name (repeatable).")


def _assignment(action: str, name: str, users: list[str] | None, groups: list[str] | None, url: str) -> None:
    if not users and not groups:
        fail("give at least one --user or --group", 2)
    send(url, "POST", f"/admin/models/{ref(name)}/{action}", {"users": users or [], "groups": groups or []})
    who = joined([*(users or ()), *(f"group:{g}" for g in groups or ())])
    typer.echo(f"{action.capitalize()}ed {name} {'to' if action == 'assign' else 'from'} {who}.")


@app.command("assign")
def assign(
    name: str = NameArg,
    users: list[str] | None = AssignUsers,
    groups: list[str] | None = AssignGroups,
    url: str = UrlOption,
) -> None:
    """Let users or groups use a model."""
    _assignment("assign", name, users, groups, url)


@app.command("unassign")
def unassign(
    name: str = NameArg,
    users: list[str] | None = AssignUsers,
    groups: list[str] | None = AssignGroups,
    url: str = UrlOption,
) -> None:
    """Take a model away from users or groups."""
    _assignment("unassign", name, users, groups, url)
