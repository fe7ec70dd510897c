"""Usage reports as files: CSV, a self-contained HTML page, or a PDF, each with the totals, a table
per user and per model, and charts of spend over time.

Pure rendering: the caller fetches the figures (``waypost reports generate`` asks the gateway's
usage API) and gets bytes back. matplotlib is imported only here, inside the functions that draw,
so neither the server nor the rest of the CLI loads it.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = ("csv", "html", "pdf")
PERIODS = ("day", "week", "month")
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
CSV_FIELDS = ("requests", "errors", *TOKEN_FIELDS, "cost_micros")
MAX_LABELLED_PERIODS = 14
CHART_SERIES = 6  # the models with the largest spend get a colour each; the rest are "other"
PDF_LINES_PER_PAGE = 52
NAME_WIDTH = 34
A4 = (8.27, 11.69)  # inches
# Bar widths on a date axis, in days.
BAR_WIDTH = {"day": 0.8, "week": 5.0, "month": 24.0}


@dataclass(frozen=True, slots=True)
class ReportData:
    """What a report shows. Rows are those of the usage API: grouping keys and metrics."""

    generated_at: datetime
    period: str  # day, week or month: the buckets of the charts
    totals: dict[str, Any]
    by_user: list[dict[str, Any]]  # user_id, user_email, metrics
    by_model: list[dict[str, Any]]  # model, metrics
    over_time: list[dict[str, Any]]  # <period> (first day, YYYY-MM-DD), model, cost_micros
    scope: list[tuple[str, str]] = field(default_factory=list)  # what the figures cover, for people
    notes: list[str] = field(default_factory=list)  # e.g. that a table was cut short
    title: str = "Waypost usage report"


def render(data: ReportData, fmt: str) -> bytes:
    if fmt == "csv":
        return render_csv(data)
    if fmt == "html":
        return render_html(data)
    if fmt == "pdf":
        return render_pdf(data)
    raise ValueError(f"unknown report format {fmt!r}; valid formats: {', '.join(FORMATS)}")


# -- figures as text -----------------------------------------------------------------------------


def usd(micros: int) -> str:
    """``$1,234.5678``: micro-dollars shown to the hundredth of a cent."""
    return f"${Decimal(micros).scaleb(-6):,.4f}"


def exact_usd(micros: int) -> str:
    """Micro-dollars as an exact decimal (for CSV): ``1.750000``."""
    return f"{Decimal(micros).scaleb(-6):.6f}"


def user_name(row: dict[str, Any]) -> str:
    if row.get("user_email"):
        return str(row["user_email"])
    return f"user #{row['user_id']}" if row.get("user_id") is not None else "(no user)"


def model_name(row: dict[str, Any]) -> str:
    return str(row["model"]) if row.get("model") else "(no model)"


def _cut(text: str, width: int = NAME_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


TABLE_HEADERS = ("requests", "errors", "input", "output", "cache read", "cache write", "cost")


def _cells(row: dict[str, Any]) -> list[str]:
    return [
        f"{row['requests']:,}",
        f"{row['errors']:,}",
        f"{row['input_tokens']:,}",
        f"{row['output_tokens']:,}",
        f"{row['cache_read_tokens']:,}",
        f"{row['cache_write_tokens']:,}",
        usd(row["cost_micros"]),
    ]


def _total_lines(data: ReportData) -> list[tuple[str, str]]:
    t = data.totals
    return [
        ("Requests", f"{t['requests']:,} ({t['errors']:,} failed)"),
        ("Input tokens", f"{t['input_tokens']:,} uncached"),
        ("Cache tokens", f"{t['cache_read_tokens']:,} read, {t['cache_write_tokens']:,} written"),
        ("Output tokens", f"{t['output_tokens']:,} ({t['reasoning_tokens']:,} reasoning)"),
        ("Spend", usd(t["cost_micros"])),
        *([("Unpriced requests", f"{t['unpriced']:,}")] if t.get("unpriced") else []),
        *([("Estimated usage", f"{t['estimated']:,} requests")] if t.get("estimated") else []),
    ]


# -- CSV -------------------------------------------------------------------------------------------


def _safe_cell(text: str) -> str:
    """A name a spreadsheet would run as a formula (``=...``, ``+...``, ``@...``) gets a quote first."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(data: ReportData) -> bytes:
    """One table: ``section`` (total, user, model, or the period), ``name``, then the figures."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "name", *CSV_FIELDS, "cost_usd"])

    def line(section: str, name: str, row: dict[str, Any]) -> None:
        writer.writerow(
            [section, _safe_cell(name), *(row.get(f, 0) for f in CSV_FIELDS), exact_usd(row["cost_micros"])]
        )

    line("total", "all", data.totals)
    for row in data.by_user:
        line("user", user_name(row), row)
    for row in data.by_model:
        line("model", model_name(row), row)
    for bucket, micros in _spend_per_period(data):
        writer.writerow(
            [data.period, bucket.isoformat(), *([""] * (len(CSV_FIELDS) - 1)), micros, exact_usd(micros)]
        )
    return out.getvalue().encode()


# -- charts ----------------------------------------------------------------------------------------


def _spend_per_period(data: ReportData) -> list[tuple[date, int]]:
    totals: dict[date, int] = {}
    for row in data.over_time:
        bucket = date.fromisoformat(str(row[data.period]))
        totals[bucket] = totals.get(bucket, 0) + int(row["cost_micros"])
    return sorted(totals.items())


def _series(data: ReportData) -> tuple[list[date], list[tuple[str, list[float]]]]:
    """Periods, and per model (the largest spenders, then "other") its spend in USD per period."""
    periods = [bucket for bucket, _ in _spend_per_period(data)]
    index = {bucket: i for i, bucket in enumerate(periods)}
    per_model: dict[str, list[int]] = {}
    for row in data.over_time:
        values = per_model.setdefault(model_name(row), [0] * len(periods))
        values[index[date.fromisoformat(str(row[data.period]))]] += int(row["cost_micros"])
    ranked = sorted(per_model.items(), key=lambda item: (-sum(item[1]), item[0]))
    shown = ranked[: CHART_SERIES - 1] if len(ranked) > CHART_SERIES else ranked
    series = [(name, [v / 1e6 for v in values]) for name, values in shown]
    rest = ranked[len(shown) :]
    if rest:
        series.append(
            (f"other ({len(rest)} models)", [sum(v[i] for _, v in rest) / 1e6 for i in range(len(periods))])
        )
    return periods, series


def _rc() -> Any:  # typed loosely: matplotlib types the keys as a Literal of every setting
    return {
        "text.parse_math": False,  # a "$" in a model name or tag is text, not TeX
        "svg.fonttype": "none",  # SVG text stays text: smaller, searchable
        "svg.hashsalt": "waypost-report",  # stable ids in the SVG
        "pdf.fonttype": 42,  # TrueType in the PDF, so its text can be selected and extracted
        "font.size": 9,
    }


def _draw(bars: Axes, cumulative: Axes, data: ReportData) -> None:
    from matplotlib import dates as mdates

    periods, series = _series(data)
    bars.set_title(f"Spend per {data.period} by model (USD)", loc="left")
    cumulative.set_title("Cumulative spend (USD)", loc="left")
    if not periods:
        for axes in (bars, cumulative):
            axes.text(0.5, 0.5, "No usage in this range", ha="center", va="center", transform=axes.transAxes)
            axes.set_xticks([])
            axes.set_yticks([])
        return
    width = BAR_WIDTH[data.period]
    bottom = [0.0] * len(periods)
    for name, values in series:
        bars.bar(periods, values, width=width, bottom=bottom, label=_cut(name, 40))  # type: ignore[arg-type]
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    bars.legend(loc="upper left", fontsize=7, frameon=False)
    running, total = [], 0.0
    for value in bottom:
        total += value
        running.append(total)
    cumulative.plot(periods, running, marker="o", markersize=3)  # type: ignore[arg-type]
    cumulative.fill_between(periods, running, alpha=0.15)  # type: ignore[arg-type]
    for axes in (bars, cumulative):
        if len(periods) <= MAX_LABELLED_PERIODS:  # a label under each bar
            axes.set_xticks(periods)  # type: ignore[arg-type]
            axes.xaxis.set_major_formatter(
                mdates.DateFormatter("%b %Y" if data.period == "month" else "%b %d")
            )
        else:
            locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axes.set_ylim(bottom=0)
        axes.grid(axis="y", alpha=0.3)


def chart_svg(data: ReportData) -> str:
    """The two charts as an inline ``<svg>`` element."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_rc()):
        figure = Figure(figsize=(9, 6), layout="constrained")
        bars, cumulative = figure.subplots(2, 1)
        _draw(bars, cumulative, data)
        buffer = io.StringIO()
        # No metadata block: it names schemas by URL, and says nothing a reader needs.
        figure.savefig(buffer, format="svg", metadata=dict.fromkeys(("Creator", "Date", "Format", "Type")))
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


