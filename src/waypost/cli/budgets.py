"""``waypost budgets``: spend limits on users, groups, tokens, models, tags or everyone (admin)."""

from __future__ import annotations

from typing import Any

import typer

from waypost.cli.client import UrlOption, fail, fetch, ref, send
from waypost.cli.output import JsonOption, fields, key, print_answer, print_json, print_rows, when, yes_no

app = typer.Typer(
    help="Manage budgets (admin): spend limits per user, group, token, model, tag or everyone.",
    no_args_is_help=True,
)

BudgetArg = typer.Argument(..., help="The budget's name or id.")
ScopeOption = typer.Option(None, "--scope", help="user, group, token, model, tag or global.")
TargetOption = typer.Option(
    None,
    "--target",
    help="User e-mail or id, group name or id, token id, model name or tag (none for global).",
)
LimitUsdOption = typer.Option(None, "--limit-usd", help="Spend limit in USD per period, e.g. 50 or 12.5.")
LimitTokensOption = typer.Option(
    None, "--limit-tokens", min=0, help="Token limit (input and output) per period."
)
PeriodOption = typer.Option(None, "--period", help="daily, weekly, monthly, quarterly or total.")
RollingOption = typer.Option(
    None, "--rolling/--calendar", help="A rolling window, or calendar periods (the default)."
)
TimezoneOption = typer.Option(None, "--timezone", help="Where calendar periods start, e.g. Europe/Paris.")
FallbackOption = typer.Option(
    None, "--fallback-model", help="Serve requests over the budget with this model."
)
StatusOption = typer.Option(None, "--status", help="Refusals answer 429 or 402 (default: budgets.status).")
CutOffOption = typer.Option(
    None, "--cut-off-streams/--no-cut-off-streams", help="End a stream that reaches the limit."
)
ThresholdsOption = typer.Option(
    None, "--alert-at", help="Alert at these percentages, comma-separated (e.g. 50,80,100)."
)
WebhookOption = typer.Option(None, "--alert-webhook", help="POST each alert to this URL as JSON.")
DescriptionOption = typer.Option(None, "--description", "-d", help="What the budget is for.")


def _money(value: Any) -> str:
    return "-" if value is None else f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:g}"


def _limit(budget: dict[str, Any]) -> str:
    parts = []
    if budget.get("limit_usd") is not None:
        parts.append(_money(budget["limit_usd"]))
    if budget.get("limit_tokens") is not None:
        parts.append(f"{budget['limit_tokens']:,} tokens")
    return " and ".join(parts) or "-"


def _spent(budget: dict[str, Any]) -> str:
    usage = budget.get("usage")
    if not usage:
        return "unknown"
    parts = []
    if budget.get("limit_usd") is not None:
        parts.append(_money(usage.get("spent_usd")))
    if budget.get("limit_tokens") is not None:
        parts.append(f"{usage.get('spent_tokens', 0):,} tokens")
    return " and ".join(parts)


def _period(budget: dict[str, Any]) -> str:
    period = str(budget.get("period"))
    return f"rolling {period}" if budget.get("rolling") else period


def _resets(budget: dict[str, Any]) -> str:
    usage = budget.get("usage") or {}
    return when(usage.get("resets_at"), "never") if budget.get("period") != "total" else "never"


def _thresholds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--alert-at: {text!r} is not a comma-separated list of percentages", 2)


def _body(**options: Any) -> dict[str, Any]:
    """The options given, as API fields (an empty string clears an optional text field)."""
    body: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in ("fallback_model", "alert_webhook") and value == "":
            value = None
        body[name] = value
    return body


