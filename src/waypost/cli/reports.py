"""``waypost reports generate``: a usage report file (CSV, HTML or PDF) from a running gateway's
usage API (usage.view)."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from waypost.cli.client import UrlOption, connect, fail
from waypost.cli.usage import (
    FromOption,
    GroupOption,
    ModelOption,
    ProviderOption,
    TagOption,
    TokenOption,
    ToOption,
    UserOption,
    filters,
)

app = typer.Typer(help="Usage reports as files (usage.view).", no_args_is_help=True)

FORMATS = ("csv", "html", "pdf")
PERIODS = ("day", "week", "month")
TABLE_ROWS = 1000  # users or models listed; the totals always cover everything
TIME_ROWS = 10000  # periods x models behind the charts


def report_format(fmt: str | None, output: Path) -> str:
    """``--format``, else the output file's extension."""
    chosen = (fmt or output.suffix.lstrip(".")).lower()
    if chosen == "htm":
        chosen = "html"
    if chosen not in FORMATS:
        given = f"--format {fmt!r}" if fmt else f"the extension of {output.name!r}"
        fail(f"{given} is not a report format; use --format {'|'.join(FORMATS)}", 2)
    return chosen


def _scope(params: dict[str, Any]) -> list[tuple[str, str]]:
    names = {
        "from": "From",
        "to": "To",
        "user": "Users",
        "group": "Groups",
        "model": "Models",
        "provider": "Providers",
        "token": "API tokens",
        "tag": "Tags",
    }
    scope = [(names[k], ", ".join(v) if isinstance(v, list) else str(v)) for k, v in params.items()]
    if "from" not in params and "to" not in params:
        scope.insert(0, ("Range", "everything in the audit log"))
    return scope


def _write(output: Path, content: bytes) -> None:
    """All or nothing: a temporary file next to ``output``, renamed over it."""
    directory = output.parent if str(output.parent) else Path(".")
    if not directory.is_dir():
        fail(f"-o {output}: the directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@app.command("generate")
def generate(
    output: Path = typer.Option(..., "--output", "-o", help="The file to write.", dir_okay=False),
    fmt: str | None = typer.Option(None, "--format", "-f", help="csv, html or pdf (default: from -o)."),
    period: str = typer.Option("day", "--period", help="Chart buckets: day, week or month (UTC)."),
    start: str | None = FromOption,
    end: str | None = ToOption,
    user: list[str] | None = UserOption,
    group: list[str] | None = GroupOption,
    model: list[str] | None = ModelOption,
    provider: list[str] | None = ProviderOption,
    token: list[int] | None = TokenOption,
    tag: list[str] | None = TagOption,
    url: str = UrlOption,
) -> None:
    """Totals, a table per user and per model, and charts of spend over time."""
    chosen = report_format(fmt, output)
    if period not in PERIODS:
        fail(f"--period {period!r}: use day, week or month", 2)
    params = filters(start, end, user, group, model, provider, token, tag)
    summary = "/admin/usage/summary"
    ranked = {"sort": "cost_micros", "order": "desc", "limit": TABLE_ROWS}
    with connect(url) as api:
        by_user = api.get(summary, **params, group_by="user", **ranked)
        by_model = api.get(summary, **params, group_by="model", **ranked)
        over_time = api.get(summary, **params, group_by=f"{period},model", limit=TIME_ROWS)

    from waypost.metering.reports import ReportData, render  # the drawing code loads only now

    notes = [
        f"Only the {TABLE_ROWS} {what} with the largest spend are listed; the totals cover all."
        for what, answer in (("users", by_user), ("models", by_model))
        if answer.get("truncated")
    ]
    if over_time.get("truncated"):
        notes.append("The charts show part of the range: narrow it or use a longer --period.")
    data = ReportData(
        generated_at=datetime.now(UTC),
        period=period,
        totals=by_user["totals"],
        by_user=by_user["data"],
        by_model=by_model["data"],
        over_time=over_time["data"],
        scope=_scope(params),
        notes=notes,
    )
    _write(output, render(data, chosen))
    typer.echo(
        f"Wrote {output} ({chosen}: {len(data.by_user)} users, {len(data.by_model)} models, "
        f"{data.totals['requests']:,} requests)"
    )