# -- HTML ------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { padding: 0.25rem 0.75rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.pairs th { text-align: left; font-weight: 600; }
svg { max-width: 100%; height: auto; } .note { color: #a35; }
"""


def _html_table(rows: Sequence[dict[str, Any]], first: str, name: Any) -> str:
    if not rows:
        return "<p>No usage.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (first, *TABLE_HEADERS))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in (name(row), *_cells(row))) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pairs(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)
    return f'<table class="pairs">{rows}</table>'


def render_html(data: ReportData) -> bytes:
    """One page with no external resources: styles inline, the charts as inline SVG."""
    title = html.escape(data.title)
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="meta">Generated {html.escape(data.generated_at.isoformat(timespec="seconds"))}</p>',
    ]
    if data.scope:
        parts += ["<h2>Scope</h2>", _pairs(data.scope)]
    parts += ["<h2>Totals</h2>", _pairs(_total_lines(data))]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in data.notes]
    parts += ["<h2>Spend over time</h2>", f"<figure>{chart_svg(data)}</figure>"]
    parts += ["<h2>Per user</h2>", _html_table(data.by_user, "user", user_name)]
    parts += ["<h2>Per model</h2>", _html_table(data.by_model, "model", model_name)]
    parts.append("</body></html>\n")
    return "\n".join(parts).encode()


# -- PDF -------------------------------------------------------------------------------------------


def _text_table(rows: Sequence[dict[str, Any]], first: str, name: Any) -> list[str]:
    """A table as fixed-width lines (the PDF sets them in a monospaced font)."""
    cells = [[_cut(name(row)), *_cells(row)] for row in rows]
    headers = [first, *TABLE_HEADERS]
    widths = [max(len(r[i]) for r in [headers, *cells]) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(values)
        ).rstrip()

    return [line(headers), "-" * len(line(headers)), *(line(c) for c in cells)] if cells else ["No usage."]


def render_pdf(data: ReportData) -> bytes:
    """A4 pages: the totals and the charts first, then the per-user and per-model tables."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    buffer = io.BytesIO()
    with (
        matplotlib.rc_context(_rc()),
        PdfPages(buffer, metadata={"Title": data.title, "Creator": "Waypost"}) as pdf,
    ):
        first = Figure(figsize=A4)
        first.text(0.08, 0.95, data.title, fontsize=18, weight="bold")
        first.text(0.08, 0.925, f"Generated {data.generated_at.isoformat(timespec='seconds')}", color="#555")
        y = 0.89
        for label, value in [*data.scope, ("", ""), *_total_lines(data)]:
            if label:
                first.text(0.08, y, label, weight="bold")
                first.text(0.32, y, value)
            y -= 0.018
        for note in data.notes:
            first.text(0.08, y, note, color="#a35")
            y -= 0.018
        bars = first.add_axes((0.1, 0.36, 0.85, max(0.12, min(0.22, y - 0.42))))
        cumulative = first.add_axes((0.1, 0.07, 0.85, 0.22))
        _draw(bars, cumulative, data)
        pdf.savefig(first)
        for heading, lines in (
            ("Per user", _text_table(data.by_user, "user", user_name)),
            ("Per model", _text_table(data.by_model, "model", model_name)),
        ):
            for start in range(0, len(lines), PDF_LINES_PER_PAGE):
                page = Figure(figsize=A4)
                suffix = " (continued)" if start else ""
                page.text(0.06, 0.95, heading + suffix, fontsize=14, weight="bold")
                chunk = lines[start : start + PDF_LINES_PER_PAGE]
                for i, text in enumerate(chunk):
                    page.text(0.06, 0.92 - i * 0.0165, text, family="DejaVu Sans Mono", fontsize=7.5)
                pdf.savefig(page)
    return buffer.getvalue()
