"""Usage reports over the audit log: grouping, filters, time buckets and audit-log pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.usage_rows import attempt_row, insert, request_row
from waypost.store import Store
from waypost.store.usage_reports import GROUP_KEYS, UsageFilter


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


async def test_totals_are_sums_of_the_stored_costs_and_tokens(store: Store) -> None:
    await insert(
        store,
        [
            request_row(cost_micros=1500, input_tokens=10, cache_read_tokens=5),
            request_row(cost_micros=2500, output_tokens=7, status=500),
            request_row(cost_micros=0, priced=False, usage_estimated=True),
        ],
    )
    report = await store.usage_reports.summary(UsageFilter())
    assert report.rows == []
    totals = report.totals
    assert (totals["requests"], totals["errors"], totals["cost_micros"]) == (3, 1, 4000)
    assert (totals["input_tokens"], totals["output_tokens"], totals["cache_read_tokens"]) == (210, 47, 5)
    assert (totals["unpriced"], totals["estimated"]) == (1, 1)


async def test_an_empty_log_gives_zero_totals(store: Store) -> None:
    report = await store.usage_reports.summary(UsageFilter(), ["model"])
    assert report.rows == [] and set(report.totals.values()) == {0}


async def test_rows_group_by_user_and_model(store: Store) -> None:
    await insert(
        store,
        [
            request_row(user_id=2, user_email="bo@example.org", model="a", cost_micros=10),
            request_row(user_id=2, user_email="bo@example.org", model="a", cost_micros=20),
            request_row(user_id=2, user_email="bo@example.org", model="b", cost_micros=5),
            request_row(user_id=3, user_email="cy@example.org", model="a", cost_micros=1),
        ],
    )
    report = await store.usage_reports.summary(UsageFilter(), ["user", "model"])
    got = [(r["user_id"], r["user_email"], r["model"], r["requests"], r["cost_micros"]) for r in report.rows]
    assert got == [
        (2, "bo@example.org", "a", 2, 30),
        (2, "bo@example.org", "b", 1, 5),
        (3, "cy@example.org", "a", 1, 1),
    ]
    assert report.totals["cost_micros"] == 36


async def test_a_failed_request_without_a_served_model_counts_under_the_requested_one(store: Store) -> None:
    await insert(store, [request_row(model=None, requested_model="wanted", status=503, cost_micros=0)])
    report = await store.usage_reports.summary(UsageFilter(models=("wanted",)), ["model"])
    assert [(r["model"], r["errors"]) for r in report.rows] == [("wanted", 1)]


async def test_a_request_counts_in_each_of_its_tags_rows_but_once_in_the_totals(store: Store) -> None:
    await insert(
        store,
        [
            request_row(tags=["team-a", "feature-x"], cost_micros=100),
            request_row(tags=["team-a"], cost_micros=10),
            request_row(tags=[], cost_micros=1),
        ],
    )
    report = await store.usage_reports.summary(UsageFilter(), ["tag"])
    assert [(r["tag"], r["requests"], r["cost_micros"]) for r in report.rows] == [
        ("feature-x", 1, 100),
        ("team-a", 2, 110),
        (None, 1, 1),  # untagged, last
    ]
    assert report.totals["cost_micros"] == 111


async def test_filtering_by_a_tag_and_grouping_by_tag_shows_only_that_tag(store: Store) -> None:
    await insert(store, [request_row(tags=["team-a", "feature-x"]), request_row(tags=["team-b"])])
    report = await store.usage_reports.summary(UsageFilter(tags=("team-a",)), ["tag"])
    assert [(r["tag"], r["requests"]) for r in report.rows] == [("team-a", 1)]
    assert report.totals["requests"] == 1


async def test_groups_come_from_the_labels(store: Store) -> None:
    await insert(
        store,
        [
            request_row(groups=["eng", "ml"], cost_micros=7),
            request_row(groups=["eng"], cost_micros=3),
            request_row(groups=["sales"], cost_micros=50),
        ],
    )
    report = await store.usage_reports.summary(UsageFilter(groups=("eng",)), ["group"])
    assert [(r["group"], r["cost_micros"]) for r in report.rows] == [("eng", 10)]
    assert report.totals["cost_micros"] == 10


async def test_days_weeks_and_months_are_buckets_in_utc(store: Store) -> None:
    await insert(
        store,
        [
            request_row(created_at=datetime(2026, 3, 1, 23, 59, tzinfo=UTC)),  # a Sunday
            request_row(created_at=datetime(2026, 3, 2, 0, 1, tzinfo=UTC)),  # Monday
            # 01:30 on the 3rd at UTC+2 is still the 2nd in UTC.
            request_row(created_at=datetime(2026, 3, 3, 1, 30, tzinfo=UTC) + timedelta(hours=-2)),
            request_row(created_at=datetime(2026, 4, 30, 10, tzinfo=UTC)),
        ],
    )
    reports = store.usage_reports
    days = (await reports.summary(UsageFilter(), ["day"])).rows
    assert [(r["day"], r["requests"]) for r in days] == [
        ("2026-03-01", 1),
        ("2026-03-02", 2),
        ("2026-04-30", 1),
    ]
    weeks = (await reports.summary(UsageFilter(), ["week"])).rows
    assert [(r["week"], r["requests"]) for r in weeks] == [
        ("2026-02-23", 1),
        ("2026-03-02", 2),
        ("2026-04-27", 1),
    ]
    months = (await reports.summary(UsageFilter(), ["month"])).rows
    assert [(r["month"], r["requests"]) for r in months] == [("2026-03-01", 3), ("2026-04-01", 1)]


async def test_the_time_range_includes_its_start_and_excludes_its_end(store: Store) -> None:
    await insert(
        store, [request_row(created_at=at(1)), request_row(created_at=at(2)), request_row(created_at=at(3))]
    )
    report = await store.usage_reports.summary(UsageFilter(start=at(2), end=at(3)))
    assert report.totals["requests"] == 1


async def test_filters_by_user_id_or_email_provider_and_token(store: Store) -> None:
    await insert(
        store,
        [
            request_row(user_id=2, user_email="bo@example.org", provider="anthropic", token_id=5),
            request_row(user_id=3, user_email="cy@example.org", provider="openai", token_id=6),
            request_row(user_id=4, user_email="di@example.org", provider="openai", token_id=None),
        ],
    )
    reports = store.usage_reports
    assert (await reports.summary(UsageFilter(users=("2", "CY@example.org")))).totals["requests"] == 2
    assert (await reports.summary(UsageFilter(providers=("openai",)))).totals["requests"] == 2
    assert (await reports.summary(UsageFilter(tokens=(5, 6)))).totals["requests"] == 2
    assert (await reports.summary(UsageFilter(outcome="error"))).totals["requests"] == 0


async def test_rows_sort_by_a_metric_and_stop_at_the_limit(store: Store) -> None:
    await insert(store, [request_row(model=m, cost_micros=c) for m, c in (("a", 5), ("b", 50), ("c", 20))])
    report = await store.usage_reports.summary(
        UsageFilter(), ["model"], sort="cost_micros", descending=True, limit=2
    )
    assert [r["model"] for r in report.rows] == ["b", "c"]
    assert report.truncated
    assert report.totals["cost_micros"] == 75


async def test_every_grouping_key_runs(store: Store) -> None:
    await insert(store, [request_row(tags=["t"], groups=["g"], token_id=9)])
    for key in GROUP_KEYS:
        report = await store.usage_reports.summary(UsageFilter(), [key], sort=key, descending=True)
        assert len(report.rows) == 1, key
    everything = await store.usage_reports.summary(UsageFilter(), ["user", "group", "tag", "model", "month"])
    assert everything.rows[0]["requests"] == 1


async def test_the_log_pages_newest_first_without_gaps_or_repeats(store: Store) -> None:
    same_time = at(5)
    rows = [request_row(created_at=at(1, h)) for h in range(7)] + [
        request_row(created_at=same_time) for _ in range(4)
    ]
    await insert(store, rows)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await store.usage_reports.log(UsageFilter(), limit=3, after=cursor)
        seen += [r["request_id"] for r in page.rows]
        cursor = page.next
        if cursor is None:
            break
    assert sorted(seen) == sorted(r["request_id"] for r in rows)
    assert len(seen) == len(set(seen))
    assert seen[:4] == [r["request_id"] for r in reversed(rows[7:])]  # same time: newest id first


async def test_log_rows_leave_out_the_bodies_and_the_detail_has_them_with_attempts(store: Store) -> None:
    row = request_row(request_body='{"masked": "***"}', attempts=2)
    await insert(store, [row], [attempt_row(row, 2, status=200), attempt_row(row, 1, status=429)])
    page = await store.usage_reports.log(UsageFilter())
    assert "request_body" not in page.rows[0]
    detail = await store.usage_reports.request(row["request_id"])
    assert detail is not None and detail["request_body"] == '{"masked": "***"}'
    assert [(a["attempt"], a["status"]) for a in detail["attempt_rows"]] == [(1, 429), (2, 200)]
    assert await store.usage_reports.request("nope") is None
