"""The response cache, errors and latency in the usage reports: /admin/usage/summary's cache and
status-class counts, and /admin/usage/latency's nearest-rank percentiles, over stored rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.cache.conftest import CALL_MICROS, REPLY, cache_settings, chat
from tests.control.client import Control, control, message
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.usage_rows import insert, request_row


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


async def test_the_summary_counts_cache_verdicts_and_savings_per_day(api: Control) -> None:
    await insert(
        api.container.store,
        [
            request_row(created_at=at(1), cache_status="hit", cost_micros=0, saved_micros=400_000),
            request_row(created_at=at(1), cache_status="hit", cost_micros=0, saved_micros=100_000),
            request_row(created_at=at(1), cache_status="miss", cost_micros=400_000),
            request_row(created_at=at(2), cache_status="bypass"),
            request_row(created_at=at(2), cache_status=None),
        ],
    )
    body = (await api.get("/admin/usage/summary", params={"group_by": "day"})).json()
    totals = body["totals"]
    assert (totals["cache_hits"], totals["cache_misses"], totals["cache_bypasses"]) == (2, 1, 1)
    assert (totals["saved_micros"], totals["saved_usd"]) == (500_000, 0.5)
    days = [
        (r["day"], r["cache_hits"], r["cache_misses"], r["saved_micros"], r["saved_usd"])
        for r in body["data"]
    ]
    assert days == [("2026-03-01", 2, 1, 500_000, 0.5), ("2026-03-02", 0, 0, 0, 0.0)]


async def test_real_cache_hits_are_counted_with_what_the_upstream_call_would_have_cost(
    database: dict[str, Any],
) -> None:
    async with OpenAIUpstream() as upstream:
        upstream.default_reply = REPLY
        async with control(cache_settings(upstream, database=database)) as api:
            for rid, headers in (("one", {}), ("two", {}), ("three", {"x-waypost-cache": "bypass"})):
                answer = await api.post(
                    "/v1/chat/completions", chat(), headers={"x-request-id": rid, **headers}
                )
                assert answer.status_code == 200, answer.text
            totals: dict[str, Any] = {}
            for _ in range(500):  # the audit writer stores rows off the request path
                await api.container.audit.flush()
                totals = (await api.get("/admin/usage/summary")).json()["totals"]
                if totals["requests"] == 3:
                    break
                await asyncio.sleep(0.01)
    assert (totals["cache_hits"], totals["cache_misses"], totals["cache_bypasses"]) == (1, 1, 1)
    assert (totals["saved_micros"], totals["cost_micros"]) == (CALL_MICROS, 2 * CALL_MICROS)


async def test_the_summary_splits_errors_by_status_class(api: Control) -> None:
    await insert(
        api.container.store,
        [
            request_row(status=200),
            request_row(status=400),
            request_row(status=429),
            request_row(status=499),
            request_row(status=502),
        ],
    )
    totals = (await api.get("/admin/usage/summary")).json()["totals"]
    assert (totals["errors"], totals["client_errors"], totals["server_errors"]) == (4, 3, 1)


async def test_total_tokens_add_input_cache_reads_and_writes_and_output(api: Control) -> None:
    await insert(
        api.container.store,
        [request_row(input_tokens=100, cache_read_tokens=30, cache_write_tokens=7, output_tokens=20)],
    )
    totals = (await api.get("/admin/usage/summary")).json()["totals"]
    assert totals["total_tokens"] == 157


async def test_the_summary_sorts_by_the_new_metrics(api: Control) -> None:
    await insert(
        api.container.store,
        [
            request_row(model="a", cache_status="hit", saved_micros=10),
            request_row(model="b", cache_status="hit", saved_micros=900),
        ],
    )
    body = (
        await api.get("/admin/usage/summary", params={"group_by": "model", "sort": "saved_micros"})
    ).json()
    assert [r["model"] for r in body["data"]] == ["b", "a"]


async def test_latency_has_nearest_rank_percentiles_per_group_and_overall(api: Control) -> None:
    rows = [request_row(model="a", latency_ms=float(ms)) for ms in range(1, 21)]
    rows.append(request_row(model="b", latency_ms=500.0))
    await insert(api.container.store, rows)
    resp = await api.get("/admin/usage/latency", params={"group_by": "model"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    a, b = body["data"]
    assert a["model"] == "a" and a["requests"] == 20
    assert (a["latency_mean_ms"], a["latency_p50_ms"], a["latency_p95_ms"], a["latency_p99_ms"]) == (
        10.5,
        10.0,
        19.0,
        20.0,
    )
    assert a["latency_max_ms"] == 20.0
    assert (b["model"], b["latency_p50_ms"], b["latency_p95_ms"], b["latency_max_ms"]) == (
        "b",
        500.0,
        500.0,
        500.0,
    )
    totals = body["totals"]
    assert totals["requests"] == 21
    # 21 requests: the 11th smallest is the median, the 20th the 95th percentile.
    assert (totals["latency_p50_ms"], totals["latency_p95_ms"], totals["latency_max_ms"]) == (
        11.0,
        20.0,
        500.0,
    )


async def test_time_to_first_byte_counts_only_requests_that_have_one(api: Control) -> None:
    rows = [request_row(stream=True, ttft_ms=float(ms)) for ms in (40, 10, 30, 20)]
    rows += [request_row(stream=False, ttft_ms=None) for _ in range(5)]
    await insert(api.container.store, rows)
    totals = (await api.get("/admin/usage/latency")).json()["totals"]
    assert totals["requests"] == 9 and totals["ttft_requests"] == 4
    assert (totals["ttft_mean_ms"], totals["ttft_p50_ms"], totals["ttft_p95_ms"]) == (25.0, 20.0, 40.0)


async def test_latency_per_day_follows_the_filters_and_the_status(api: Control) -> None:
    await insert(
        api.container.store,
        [
            request_row(created_at=at(1), latency_ms=100.0),
            request_row(created_at=at(1), latency_ms=900.0, status=503),
            request_row(created_at=at(2), latency_ms=200.0),
            request_row(created_at=at(2), latency_ms=50.0, model="other"),
        ],
    )
    resp = await api.get("/admin/usage/latency", params={"group_by": "day", "status": "ok", "model": "gpt"})
    assert resp.status_code == 200, resp.text
    days = [(r["day"], r["requests"], r["latency_max_ms"]) for r in resp.json()["data"]]
    assert days == [("2026-03-01", 1, 100.0), ("2026-03-02", 1, 200.0)]


async def test_latency_by_tag_counts_a_request_in_each_of_its_tags_and_once_in_the_totals(
    api: Control,
) -> None:
    await insert(
        api.container.store,
        [
            request_row(tags=["x", "y"], latency_ms=10.0),
            request_row(tags=["y"], latency_ms=30.0),
            request_row(),
        ],
    )
    body = (await api.get("/admin/usage/latency", params={"group_by": "tag"})).json()
    assert [(r["tag"], r["requests"]) for r in body["data"]] == [("x", 1), ("y", 2), (None, 1)]
    assert body["totals"]["requests"] == 3


async def test_latency_rows_sort_by_a_figure_largest_first(api: Control) -> None:
    await insert(
        api.container.store,
        [
            request_row(user_id=20, user_email="bo@example.com", latency_ms=10.0),
            request_row(user_id=30, user_email="cy@example.com", latency_ms=90.0),
        ],
    )
    body = (
        await api.get("/admin/usage/latency", params={"group_by": "user", "sort": "latency_p95_ms"})
    ).json()
    assert [(r["user_id"], r["user_email"]) for r in body["data"]] == [
        (30, "cy@example.com"),
        (20, "bo@example.com"),
    ]


async def test_latency_without_requests_has_no_figures(api: Control) -> None:
    totals = (await api.get("/admin/usage/latency")).json()["totals"]
    assert totals["requests"] == 0
    assert totals["latency_p50_ms"] is None and totals["latency_mean_ms"] is None


async def test_latency_rows_are_cut_at_the_limit(api: Control) -> None:
    await insert(api.container.store, [request_row(model=name) for name in ("a", "b", "c")])
    body = (await api.get("/admin/usage/latency", params={"group_by": "model", "limit": 2})).json()
    assert [r["model"] for r in body["data"]] == ["a", "b"] and body["truncated"] is True
    assert body["totals"]["requests"] == 3


async def test_latency_needs_usage_view(api: Control) -> None:
    auditor = await api.person("au@example.com", permissions=("audit.view",))
    viewer = await api.person("vi@example.com", permissions=("usage.view",))
    refused = await api.get("/admin/usage/latency", token=auditor.token)
    assert refused.status_code == 403 and "'usage.view'" in message(refused)
    assert (await api.get("/admin/usage/latency", token=viewer.token)).status_code == 200


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"sort": "cost_micros"}, "sort"),  # a summary metric, not a latency figure
        ({"sort": "model"}, "sort"),  # not grouped by model
        ({"group_by": "day,month"}, "group_by"),
        ({"status": "slow"}, "status"),
        ({"cursor": "x"}, "cursor"),
        ({"order": "up"}, "order"),
    ],
)
async def test_latency_parameters_are_checked(api: Control, params: dict[str, str], param: str) -> None:
    resp = await api.get("/admin/usage/latency", params=params)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param