@app.command("list")
def list_budgets(url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """List budgets with what each has spent in its current period."""
    print_rows(
        fetch(url, "/admin/budgets"),
        as_json,
        [
            ("id", key("id")),
            ("name", key("name")),
            ("applies to", key("target_name")),
            ("limit", _limit),
            ("period", _period),
            ("spent", _spent),
            ("resets", _resets),
        ],
        empty="No budgets.",
    )


@app.command("show")
def show_budget(budget: str = BudgetArg, url: str = UrlOption, as_json: bool = JsonOption) -> None:
    """Show a budget: its limits, what it has spent and held, when it resets."""
    answer = fetch(url, f"/admin/budgets/{ref(budget)}")
    if as_json:
        print_json(answer)
        return
    usage = answer.get("usage") or {}
    rows = [
        ("id", str(answer.get("id"))),
        ("name", str(answer.get("name"))),
        ("applies to", str(answer.get("target_name"))),
        ("limit", _limit(answer)),
        ("period", f"{_period(answer)} ({answer.get('timezone')})"),
        ("spent", _spent(answer)),
    ]
    if usage:
        if answer.get("limit_usd") is not None:
            rows.append(("held", f"{_money(usage.get('reserved_usd'))} by requests in flight"))
            rows.append(("remaining", _money(usage.get("remaining_usd"))))
        if answer.get("limit_tokens") is not None:
            rows.append(("remaining tokens", f"{usage.get('remaining_tokens', 0):,}"))
        rows.append(("window start", when(usage.get("window_start"), "creation")))
    rows += [
        ("resets", _resets(answer)),
        (
            "over budget",
            f"{answer.get('status')}"
            + (f", or {answer['fallback_model']}" if answer.get("fallback_model") else ""),
        ),
        ("cut off streams", yes_no(answer.get("cut_off_streams"))),
        ("alerts at", ", ".join(f"{t}%" for t in answer.get("alert_thresholds") or []) or "-"),
        ("alert webhook", answer.get("alert_webhook") or "-"),
        ("description", answer.get("description") or "-"),
        ("counted from", when(answer.get("counted_from"), "its period's start")),
    ]
    fields(rows)


@app.command("create")
def create_budget(
    name: str = typer.Argument(..., help="A unique name (letters, digits, _ . : @ + -)."),
    scope: str = typer.Option(..., "--scope", help="user, group, token, model, tag or global."),
    target: str | None = TargetOption,
    limit_usd: str | None = LimitUsdOption,
    limit_tokens: int | None = LimitTokensOption,
    period: str = typer.Option("monthly", "--period", help="daily, weekly, monthly, quarterly or total."),
    rolling: bool | None = RollingOption,
    timezone: str | None = TimezoneOption,
    fallback_model: str | None = FallbackOption,
    status: int | None = StatusOption,
    cut_off_streams: bool | None = CutOffOption,
    alert_at: str | None = ThresholdsOption,
    alert_webhook: str | None = WebhookOption,
    description: str | None = DescriptionOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a budget, e.g. ``waypost budgets create alice-monthly --scope user --target
    alice@example.com --limit-usd 50``."""
    body = {"name": name, "scope": scope, "period": period}
    body |= _body(
        target=target,
        limit_usd=limit_usd,
        limit_tokens=limit_tokens,
        rolling=rolling,
        timezone=timezone,
        fallback_model=fallback_model,
        status=status,
        cut_off_streams=cut_off_streams,
        alert_thresholds=_thresholds(alert_at),
        alert_webhook=alert_webhook,
        description=description,
    )
    answer = send(url, "POST", "/admin/budgets", body)
    print_answer(
        answer, as_json, f"Created budget {name} (id {answer.get('id')}): {_limit(answer)} {_period(answer)}."
    )


@app.command("update")
def update_budget(
    budget: str = BudgetArg,
    name: str | None = typer.Option(None, "--name", help="A new name."),
    scope: str | None = ScopeOption,
    target: str | None = TargetOption,
    limit_usd: str | None = LimitUsdOption,
    limit_tokens: int | None = LimitTokensOption,
    period: str | None = PeriodOption,
    rolling: bool | None = RollingOption,
    timezone: str | None = TimezoneOption,
    fallback_model: str | None = typer.Option(
        None, "--fallback-model", help="A fallback model; '' for none."
    ),
    status: int | None = StatusOption,
    cut_off_streams: bool | None = CutOffOption,
    alert_at: str | None = ThresholdsOption,
    alert_webhook: str | None = typer.Option(None, "--alert-webhook", help="A webhook URL; '' for none."),
    description: str | None = DescriptionOption,
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Change a budget. A new scope, target, period or time zone starts its count again from
    the audit log."""
    body = _body(
        name=name,
        scope=scope,
        target=target,
        limit_usd=limit_usd,
        limit_tokens=limit_tokens,
        period=period,
        rolling=rolling,
        timezone=timezone,
        fallback_model=fallback_model,
        status=status,
        cut_off_streams=cut_off_streams,
        alert_thresholds=_thresholds(alert_at),
        alert_webhook=alert_webhook,
        description=description,
    )
    if not body:
        fail("nothing to change: give at least one option (see --help)", 2)
    answer = send(url, "PATCH", f"/admin/budgets/{ref(budget)}", body)
    print_answer(answer, as_json, f"Updated budget {answer.get('name')}.")


@app.command("delete")
def delete_budget(budget: str = BudgetArg, url: str = UrlOption) -> None:
    """Delete a budget."""
    send(url, "DELETE", f"/admin/budgets/{ref(budget)}")
    typer.echo(f"Deleted budget {budget}.")


@app.command("reset")
def reset_budget(
    budget: str = BudgetArg,
    keep_usage: bool = typer.Option(
        False,
        "--keep-usage",
        help="Recount the period's spend from the audit log instead of starting from zero.",
    ),
    url: str = UrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Start a budget's count again: from zero now, or (--keep-usage) from the audit log."""
    answer = send(url, "POST", f"/admin/budgets/{ref(budget)}/reset", {"keep_usage": keep_usage})
    how = "recounted from the audit log" if keep_usage else "reset to zero"
    print_answer(answer, as_json, f"Budget {answer.get('name')} {how}: {_spent(answer)} spent.")
