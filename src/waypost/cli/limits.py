"""``waypost limits``: rate limits on tokens, users, groups, models or each user (admin)."""

from __future__ import annotations

from typing import Any

import typer

from waypost.cli.client import UrlOption, fail, fetch, ref, send
from waypost.cli.output import JsonOption, fields, key, print_answer, print_json, print_rows, when, yes_no

app = typer.Typer(
    help="Manage rate limits (admin): requests, tokens and concurrency per token, user, group, model "
    "or each user.",
    no_args_is_help=True,
)

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
FIELDS = ("requests", "tokens", "input_tokens", "output_tokens")
LimitArg = typer.Argument(..., help="The limit's name or id.")
ScopeHelp = "token, user, group, model or default (each user without a limit of its own)."
TargetOption = typer.Option(
    None, "--target", help="Token id, user e-mail or id, group name or id, model name (none for default)."
)
RpmOption = typer.Option(None, "--rpm", min=1, help="Requests per minute.")
TpmOption = typer.Option(None, "--tpm", min=1, help="Tokens (input and output) per minute.")
RpdOption = typer.Option(None, "--rpd", min=1, help="Requests per day.")
TpdOption = typer.Option(None, "--tpd", min=1, help="Tokens per day.")
WindowOption = typer.Option(
    None,
    "--window",
    help="A window as PER:FIELD=N,... e.g. 'hour:requests=1000,output_tokens=50000' (PER: second, "
    "minute, hour, day or seconds; FIELD: requests, tokens, input_tokens, output_tokens). Replaces "
    "that period's window; 'hour:' removes it. Repeatable.",
)
DescriptionOption = typer.Option(None, "--description", "-d", help="What the limit is for.")


def _seconds(per: Any) -> int:
    return PERIODS[per] if isinstance(per, str) else int(per)


def _parse_window(spec: str) -> tuple[Any, dict[str, int] | None]:
    """``'hour:requests=10,tokens=5'`` -> (``'hour'``, the window); ``'hour:'`` -> (``'hour'``, None)."""
    per_text, _, rest = spec.partition(":")
    per: Any = per_text.strip()
    if per.isdigit():
        per = int(per)
    elif per not in PERIODS:
        fail(f"--window {spec!r}: the period must be second, minute, hour, day or a number of seconds", 2)
    if not rest.strip():
        return per, None
    window: dict[str, int] = {}
    for part in rest.split(","):
        name, _, value = part.partition("=")
        name = name.strip().replace("-", "_")
        if name not in FIELDS or not value.strip().isdigit():
            fail(f"--window {spec!r}: expected FIELD=N with FIELD one of {', '.join(FIELDS)}", 2)
        window[name] = int(value)
    return per, window


def _windows(
    current: list[dict[str, Any]],
    specs: list[str] | None,
    rpm: int | None,
    tpm: int | None,
    rpd: int | None,
    tpd: int | None,
) -> list[dict[str, Any]] | None:
    """The windows after the options (None: no window option given, nothing to change)."""
    if not specs and rpm is None and tpm is None and rpd is None and tpd is None:
        return None
    by_period: dict[int, dict[str, Any]] = {
        _seconds(w["per"]): {k: v for k, v in w.items() if v is not None} for w in current
    }
    for spec in specs or ():
        per, window = _parse_window(spec)
        if window is None:
            by_period.pop(_seconds(per), None)
        else:
            by_period[_seconds(per)] = {"per": per, **window}
    for per, name, value in (
        ("minute", "requests", rpm),
        ("minute", "tokens", tpm),
        ("day", "requests", rpd),
        ("day", "tokens", tpd),
    ):
        if value is not None:
            by_period.setdefault(PERIODS[per], {"per": per})[name] = value
    return [by_period[s] for s in sorted(by_period)]


def _per(window: dict[str, Any]) -> str:
    per = window.get("per")
    return per if isinstance(per, str) else f"{per}s"


def _allowance(limit: dict[str, Any]) -> str:
    parts = []
    for window in limit.get("windows") or []:
        counts = [f"{window[f]:,} {f.replace('_', ' ')}" for f in FIELDS if window.get(f) is not None]
        parts.append(f"{' and '.join(counts)} per {_per(window)}")
    if limit.get("concurrency") is not None:
        parts.append(f"{limit['concurrency']:,} at once")
    return "; ".join(parts) or "-"


