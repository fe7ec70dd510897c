"""``waypost usage summary|costs`` and ``waypost audit-logs``: usage, spend and the audit log, read
from a running gateway (usage.view / audit.view)."""

from __future__ import annotations

from typing import Any

import typer

from waypost.cli.client import UrlOption, connect
from waypost.cli.output import Cell, JsonOption, fields, key, print_json, table, when
from waypost.metering.reports import usd

app = typer.Typer(help="Usage and spend from the audit log (usage.view).", no_args_is_help=True)

FromOption = typer.Option(
    None, "--from", help="Start, inclusive: ISO date or date-time (UTC unless it has an offset)."
)
ToOption = typer.Option(None, "--to", help="End, exclusive: ISO date or date-time.")
UserOption = typer.Option(None, "--user", "-u", help="Only this user: id or e-mail (repeatable).")
GroupOption = typer.Option(None, "--group", "-g", help="Only members of this group (repeatable).")
ModelOption = typer.Option(None, "--model", "-m", help="Only this model (repeatable).")
ProviderOption = typer.Option(None, "--provider", "-p", help="Only this provider (repeatable).")
TokenOption = typer.Option(None, "--token", "-t", help="Only this API token id (repeatable).")
TagOption = typer.Option(None, "--tag", help="Only requests with this tag (repeatable).")
GroupByOption = typer.Option(
    None,
    "--group-by",
    "-b",
    help="user, group, model, provider, token, tag, day, week or month (repeatable or comma-separated).",
)


def filters(
    start: str | None,
    end: str | None,
    users: list[str] | None,
    groups: list[str] | None,
    models: list[str] | None,
    providers: list[str] | None,
    tokens: list[int] | None,
    tags: list[str] | None,
) -> dict[str, Any]:
    """The query parameters of the usage and audit-log endpoints (the gateway checks them)."""
    params = {
        "from": start,
        "to": end,
        "user": users,
        "group": groups,
        "model": models,
        "provider": providers,
        "token": [str(t) for t in tokens or ()],
        "tag": tags,
    }
    return {k: v for k, v in params.items() if v}


def key_columns(group_by: list[str]) -> list[tuple[str, Cell]]:
    """A column per grouping key: users by e-mail (their id when the row has none)."""
    columns: list[tuple[str, Cell]] = []
    for name in group_by:
        if name == "user":
            columns.append(("user", lambda r: str(r.get("user_email") or r.get("user_id") or "-")))
        elif name == "token":
            columns.append(("token", key("token_id")))
        else:
            columns.append((name, key(name)))
    return columns


def tokens_cell(row: dict[str, Any]) -> str:
    return f"{row['input_tokens']:,} / {row['output_tokens']:,}"


USAGE_COLUMNS: list[tuple[str, Cell]] = [
    ("requests", lambda r: f"{r['requests']:,}"),
    ("errors", lambda r: f"{r['errors']:,}"),
    ("input / output", tokens_cell),
    ("cache read / write", lambda r: f"{r['cache_read_tokens']:,} / {r['cache_write_tokens']:,}"),
    ("cost", lambda r: usd(r["cost_micros"])),
]


def total_line(totals: dict[str, Any]) -> str:
    return (
        f"Total: {totals['requests']:,} requests ({totals['errors']:,} failed), "
        f"{tokens_cell(totals)} input / output tokens, {usd(totals['cost_micros'])}"
    )


