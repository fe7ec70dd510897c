"""The administrator's usage views over time in the browser: spend per day by model, the top users
and models, the response cache's hit rate and savings, errors and latency; their filters kept in
the URL, and the page at a phone's width."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

pytest.importorskip("playwright")

from playwright.async_api import expect

from tests.control.client import Control
from tests.ui.browser import Browsing
from tests.usage_rows import insert, request_row

TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
FIRST, SECOND = TODAY - timedelta(days=2), TODAY - timedelta(days=1)
RANGE = {
    "from": (TODAY - timedelta(days=6)).date().isoformat(),
    "to": (TODAY + timedelta(days=1)).date().isoformat(),
}


async def _seed(api: Control) -> None:
    """Six requests over two days: the administrator on gpt, Bo on claude; a cache hit, a 429 and a 502."""
    bo = {"user_id": 20, "user_email": "bo@example.com", "model": "claude", "requested_model": "claude"}
    rows = [
        request_row(created_at=FIRST, cost_micros=250_000, latency_ms=100.0, cache_status="miss"),
        request_row(created_at=FIRST, cost_micros=250_000, latency_ms=200.0, cache_status="miss"),
        request_row(created_at=SECOND, cost_micros=1_000_000, latency_ms=300.0, cache_status="miss", **bo),
        request_row(
            created_at=SECOND, cost_micros=0, saved_micros=250_000, latency_ms=5.0, cache_status="hit"
        ),
        request_row(created_at=SECOND, cost_micros=0, latency_ms=50.0, status=429, **bo),
        request_row(created_at=SECOND, cost_micros=0, latency_ms=1000.0, status=502),
    ]
    await insert(api.container.store, rows)


async def _open_usage(tab: Browsing, api: Control, **query: str) -> None:
    await _seed(api)
    await tab.log_in()
    await tab.open(f"admin/usage?{urlencode({**RANGE, **query})}")
    await tab.page.get_by_role("heading", name="Usage", level=1).wait_for()
    await tab.settled()


async def _figures(tab: Browsing, caption: str) -> None:
    """Open the table that carries a chart's figures."""
    await tab.page.get_by_text(f"{caption}: the figures", exact=True).click()


async def test_spend_over_time_is_split_by_the_grouping_with_its_figures_as_a_table(
    tab: Browsing, api: Control
) -> None:
    await _open_usage(tab, api, group_by="model")
    chart = tab.page.get_by_role("img", name="Spend per day by model: in total claude $1.00, gpt $0.50")
    await expect(chart).to_be_visible()
    await _figures(tab, "Spend per day by model")
    table = tab.page.get_by_role("table", name="Spend per day by model", exact=True)
    await expect(table.get_by_role("row")).to_have_count(1 + 7)  # a header, then every day of the range
    await expect(table.get_by_role("row", name=FIRST.date().isoformat())).to_contain_text("$0.00$0.50$0.50")
    await expect(table.get_by_role("row", name=SECOND.date().isoformat())).to_contain_text("$1.00$0.00$1.00")
    await tab.snap("spend over time")


async def test_the_top_users_are_ranked_by_spend_and_a_name_narrows_the_view_to_them(
    tab: Browsing, api: Control
) -> None:
    await _open_usage(tab, api)
    users = tab.page.get_by_role("table", name="Top users by spend")
    await expect(users.get_by_role("row").nth(1)).to_contain_text("1bo@example.com2240$1.0066.7%")
    await expect(users.get_by_role("row").nth(2)).to_contain_text("2admin@localhost")
    models = tab.page.get_by_role("table", name="Top models by spend")
    await expect(models.get_by_role("row").nth(1)).to_contain_text("claude")
    await tab.snap("top users and models")

    await users.get_by_role("link", name="bo@example.com").click()
    await expect(tab.page.get_by_role("table", name="Usage by model")).to_be_visible()
    query = parse_qs(urlsplit(tab.page.url).query)
    assert (query["user"], query["group_by"], query["from"]) == (["20"], ["model"], [RANGE["from"]])
    await expect(tab.page.get_by_label("User", exact=True)).to_have_value("20")


async def test_the_cache_report_shows_the_hit_rate_and_what_hits_saved(tab: Browsing, api: Control) -> None:
    await _open_usage(tab, api)
    cache = tab.page.get_by_role("region", name="Response cache")
    await expect(cache.get_by_role("definition").first).to_have_text("25.0%")  # 1 hit in 4 looked up
    await expect(cache).to_contain_text("Saved by hits$0.25")
    await _figures(tab, "Cache hit rate per day")
    rates = tab.page.get_by_role("table", name="Cache hit rate per day")
    await expect(rates.get_by_role("row", name=FIRST.date().isoformat())).to_contain_text("0.0%")
    await expect(rates.get_by_role("row", name=SECOND.date().isoformat())).to_contain_text("50.0%")
    await expect(rates.get_by_role("row", name=TODAY.date().isoformat())).to_contain_text("—")
    await tab.snap("response cache")


async def test_errors_by_status_class_and_latency_percentiles_per_day(tab: Browsing, api: Control) -> None:
    await _open_usage(tab, api)
    errors = tab.page.get_by_role("region", name="Errors and latency")
    await expect(errors).to_contain_text("Error rate33.3%")
    await expect(errors).to_contain_text("Client errors (4xx)1 · 16.7%")
    await expect(errors).to_contain_text("Latency p50100 ms")  # 5, 50, 100, 200, 300, 1000: nearest rank
    await expect(errors).to_contain_text("Latency p951,000 ms")
    await _figures(tab, "Latency per day")
    latency = tab.page.get_by_role("table", name="Latency per day")
    await expect(latency.get_by_role("row", name=FIRST.date().isoformat())).to_contain_text("100 ms200 ms")
    await _figures(tab, "Errors per day")
    counts = tab.page.get_by_role("table", name="Errors per day")
    await expect(counts.get_by_role("row", name=SECOND.date().isoformat())).to_contain_text("112")
    await tab.snap("errors and latency")


async def test_the_period_and_the_measure_are_kept_in_the_url(tab: Browsing, api: Control) -> None:
    await _open_usage(tab, api)
    await tab.page.get_by_role("combobox", name="Per", exact=True).select_option("week")
    await tab.page.get_by_role("combobox", name="Chart", exact=True).select_option("Tokens")
    await tab.page.get_by_role("button", name="Apply filters").click()
    await expect(tab.page.get_by_role("img", name="Tokens per week by model", exact=False)).to_be_visible()
    query = parse_qs(urlsplit(tab.page.url).query)
    assert (query["period"], query["measure"]) == (["week"], ["total_tokens"])
    await tab.page.reload()  # a link reproduces the view
    await expect(tab.page.get_by_role("combobox", name="Per", exact=True)).to_have_value("week")
    await expect(tab.page.get_by_role("img", name="Tokens per week by model", exact=False)).to_be_visible()


async def test_the_usage_page_fits_a_phones_width(tab: Browsing, api: Control) -> None:
    await tab.page.set_viewport_size({"width": 390, "height": 844})
    await _open_usage(tab, api)
    await expect(tab.page.get_by_role("img", name="Latency per day", exact=False)).to_be_visible()
    overflow = await tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the phone's screen"
    await tab.snap("usage on a phone")
