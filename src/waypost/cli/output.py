"""How the CLI prints: rich tables for people, the API's raw JSON (``--json``) for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import typer
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

JsonOption = typer.Option(False, "--json", help="Print the API's JSON answer instead of a table.")

Cell = Callable[[dict[str, Any]], str]


def render(renderable: RenderableType) -> None:
    """Print a rich table without the padding rich leaves at the end of each line."""
    # Piped output is not cut at 80 columns, so `grep` and friends see whole values.
    out = Console(width=None if sys.stdout.isatty() else 200, highlight=False, soft_wrap=False)
    with out.capture() as captured:
        out.print(renderable)
    typer.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def when(value: Any, none: str = "never") -> str:
    """An API timestamp in the local time zone, ISO form, to the second; ``none`` for null."""
    if not value:
        return none
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:  # the API sends UTC; be lenient about a missing offset
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().isoformat(timespec="seconds")


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


def joined(values: Iterable[Any] | None, empty: str = "-") -> str:
    items = [str(v) for v in values or ()]
    return ", ".join(items) if items else empty


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Cell]], *, empty: str) -> None:
    """One row per item; ``columns`` are (header, cell renderer)."""
    if not rows:
        typer.echo(empty)
        return
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header, _ in columns:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(cell(row)) for _, cell in columns))
    render(grid)


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    """A two-column ``key  value`` listing for one object."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(Text(key), Text(value))
    render(grid)


def key(name: str, none: str = "-") -> Cell:
    """A cell showing ``row[name]`` as text."""

    def cell(row: dict[str, Any]) -> str:
        value = row.get(name)
        return none if value is None or value == "" else str(value)

    return cell


def print_answer(answer: Any, as_json: bool, message: str) -> None:
    """The API's JSON answer with ``--json``, else the one line ``message`` for people."""
    if as_json:
        print_json(answer)
    else:
        typer.echo(message)


def print_rows(answer: Any, as_json: bool, columns: Sequence[tuple[str, Cell]], *, empty: str) -> None:
    """The API's JSON answer with ``--json``, else its ``data`` as a table."""
    if as_json:
        print_json(answer)
    else:
        table(answer["data"], columns, empty=empty)
