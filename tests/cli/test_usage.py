"""``waypost usage``, ``audit-logs``, ``audit show`` and ``reports generate`` against a gateway whose
audit log holds known rows."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from tests.cli.conftest import Cli, GatewayThread, gateway_settings
from tests.dbs import fresh_database
from tests.harness import serve
from tests.usage_rows import attempt_row, insert, request_row
from waypost.settings import DatabaseSettings
from waypost.store import Store

BO = {"user_id": 20, "user_email": "bo@example.com"}
CY = {"user_id": 30, "user_email": "cy@example.com"}
FORMULA = '=HYPERLINK("<i>x</i>")'  # a model name a spreadsheet would run, with markup in it
RETRIED = request_row(
    **CY, model="claude", provider="anthropic", created_at=datetime(2026, 3, 3, 9, tzinfo=UTC),
    cost_micros=500_000, attempts=2, tags=["team-b"], request_id="req-retried",
)  # fmt: skip
ROWS = [
    request_row(**BO, model="gpt", created_at=datetime(2026, 3, 1, 9, tzinfo=UTC), cost_micros=1_000_000,
                tags=["team-a"]),
    request_row(**BO, model=FORMULA, created_at=datetime(2026, 3, 2, 9, tzinfo=UTC), cost_micros=250_000),
    RETRIED,
    request_row(**CY, model="claude", provider="anthropic", created_at=datetime(2026, 3, 3, 10, tzinfo=UTC),
                cost_micros=0, status=429, error_class="RateLimited"),
]  # fmt: skip
ATTEMPTS = [
    attempt_row(RETRIED, 1, status=529, error_class="Overloaded", cost_micros=0),
    attempt_row(RETRIED, 2),
]


class SeededGateway(GatewayThread):
    """A gateway whose audit log holds ``ROWS`` and ``ATTEMPTS``, written through a store of its own."""

    async def _main(self) -> None:
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        try:
            async with fresh_database() as database, serve(gateway_settings(database)) as url:
                store = Store.from_settings(DatabaseSettings.model_validate(database))
                try:
                    await insert(store, ROWS, ATTEMPTS)
                finally:
                    await store.close()
                self.url = url
                self._up.set()
                await self._shutdown.wait()
        except BaseException as exc:
            self.error = exc
        finally:
            self._up.set()


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    thread = SeededGateway()
    thread.start()
    try:
        yield thread.wait_started()
    finally:
        thread.stop()


def test_usage_summary_prints_a_row_per_group_and_the_total(admin: Cli) -> None:
    out = admin.ok("usage", "summary", "--group-by", "user")
    bo = next(line for line in out.splitlines() if "bo@example.com" in line)
    assert "$1.2500" in bo
    assert "Total: 4 requests (1 failed)" in out and "$1.7500" in out


def test_usage_summary_filters_and_groups_by_day(admin: Cli) -> None:
    answer = admin.json("usage", "summary", "-b", "day", "--from", "2026-03-02", "--provider", "anthropic")
    assert [(r["day"], r["requests"], r["cost_micros"]) for r in answer["data"]] == [
        ("2026-03-03", 2, 500_000)
    ]


def test_usage_costs_rank_models_by_spend(admin: Cli) -> None:
    out = admin.ok("usage", "costs")
    lines = [line for line in out.splitlines() if "%" in line]
    assert [line.split()[0] for line in lines] == ["gpt", "claude", FORMULA]
    assert "57.1%" in lines[0]


def test_a_bad_parameter_is_named_in_the_error(admin: Cli) -> None:
    err = admin.fails("usage", "summary", "--group-by", "colour")
    assert "group_by: 'colour' is not a grouping key" in err


def test_audit_logs_list_newest_first_and_page_on(admin: Cli) -> None:
    first = admin.run("audit-logs", "--limit", "2")
    assert first.exit_code == 0, first.output
    assert "req-retried" in first.stdout and "RateLimited" in first.stdout
    assert "--cursor" in first.stderr
    everything = admin.json("audit-logs", "--limit", "1", "--all")
    assert len(everything["data"]) == 4 and everything["next_cursor"] is None
    errors = admin.json("audit-logs", "--status", "error")
    assert [r["status"] for r in errors["data"]] == [429]


def test_audit_show_prints_the_request_and_its_attempts(admin: Cli) -> None:
    out = admin.ok("audit", "show", "req-retried")
    assert "cy@example.com" in out and "claude" in out
    assert "529 Overloaded" in out
    detail = admin.json("audit", "show", "req-retried")
    assert [a["attempt"] for a in detail["attempts"]] == [1, 2]
    assert "req-nope" in admin.fails("audit", "show", "req-nope")


def test_usage_needs_a_login(cli: Cli) -> None:
    assert "not logged in" in cli.fails("usage", "summary")


def test_a_pdf_report_has_the_totals_the_tables_and_the_chart(admin: Cli, tmp_path: Path) -> None:
    path = tmp_path / "usage.pdf"
    out = admin.ok("reports", "generate", "--format", "pdf", "-o", str(path), "--from", "2026-03-01")
    assert "usage.pdf" in out
    reader = PdfReader(path)
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Waypost usage report" in text
    assert "$1.7500" in text  # the total spend
    assert "bo@example.com" in text and "cy@example.com" in text  # the table per user
    assert "gpt" in text and "claude" in text  # the table per model
    assert "Spend per day by model" in text and "Cumulative spend" in text  # the charts
    assert "From" in text and "2026-03-01" in text
    assert reader.metadata is not None and reader.metadata.title == "Waypost usage report"


def test_an_html_report_is_self_contained_and_escapes_names(admin: Cli, tmp_path: Path) -> None:
    path = tmp_path / "usage.html"
    admin.ok("reports", "generate", "-o", str(path), "--period", "week")
    page = path.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "bo@example.com" in page and "$1.7500" in page
    assert "<script" not in page and "<link" not in page and " src=" not in page  # nothing fetched
    assert "<i>" not in page and "&lt;i&gt;x&lt;/i&gt;" in page


def test_a_csv_report_has_totals_users_models_and_days(admin: Cli, tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    admin.ok("reports", "generate", "--format", "csv", "-o", str(path), "--tag", "team-a", "--tag", "team-b")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    sections = {(r["section"], r["name"]): r for r in rows}
    assert sections[("total", "all")]["cost_usd"] == "1.500000"
    assert sections[("user", "bo@example.com")]["cost_micros"] == "1000000"
    assert {name for section, name in sections if section == "day"} == {"2026-03-01", "2026-03-03"}


def test_a_csv_report_defuses_names_a_spreadsheet_would_run(admin: Cli, tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    admin.ok("reports", "generate", "-o", str(path))
    names = [r["name"] for r in csv.DictReader(io.StringIO(path.read_text())) if r["section"] == "model"]
    assert "'" + FORMULA in names


def test_an_unknown_format_is_refused_before_anything_is_written(admin: Cli, tmp_path: Path) -> None:
    result = admin.run("reports", "generate", "-o", str(tmp_path / "usage.docx"))
    assert result.exit_code == 2 and "--format" in result.stderr
    assert not (tmp_path / "usage.docx").exists()


def run_python(code: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def test_matplotlib_is_not_loaded_by_the_server_or_the_cli() -> None:
    loaded = run_python(
        "import json, sys; import waypost.app, waypost.cli.main; "
        "print(json.dumps({'matplotlib': 'matplotlib' in sys.modules}))"
    )
    assert loaded == {"matplotlib": False}