@app.command("list")
def list_limits(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List rate limits (the config file's too, read-only)."""
    print_rows(
        fetch(url, "/admin/limits"),
        as_json,
        [
            ("id", key("id")),
            ("name", key("name")),
            ("applies to", key("target_name")),
            ("allows", _allowance),
            ("enabled", lambda limit: yes_no(limit.get("enabled"))),
            ("source", key("source")),
        ],
        empty="No rate limits.",
    )


@app.command("show")
def show_limit(limit: str = LimitArg, url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show a rate limit and what each of its windows has counted."""
    answer = fetch(url, f"/admin/limits/{ref(limit)}")
    if as_json:
        print_json(answer)
        return
    rows = [
        ("id", str(answer.get("id") if answer.get("id") is not None else "- (config file)")),
        ("name", str(answer.get("name"))),
        ("applies to", str(answer.get("target_name"))),
        ("allows", _allowance(answer)),
        ("enabled", yes_no(answer.get("enabled"))),
        ("source", str(answer.get("source"))),
        ("description", answer.get("description") or "-"),
    ]
    usage = answer.get("usage")
    if usage is None:
        rows.append(("counted", "per user" if answer.get("scope") == "default" else "unknown"))
    else:
        for window in usage.get("windows") or []:
            counts = [f"{window[f]:,} {f.replace('_', ' ')}" for f in FIELDS if window.get(f)]
            resets = when(window.get("resets_at"), "-")
            rows.append((f"last {_per(window)}", f"{', '.join(counts) or 'nothing'} (whole again {resets})"))
        if usage.get("in_flight") is not None:
            rows.append(("in flight", str(usage["in_flight"])))
    fields(rows)


@app.command("create")
def create_limit(
    name: str = typer.Argument(..., help="A unique name (letters, digits, _ . : @ + -)."),
    scope: str = typer.Option(..., "--scope", help=ScopeHelp),
    target: str | None = TargetOption,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    rpd: int | None = RpdOption,
    tpd: int | None = TpdOption,
    window: list[str] | None = WindowOption,
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Requests in flight at once."),
    enabled: bool = typer.Option(
        True, "--enabled/--disabled", help="Enforce it (the default), or keep it off."
    ),
    description: str | None = DescriptionOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a rate limit, e.g. ``waypost limits create team-a --scope group --target team-a
    --rpm 600 --tpm 200000 --concurrency 20``."""
    body: dict[str, Any] = {"name": name, "scope": scope, "enabled": enabled}
    if target is not None:
        body["target"] = target
    windows = _windows([], window, rpm, tpm, rpd, tpd)
    if windows is not None:
        body["windows"] = windows
    if concurrency is not None:
        body["concurrency"] = concurrency
    if description is not None:
        body["description"] = description
    answer = send(url, "POST", "/admin/limits", body)
    print_answer(answer, as_json, f"Created rate limit {name} (id {answer.get('id')}): {_allowance(answer)}.")


@app.command("update")
def update_limit(
    limit: str = LimitArg,
    name: str | None = typer.Option(None, "--name", help="A new name."),
    scope: str | None = typer.Option(None, "--scope", help=ScopeHelp),
    target: str | None = TargetOption,
    rpm: int | None = RpmOption,
    tpm: int | None = TpmOption,
    rpd: int | None = RpdOption,
    tpd: int | None = TpdOption,
    window: list[str] | None = WindowOption,
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=0, help="Requests in flight at once; 0 removes the bound."
    ),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled", help="Enforce it, or keep it off."),
    description: str | None = DescriptionOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Change a rate limit. Window options change the windows they name and keep the others;
    what was counted is kept unless the scope or target changes."""
    body: dict[str, Any] = {}
    for field, value in (("name", name), ("scope", scope), ("target", target), ("enabled", enabled)):
        if value is not None:
            body[field] = value
    if description is not None:
        body["description"] = description
    if concurrency is not None:
        body["concurrency"] = concurrency or None
    if window or any(v is not None for v in (rpm, tpm, rpd, tpd)):
        current = fetch(url, f"/admin/limits/{ref(limit)}")
        body["windows"] = _windows(current.get("windows") or [], window, rpm, tpm, rpd, tpd)
    if not body:
        fail("nothing to change: give at least one option (see --help)", 2)
    answer = send(url, "PATCH", f"/admin/limits/{ref(limit)}", body)
    print_answer(answer, as_json, f"Updated rate limit {answer.get('name')}: {_allowance(answer)}.")


@app.command("delete")
def delete_limit(limit: str = LimitArg, url: str = UrlOption) -> None:
    """Delete a rate limit."""
    send(url, "DELETE", f"/admin/limits/{ref(limit)}")
    typer.echo(f"Deleted rate limit {limit}.")
