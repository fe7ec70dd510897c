"""GET /admin/usage/summary.csv: the usage summary's rows as CSV, built by the server."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from tests.control.client import Control
from tests.usage_rows import insert, request_row


def at(day: int) -> datetime:
    return datetime(2026, 3, day, 12, tzinfo=UTC)


async def seed(api: Control) -> None:
    await insert(
        api.container.store,
        [
            request_row(user_id=20, user_email="bo@example.com", model="a", created_at=at(1), cost_micros=1_000_000),
            request_row(user_id=20, user_email="bo@example.com", model="b", created_at=at(2), cost_micros=250_000),
            request_row(user_id=30, user_email="cy@example.com", model="a", created_at=at(3), cost_micros=500_000),
        ],
    )  # fmt: skip


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_the_summary_exports_one_line_per_group_with_the_listings_filters(api: Control) -> None:
    await seed(api)
    answer = await api.get(
        "/admin/usage/summary.csv", params={"group_by": "model", "from": "2026-03-02", "sort": "cost_micros"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="waypost-usage.csv"' in answer.headers["content-disposition"]
    rows = rows_of(answer.text)
    assert [(r["model"], r["requests"], r["cost_usd"]) for r in rows] == [
        ("a", "1", "0.5"),
        ("b", "1", "0.25"),
    ]


async def test_the_export_holds_more_groups_than_a_listing_page(api: Control) -> None:
    await insert(
        api.container.store,
        [request_row(user_id=i, user_email=f"u{i}@example.com", created_at=at(1)) for i in range(1, 1003)],
    )
    listing = await api.get("/admin/usage/summary", params={"group_by": "user"})
    assert listing.json()["truncated"] is True
    exported = await api.get("/admin/usage/summary.csv", params={"group_by": "user"})
    assert len(rows_of(exported.text)) == 1002


async def test_a_cut_export_says_so_on_its_last_line(api: Control) -> None:
    await seed(api)
    answer = await api.get("/admin/usage/summary.csv", params={"group_by": "user", "limit": 1})
    lines = answer.text.splitlines()
    assert lines[-1] == "# cut at limit=1"
    assert len(rows_of("\n".join(lines[:-1]))) == 1


async def test_without_grouping_the_export_is_one_line_of_totals(api: Control) -> None:
    await seed(api)
    rows = rows_of((await api.get("/admin/usage/summary.csv")).text)
    assert len(rows) == 1 and rows[0]["requests"] == "3" and rows[0]["cost_usd"] == "1.75"


async def test_an_unknown_parameter_is_refused_by_name(api: Control) -> None:
    refused = await api.get("/admin/usage/summary.csv", params={"colour": "red"})
    assert refused.status_code == 400 and "colour" in refused.text


async def test_exporting_usage_needs_usage_view(api: Control) -> None:
    auditor = await api.person("auditor@example.com", permissions=("audit.view",))
    assert (await api.get("/admin/usage/summary.csv", token=auditor.token)).status_code == 403
    viewer = await api.person("viewer@example.com", permissions=("usage.view",))
    assert (await api.get("/admin/usage/summary.csv", token=viewer.token)).status_code == 200
