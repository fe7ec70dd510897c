"""/admin/usage/summary, /admin/usage/costs, /me/usage and /admin/audit-logs over stored rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.control.client import Control, message
from tests.usage_rows import attempt_row, insert, request_row


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


async def seed(api: Control) -> None:
    """Bo (id 20) and Cy (id 30), users no longer in the user table, used two models over three days."""
    await insert(
        api.container.store,
        [
            request_row(user_id=20, user_email="bo@example.com", model="a", created_at=at(1), cost_micros=1_000_000,
                        tags=["team-a"], groups=["eng"], token_id=7),
            request_row(user_id=20, user_email="bo@example.com", model="b", created_at=at(2), cost_micros=250_000,
                        tags=["team-a", "feature-x"], groups=["eng"], token_id=7),
            request_row(user_id=30, user_email="cy@example.com", model="a", created_at=at(2), cost_micros=500_000,
                        groups=["sales"], provider="anthropic"),
            request_row(user_id=30, user_email="cy@example.com", model="a", created_at=at(3), cost_micros=0,
                        status=429, error_class="RateLimited"),
        ],
    )  # fmt: skip


async def test_the_summary_groups_by_user_with_totals_from_stored_costs(api: Control) -> None:
    await seed(api)
    resp = await api.get("/admin/usage/summary", params={"group_by": "user"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["group_by"] == ["user"]
    assert body["totals"]["cost_micros"] == 1_750_000 and body["totals"]["cost_usd"] == 1.75
    assert (body["totals"]["requests"], body["totals"]["errors"]) == (4, 1)
    rows = [(r["user_id"], r["user_email"], r["requests"], r["cost_micros"]) for r in body["data"]]
    assert rows == [(20, "bo@example.com", 2, 1_250_000), (30, "cy@example.com", 2, 500_000)]
    assert body["truncated"] is False


async def test_the_summary_takes_repeated_or_comma_separated_keys_and_filters(api: Control) -> None:
    await seed(api)
    repeated = await api.get(
        "/admin/usage/summary",
        params=[("group_by", "model"), ("group_by", "day"), ("from", "2026-03-02"), ("to", "2026-03-03")],
    )
    joined = await api.get(
        "/admin/usage/summary", params={"group_by": "model,day", "from": "2026-03-02", "to": "2026-03-03"}
    )
    assert repeated.json() == joined.json()
    rows = [(r["model"], r["day"], r["cost_micros"]) for r in repeated.json()["data"]]
    assert rows == [("a", "2026-03-02", 500_000), ("b", "2026-03-02", 250_000)]
    assert repeated.json()["from"].startswith("2026-03-02T00:00:00")


@pytest.mark.parametrize(
    ("params", "requests"),
    [
        ({"user": "bo@example.com"}, 2),
        ({"user": "30"}, 2),
        ({"group": "eng"}, 2),
        ({"tag": "feature-x"}, 1),
        ({"model": "b"}, 1),
        ({"provider": "anthropic"}, 1),
        ({"token": "7"}, 2),
        ({"from": "2026-03-02T12:00:00Z"}, 3),
        ({"to": "2026-03-02T12:00:00+01:00"}, 1),
    ],
)
async def test_each_filter_narrows_the_totals(api: Control, params: dict[str, str], requests: int) -> None:
    await seed(api)
    resp = await api.get("/admin/usage/summary", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.json()["totals"]["requests"] == requests


async def test_costs_rank_groups_by_spend_with_their_share(api: Control) -> None:
    await seed(api)
    body = (await api.get("/admin/usage/costs")).json()
    assert body["group_by"] == ["model"]
    assert (body["cost_micros"], body["requests"]) == (1_750_000, 4)
    assert [(r["model"], r["cost_micros"], round(r["share"], 4)) for r in body["data"]] == [
        ("a", 1_500_000, 0.8571),
        ("b", 250_000, 0.1429),
    ]
    by_tag = (await api.get("/admin/usage/costs", params={"group_by": "tag", "order": "asc"})).json()
    assert [r["tag"] for r in by_tag["data"]] == ["feature-x", None, "team-a"]


async def test_me_usage_shows_only_the_callers_own_requests_and_budgets(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await seed(api)
    await insert(api.container.store, [request_row(user_id=bob.id, user_email=bob.email, cost_micros=42)])
    resp = await api.get("/me/usage", params={"group_by": "model"}, token=bob.token)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["totals"]["cost_micros"] == 42 and body["totals"]["requests"] == 1
    assert body["budgets"] == []
    # Another user's usage is not the caller's to filter for.
    refused = await api.get("/me/usage", params={"user": "20"}, token=bob.token)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "user"


async def test_usage_needs_usage_view_and_audit_logs_need_audit_view(api: Control) -> None:
    bob = await api.person("bob@example.com")
    viewer = await api.person("vi@example.com", permissions=("usage.view",))
    auditor = await api.person("au@example.com", permissions=("audit.view",))
    for path in ("/admin/usage/summary", "/admin/usage/costs"):
        refused = await api.get(path, token=bob.token)
        assert refused.status_code == 403 and "'usage.view'" in message(refused)
        assert (await api.get(path, token=viewer.token)).status_code == 200
        assert (await api.get(path, token=auditor.token)).status_code == 403
    for path in ("/admin/audit-logs", "/admin/audit-logs/req-x"):
        refused = await api.get(path, token=viewer.token)
        assert refused.status_code == 403 and "'audit.view'" in message(refused)
    assert (await api.get("/admin/audit-logs", token=auditor.token)).status_code == 200
    assert (await api.get("/admin/usage/summary", token=None)).status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/admin/usage/summary", {"group_by": "user;drop table request_log"}, "group_by"),
        ("/admin/usage/summary", {"group_by": "day,week"}, "group_by"),
        ("/admin/usage/summary", {"group_by": "user,user"}, "group_by"),
        ("/admin/usage/summary", {"group_by": "user,model,tag,day"}, "group_by"),
        ("/admin/usage/summary", {"sort": "cost_micros desc"}, "sort"),
        ("/admin/usage/summary", {"sort": "model"}, "sort"),  # not grouped by model
        ("/admin/usage/summary", {"order": "sideways"}, "order"),
        ("/admin/usage/summary", {"from": "yesterday"}, "from"),
        ("/admin/usage/summary", {"from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ("/admin/usage/summary", {"token": "seven"}, "token"),
        ("/admin/usage/summary", {"user": ""}, "user"),
        ("/admin/usage/summary", {"model": "x" * 400}, "model"),
        ("/admin/usage/summary", {"grop_by": "user"}, "grop_by"),
        ("/admin/usage/costs", {"sort": "requests"}, "sort"),
        ("/admin/audit-logs", {"cursor": "not-a-cursor"}, "cursor"),
        ("/admin/audit-logs", {"status": "teapot"}, "status"),
        ("/admin/audit-logs", {"group_by": "user"}, "group_by"),
    ],
)
async def test_every_parameter_is_checked_and_a_400_names_it(
    api: Control, path: str, params: dict[str, str], param: str
) -> None:
    resp = await api.get(path, params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param
    assert message(resp).startswith(f"{param}:")


async def test_limits_out_of_range_are_refused(api: Control) -> None:
    for path, limit in (("/admin/usage/summary", "0"), ("/admin/audit-logs", "501")):
        resp = await api.get(path, params={"limit": limit})
        assert resp.status_code == 400
        assert "limit" in message(resp)


async def test_the_audit_log_pages_by_cursor_newest_first(api: Control) -> None:
    rows = [request_row(created_at=at(1, hour)) for hour in range(5)]
    await insert(api.container.store, rows)
    first = (await api.get("/admin/audit-logs", params={"limit": 2})).json()
    assert [r["request_id"] for r in first["data"]] == [rows[4]["request_id"], rows[3]["request_id"]]
    assert first["has_more"] and first["next_cursor"]
    assert "request_body" not in first["data"][0]
    seen = [r["request_id"] for r in first["data"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await api.get("/admin/audit-logs", params={"limit": 2, "cursor": cursor})).json()
        seen += [r["request_id"] for r in page["data"]]
        cursor = page["next_cursor"]
    assert seen == [r["request_id"] for r in reversed(rows)]


async def test_the_audit_log_filters_by_status_and_endpoint(api: Control) -> None:
    await seed(api)
    errors = (await api.get("/admin/audit-logs", params={"status": "error"})).json()["data"]
    assert [(r["status"], r["error_class"]) for r in errors] == [(429, "RateLimited")]
    assert len((await api.get("/admin/audit-logs", params={"status": "200"})).json()["data"]) == 3
    assert (await api.get("/admin/audit-logs", params={"endpoint": "embeddings"})).json()["data"] == []


async def test_one_request_shows_its_row_and_every_attempt(api: Control) -> None:
    row = request_row(attempts=2, cost_micros=900, request_body='{"model": "a"}')
    await insert(
        api.container.store,
        [row],
        [attempt_row(row, 1, status=503, error_class="UpstreamError", cost_micros=0), attempt_row(row, 2)],
    )
    resp = await api.get(f"/admin/audit-logs/{row['request_id']}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["request"]["request_id"] == row["request_id"]
    assert body["request"]["cost_usd"] == 0.0009 and body["request"]["request_body"] == '{"model": "a"}'
    assert [(a["attempt"], a["status"], a["cost_micros"]) for a in body["attempts"]] == [
        (1, 503, 0),
        (2, 200, 900),
    ]
    missing = await api.get("/admin/audit-logs/req-unknown")
    assert missing.status_code == 404 and "req-unknown" in message(missing)


async def test_the_audit_log_filters_by_least_cost_and_latency(api: Control) -> None:
    await insert(
        api.container.store,
        [
            request_row(request_id="cheap-fast", created_at=at(1), cost_micros=10, latency_ms=20.0),
            request_row(request_id="dear-fast", created_at=at(2), cost_micros=2_000_000, latency_ms=30.0),
            request_row(request_id="dear-slow", created_at=at(3), cost_micros=3_000_000, latency_ms=9000.0),
        ],
    )
    dear = (await api.get("/admin/audit-logs", params={"min_cost_usd": 1})).json()["data"]
    assert [r["request_id"] for r in dear] == ["dear-slow", "dear-fast"]
    slow = (await api.get("/admin/audit-logs", params={"min_cost_usd": 1, "min_latency_ms": 5000})).json()
    assert [r["request_id"] for r in slow["data"]] == ["dear-slow"]
    refused = await api.get("/admin/audit-logs", params={"min_latency_ms": -1})
    assert refused.status_code in (400, 422) and "min_latency_ms" in refused.text


async def test_the_audit_log_exports_as_csv_with_the_listings_filters(api: Control) -> None:
    import csv
    import io

    await insert(
        api.container.store,
        [
            request_row(request_id=f"row-{i}", created_at=at(1, i), cost_micros=i * 1_000_000, model="m")
            for i in range(1, 6)
        ],
    )
    answer = await api.get("/admin/audit-logs.csv", params={"min_cost_usd": 2, "max_rows": 3})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    lines = answer.text.splitlines()
    assert lines[-1] == "# cut at max_rows=3"
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[:-1]))))
    assert [r["request_id"] for r in rows] == ["row-5", "row-4", "row-3"]
    assert rows[0]["cost_usd"] == "5.0" and "request_body" not in rows[0]
    refused = await api.get("/admin/audit-logs.csv", params={"colour": "red"})
    assert refused.status_code == 400 and "colour" in refused.text


async def test_exporting_the_audit_log_needs_audit_view(api: Control) -> None:
    viewer = await api.person("viewer@example.com", permissions=("usage.view",))
    assert (await api.get("/admin/audit-logs.csv", token=viewer.token)).status_code == 403