@app.command("summary")
def summary(
    group_by: list[str] | None = GroupByOption,
    start: str | None = FromOption,
    end: str | None = ToOption,
    user: list[str] | None = UserOption,
    group: list[str] | None = GroupOption,
    model: list[str] | None = ModelOption,
    provider: list[str] | None = ProviderOption,
    token: list[int] | None = TokenOption,
    tag: list[str] | None = TagOption,
    sort: str | None = typer.Option(None, "--sort", help="A metric (cost_micros, requests, ...) or a key."),
    order: str | None = typer.Option(None, "--order", help="asc or desc."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many rows."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Requests, tokens and spend: totals, and a row per group with --group-by."""
    params = filters(start, end, user, group, model, provider, token, tag)
    with connect(url) as api:
        answer = api.get(
            "/admin/usage/summary", **params, group_by=group_by or None, sort=sort, order=order, limit=limit
        )
    if as_json:
        print_json(answer)
        return
    if answer["group_by"]:
        table(answer["data"], [*key_columns(answer["group_by"]), *USAGE_COLUMNS], empty="No usage.")
        if answer.get("truncated"):
            typer.echo("(more rows matched: raise --limit or narrow the filters)", err=True)
    typer.echo(total_line(answer["totals"]))


@app.command("costs")
def costs(
    group_by: list[str] | None = GroupByOption,
    start: str | None = FromOption,
    end: str | None = ToOption,
    user: list[str] | None = UserOption,
    group: list[str] | None = GroupOption,
    model: list[str] | None = ModelOption,
    provider: list[str] | None = ProviderOption,
    token: list[int] | None = TokenOption,
    tag: list[str] | None = TagOption,
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many rows."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Spend per model (or per --group-by), largest first, with each one's share."""
    params = filters(start, end, user, group, model, provider, token, tag)
    with connect(url) as api:
        answer = api.get("/admin/usage/costs", **params, group_by=group_by or None, limit=limit)
    if as_json:
        print_json(answer)
        return
    columns: list[tuple[str, Cell]] = [
        *key_columns(answer["group_by"]),
        ("requests", lambda r: f"{r['requests']:,}"),
        ("cost", lambda r: usd(r["cost_micros"])),
        ("share", lambda r: f"{r['share'] * 100:.1f}%"),
    ]
    table(answer["data"], columns, empty="No usage.")
    unpriced = f" ({answer['unpriced']:,} unpriced)" if answer.get("unpriced") else ""
    typer.echo(f"Total: {usd(answer['cost_micros'])} over {answer['requests']:,} requests{unpriced}")


LOG_COLUMNS: list[tuple[str, Cell]] = [
    ("time", lambda r: when(r.get("created_at"))),
    ("request", key("request_id")),
    ("user", lambda r: str(r.get("user_email") or r.get("user_id") or "-")),
    ("model", lambda r: str(r.get("model") or r.get("requested_model") or "-")),
    ("provider", key("provider")),
    ("status", lambda r: str(r["status"]) + (f" {r['error_class']}" if r.get("error_class") else "")),
    ("tokens in / out", lambda r: f"{r['input_tokens']:,} / {r['output_tokens']:,}"),
    ("cost", lambda r: usd(r["cost_micros"])),
    ("latency", lambda r: f"{r['latency_ms']:.0f} ms"),
]


def audit_logs(
    start: str | None = FromOption,
    end: str | None = ToOption,
    user: list[str] | None = UserOption,
    group: list[str] | None = GroupOption,
    model: list[str] | None = ModelOption,
    provider: list[str] | None = ProviderOption,
    token: list[int] | None = TokenOption,
    tag: list[str] | None = TagOption,
    endpoint: list[str] | None = typer.Option(None, "--endpoint", help="Only this endpoint (repeatable)."),
    status: list[str] | None = typer.Option(
        None, "--status", "-s", help="ok, error or an HTTP status code (repeatable)."
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=500, help="Rows per page."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue where a previous page ended."),
    every: bool = typer.Option(False, "--all", help="Follow the pages to the end."),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """The audit log (audit.view): one row per request, newest first."""
    params = filters(start, end, user, group, model, provider, token, tag)
    rows: list[dict[str, Any]] = []
    with connect(url) as api:
        while True:
            answer = api.get(
                "/admin/audit-logs",
                **params,
                endpoint=endpoint or None,
                status=status or None,
                limit=limit,
                cursor=cursor,
            )
            rows += answer["data"]
            cursor = answer["next_cursor"]
            if not every or cursor is None:
                break
    if as_json:
        print_json({"data": rows, "next_cursor": cursor, "has_more": cursor is not None})
        return
    table(rows, LOG_COLUMNS, empty="No requests.")
    if cursor is not None:
        typer.echo(f"More rows: add --cursor {cursor} (or --all)", err=True)


def show_request(request_id: str, url: str, as_json: bool) -> None:
    """One request's row and its upstream attempts (``waypost audit show``)."""
    from waypost.cli.client import ref

    with connect(url) as api:
        answer = api.get(f"/admin/audit-logs/{ref(request_id)}")
    if as_json:
        print_json(answer)
        return
    row = answer["request"]
    optional = [
        (label, str(row[name]))
        for label, name in (
            ("error", "error_message"),
            ("request body", "request_body"),
            ("response body", "response_body"),
        )
        if row.get(name)
    ]
    fields(
        [
            ("request", str(row["request_id"])),
            ("time", when(row.get("created_at"))),
            (
                "user",
                f"{row.get('user_email') or '-'} (id {row.get('user_id')}, token {row.get('token_id') or '-'})",
            ),
            (
                "groups / tags",
                f"{', '.join(row.get('groups') or []) or '-'} / {', '.join(row.get('tags') or []) or '-'}",
            ),
            (
                "endpoint",
                f"{row['endpoint']} ({row['client_format']}{', streamed' if row.get('stream') else ''})",
            ),
            (
                "model",
                f"{row.get('requested_model') or '-'} -> {row.get('model') or '-'} ({row.get('provider') or '-'} {row.get('upstream_model') or ''})".rstrip(),
            ),
            ("status", str(row["status"]) + (f" {row['error_class']}" if row.get("error_class") else "")),
            (
                "latency",
                f"{row['latency_ms']:.0f} ms"
                + (f", first token {row['ttft_ms']:.0f} ms" if row.get("ttft_ms") is not None else ""),
            ),
            (
                "tokens",
                f"{row['input_tokens']:,} input, {row['cache_read_tokens']:,} cache read, {row['cache_write_tokens']:,} cache write, {row['output_tokens']:,} output ({row['reasoning_tokens']:,} reasoning){' (estimated)' if row.get('usage_estimated') else ''}",
            ),
            ("cost", usd(row["cost_micros"]) + ("" if row.get("priced", True) else " (unpriced)")),
            ("cache", str(row.get("cache_status") or "-")),
            ("client", f"{row.get('client_ip') or '-'} {row.get('user_agent') or ''}".rstrip()),
            *optional,
        ]
    )
    typer.echo("")
    table(
        answer["attempts"],
        [
            ("attempt", key("attempt")),
            ("model", key("model")),
            ("provider", key("provider")),
            ("status", lambda a: str(a["status"]) + (f" {a['error_class']}" if a.get("error_class") else "")),
            ("latency", lambda a: f"{a['latency_ms']:.0f} ms"),
            ("tokens in / out", lambda a: f"{a['input_tokens']:,} / {a['output_tokens']:,}"),
            ("cost", lambda a: usd(a["cost_micros"])),
        ],
        empty="No upstream attempts recorded.",
    )
