"""The usage pages with data in them: the administrator's report (filters kept in the URL) and the
audit log, and a person's own usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("playwright")

from playwright.async_api import expect

from tests.control.client import Control
from tests.ui.browser import Browsing
from tests.usage_rows import insert, request_row


async def _seed(api: Control) -> None:
    """Yesterday's requests of the administrator: three on one model, one on another."""
    at = datetime.now(UTC) - timedelta(days=1)
    rows = [request_row(created_at=at, model="gpt", cost_micros=250_000) for _ in range(3)]
    rows.append(request_row(created_at=at, model="claude", requested_model="claude", cost_micros=1_000_000))
    await insert(api.container.store, rows)


async def test_the_usage_report_shows_the_requests_by_model_and_keeps_filters_in_the_url(
    tab: Browsing, api: Control
) -> None:
    await _seed(api)
    await tab.log_in()
    await tab.go("Usage")
    report = tab.page.get_by_role("table", name="Usage by model")
    await expect(report.get_by_role("row").filter(has_text="gpt")).to_contain_text("3")
    await expect(report.get_by_role("row").filter(has_text="claude")).to_contain_text("$1.00")
    await expect(tab.page.get_by_text("4 requests, $1.75 in total")).to_be_visible()
    await tab.snap("usage by model")

    await tab.page.get_by_label("Model", exact=True).fill("claude")
    await tab.page.get_by_role("button", name="Apply filters").click()
    await expect(report.get_by_role("row").filter(has_text="gpt")).to_have_count(0)
    assert parse_qs(urlsplit(tab.page.url).query)["model"] == ["claude"]
    await tab.page.reload()  # a link reproduces the view
    await expect(tab.page.get_by_label("Model", exact=True)).to_have_value("claude")
    await expect(report.get_by_role("row").filter(has_text="claude")).to_be_visible()


async def test_the_audit_log_lists_the_requests(tab: Browsing, api: Control) -> None:
    await _seed(api)
    await tab.log_in()
    await tab.go("Usage")
    log = tab.page.get_by_role("table", name="Requests, newest first")
    await expect(log.get_by_role("row").filter(has_text="gpt")).to_have_count(3)
    await tab.snap("audit log")


async def test_my_usage_shows_my_spend(tab: Browsing, api: Control) -> None:
    await _seed(api)
    await tab.log_in()
    await tab.go("My usage")
    await expect(tab.page.get_by_text("$1.75").first).to_be_visible()
    await tab.snap("my usage")


async def test_the_audit_log_is_filtered_by_the_server_and_tails_new_requests(
    tab: Browsing, api: Control
) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    await insert(
        api.container.store,
        [
            request_row(created_at=at, model="quick", latency_ms=20.0),
            request_row(created_at=at, model="slow-one", latency_ms=9000.0),
        ],
    )
    asked: list[str] = []
    tab.page.on("request", lambda r: asked.append(r.url) if "/admin/audit-logs" in r.url else None)
    await tab.log_in()
    await tab.go("Audit log")
    log = tab.page.get_by_role("table", name="Requests, newest first")
    await tab.page.get_by_label("Latency at least (ms)").fill("5000")
    await tab.page.get_by_role("button", name="Filter the log").click()
    await expect(log.get_by_role("row").filter(has_text="slow-one")).to_have_count(1)
    await expect(log.get_by_role("row").filter(has_text="quick")).to_have_count(0)
    assert any("min_latency_ms=5000" in url for url in asked)

    await tab.page.get_by_label("Live tail (newest page every 5 s)").check()
    await insert(
        api.container.store, [request_row(created_at=datetime.now(UTC), model="slow-two", latency_ms=8000.0)]
    )
    await expect(log.get_by_role("row").filter(has_text="slow-two")).to_have_count(1, timeout=15_000)
    await tab.snap("audit log live tail")


async def test_the_audit_log_is_exported_as_csv_by_the_server(tab: Browsing, api: Control) -> None:
    await insert(api.container.store, [request_row(created_at=datetime.now(UTC), model="exported-model")])
    await tab.log_in()
    await tab.go("Audit log")
    await tab.page.get_by_label("Log model").fill("exported-model")
    await tab.page.get_by_role("button", name="Filter the log").click()
    async with tab.page.expect_download() as waiting:
        await tab.page.get_by_role("button", name="Export the log as CSV").click()
    saved = await (await waiting.value).path()
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("id,") or "request_id" in lines[0]
    assert len(lines) == 2 and "exported-model" in lines[1]


async def test_the_usage_report_is_exported_as_csv_by_the_server_with_its_filters(
    tab: Browsing, api: Control
) -> None:
    await _seed(api)
    await tab.log_in()
    await tab.open("admin/usage?group_by=model&model=gpt")
    await tab.signed_in()
    await expect(tab.page.get_by_text("3 requests, $0.75 in total")).to_be_visible()
    async with tab.page.expect_download() as waiting:
        await tab.page.get_by_role("button", name="Export CSV").click()
    download = await waiting.value
    assert download.suggested_filename == "waypost-usage.csv"
    lines = (await download.path()).read_text().splitlines()
    assert lines[0].startswith("model,") and len(lines) == 2
    assert lines[1].startswith("gpt,3,")
