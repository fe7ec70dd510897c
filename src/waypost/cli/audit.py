"""``waypost audit``: one request of the audit log (``show``), and the admin audit trail
(``trail``, ``verify``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from waypost.cli.client import UrlOption, connect, fail
from waypost.cli.configuration import ConfigOption, load_config
from waypost.cli.output import JsonOption, key, print_json, table, when
from waypost.cli.usage import show_request

app = typer.Typer(
    help="The request audit log and the trail of admin changes (audit.view).", no_args_is_help=True
)

PAGE = 200  # entries per request while listing
SHOWN = 60  # characters of a changed value in the table


@app.command("show")
def show(
    request_id: str = typer.Argument(..., help="The request's id (its X-Request-Id)."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """One request from the audit log, with its upstream attempts."""
    show_request(request_id, url, as_json)


@app.command("trail")
def trail(
    action: str | None = typer.Option(None, "--action", help="Only this action, e.g. user.create."),
    target_type: str | None = typer.Option(
        None, "--target-type", help="user, group, model, token, secret..."
    ),
    target: str | None = typer.Option(None, "--target", help="Only this target id or name."),
    actor: str | None = typer.Option(None, "--actor", help="Only changes by this user (id or e-mail)."),
    since: str | None = typer.Option(None, "--since", help="From this ISO date or date-time."),
    until: str | None = typer.Option(None, "--until", help="Before this ISO date or date-time."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Show at most this many (newest first)."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Who changed what, when and from where: users, groups, permissions, models, tokens, secrets."""
    query: dict[str, Any] = {
        "action": action,
        "target_type": target_type,
        "target_id": target,
        "actor": actor,
        "from": since,
        "to": until,
    }
    entries: list[dict[str, Any]] = []
    cursor = None
    with connect(url) as api:
        while len(entries) < limit:
            page = api.get(
                "/admin/audit-trail", **query, limit=min(PAGE, limit - len(entries)), cursor=cursor
            )
            entries += page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    if as_json:
        print_json({"data": entries, "next_cursor": cursor})
        return
    table(
        entries,
        [
            ("id", key("id")),
            ("when", lambda e: when(e.get("created_at"))),
            ("actor", lambda e: str(e.get("actor_email") or e.get("actor_id") or "-")),
            ("action", key("action")),
            ("target", lambda e: f"{e.get('target_type')} {e.get('target_id') or ''}".strip()),
            ("from", key("client_ip")),
            ("change", changes),
        ],
        empty="No admin changes recorded.",
    )


def changes(entry: dict[str, Any]) -> str:
    """What an entry changed, in one cell: the fields that differ before and after."""
    before, after = entry.get("before"), entry.get("after")
    if before is None and after is None:
        return "-"
    if before is None:
        return "created" if entry.get("action", "").endswith(".create") else _fields(after or {})
    if after is None:
        return "deleted"
    differ = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    parts = [f"{k}: {_short(before.get(k))} -> {_short(after.get(k))}" for k in differ]
    return "; ".join(parts) or "no change"


def _fields(values: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {_short(v)}" for k, v in sorted(values.items())) or "-"


def _short(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


@app.command("verify")
def verify(
    anchor: str | None = typer.Option(
        None, "--anchor", help="A head hash printed by an earlier verify: it must still be in the trail."
    ),
    local: bool = typer.Option(
        False, "--local", help="Read the configured database directly instead of asking a running gateway."
    ),
    config: Path | None = ConfigOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Check the trail's hash chain; exit 1 naming the first entry edited, removed or reordered."""
    if anchor is not None and (len(anchor) != 64 or any(c not in "0123456789abcdef" for c in anchor)):
        fail("--anchor: a hash is 64 lower-case hexadecimal characters", 2)
    if local:
        result = _verify_database(config, anchor)
    else:
        with connect(url) as api:
            result = api.get("/admin/audit-trail/verify", anchor=anchor)
    if as_json:
        print_json(result)
    elif result["ok"]:
        head = f"entry {result['head_id']}, hash {result['head_hash']}" if result["head_id"] else "none"
        typer.echo(f"ok: {result['entries']} entries, the chain is intact. Head: {head}")
    else:
        typer.echo(f"TAMPERED: {result['problem_count']} break(s) in {result['entries']} entries")
        for problem in result["problems"]:
            typer.echo(f"  {problem['kind']}: {problem['message']}")
        if result["problem_count"] > len(result["problems"]):
            typer.echo(f"  ... and {result['problem_count'] - len(result['problems'])} more")
    if not result["ok"]:
        raise typer.Exit(1)


def _verify_database(config: Path | None, anchor: str | None) -> dict[str, Any]:
    """The verification run here, on the database of the config file (no gateway involved)."""
    from dataclasses import asdict

    import sqlalchemy as sa

    from waypost.store import Store

    settings = load_config(config)
    url = sa.make_url(settings.database.url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or ":memory:").is_file():
        fail(f"cannot read the audit trail: there is no SQLite database at {url.database or ':memory:'}")

    async def run() -> dict[str, Any]:
        store = Store.from_settings(settings.database)
        try:
            result = await store.admin_trail.verify(anchor=anchor)
        finally:
            await store.close()
        return {**asdict(result), "ok": result.ok}

    try:
        return asyncio.run(run())
    except Exception as exc:  # any driver error: say which database, without a traceback
        fail(f"cannot read the audit trail from the database: {exc}")
