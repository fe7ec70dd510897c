"""What the audit log holds for each kind of request, through a real gateway (docs/metering.md):
tags and groups on the row and in request_labels; embeddings and the task endpoints with their
X-Waypost-Cost-USD; refused requests (no row) and upstream errors (a row with the error); and the
reports (/admin/usage/summary, /admin/audit-logs) agreeing with the rows and with the callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes import Reply
from tests.harness import GATEWAY_KEY
from tests.metering.e2e_gateway import (
    GROUPS,
    PRICES,
    Gateway,
    anthropic_headers,
    columns_of,
    expected_micros,
    metering_gateway,
    new_id,
    no_row,
    openai_headers,
    post,
    rows_of,
    select,
    token_columns,
    usd,
)
from waypost.core.types import Usage
from waypost.store import tables

pytestmark = pytest.mark.asyncio(loop_scope="module")

HELLO = [{"role": "user", "content": "Hello there?"}]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw() -> AsyncIterator[Gateway]:
    async with metering_gateway() as gateway:
        yield gateway


async def admin_get(gw: Gateway, path: str, params: Any = None) -> Any:
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(gw.url + path, params=params, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def ok_request(gw: Gateway) -> str:
    """A plain request that succeeds; its id."""
    gw.fakes["ollama"].enqueue(Reply(text="fine", input_tokens=5, output_tokens=2))
    rid = new_id()
    answer = await post(
        gw.url + "/v1/chat/completions", {"model": "ollama", "messages": HELLO}, openai_headers(rid)
    )
    assert answer.status == 200
    return rid


# -- (4) tags and groups ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["body", "stream"])
async def test_tags_from_the_header_and_metadata_and_the_users_groups_are_labels(
    gw: Gateway, mode: str
) -> None:
    fake = gw.fakes["openai"]
    fake.enqueue(Reply(text="Tagged.", input_tokens=20, output_tokens=4))
    rid = new_id()
    body: dict[str, Any] = {
        "model": "openai",
        "messages": HELLO,
        "metadata": {"tags": ["proj-1", "team-a"], "purpose": "demo"},
        "stream": mode == "stream",
    }
    headers = openai_headers(rid, **{"x-waypost-tags": "team-a, feature-x"})
    answer = await post(gw.url + "/v1/chat/completions", body, headers)
    assert answer.status == 200, answer.raw
    # The tags are the gateway's: they never reach the upstream.
    assert "tags" not in (fake.requests[-1].json.get("metadata") or {})

    rows = await rows_of(gw, rid)
    assert rows.request["tags"] == ["team-a", "feature-x", "proj-1"]
    assert sorted(rows.request["groups"]) == sorted(GROUPS)
    tags = {("tag", t) for t in ("team-a", "feature-x", "proj-1")}
    assert rows.labels == tags | {("group", g) for g in GROUPS}


async def test_an_anthropic_caller_tags_in_metadata_too(gw: Gateway) -> None:
    fake = gw.fakes["anthropic"]
    fake.enqueue(Reply(text="Tagged.", input_tokens=20, output_tokens=4))
    rid = new_id()
    body = {
        "model": "anthropic",
        "max_tokens": 64,
        "messages": HELLO,
        "metadata": {"user_id": "u-42", "tags": "billing,exp:7"},
    }
    answer = await post(gw.url + "/v1/messages", body, anthropic_headers(rid))
    assert answer.status == 200, answer.raw
    assert fake.requests[-1].json["metadata"] == {"user_id": "u-42"}
    rows = await rows_of(gw, rid)
    assert rows.request["tags"] == ["billing", "exp:7"]
    assert {v for k, v in rows.labels if k == "tag"} == {"billing", "exp:7"}


@pytest.mark.parametrize(
    ("header", "what"),
    [
        ("team a", "characters"),
        (",".join(f"t{i}" for i in range(11)), "at most 10"),
        ("x" * 65, "at most 64"),
    ],
)
async def test_bad_tags_are_refused_naming_the_problem(gw: Gateway, header: str, what: str) -> None:
    rid = new_id()
    headers = openai_headers(rid, **{"x-waypost-tags": header})
    answer = await post(gw.url + "/v1/chat/completions", {"model": "openai", "messages": HELLO}, headers)
    assert answer.status == 400
    error = answer.json()["error"]
    assert what in error["message"] and error["type"] == "invalid_request_error"
    # Nothing went upstream and nothing was billed. (The metering stage refuses it after the body
    # was understood, so unlike a body the endpoint cannot decode it may have a row: a 400 at 0.)
    await rows_of(gw, await ok_request(gw))
    assert await select(gw, tables.request_attempts, rid) == []
    rows = await select(gw, tables.request_log, rid)
    assert [(r["status"], r["error_class"], r["cost_micros"], r["attempts"]) for r in rows] in (
        [],
        [(400, "BadRequest", 0, 0)],
    )


async def test_an_unknown_model_has_a_row_and_no_attempt(gw: Gateway) -> None:
    rid = new_id()
    body = {"model": "no-such-model", "messages": HELLO}
    answer = await post(gw.url + "/v1/chat/completions", body, openai_headers(rid))
    assert answer.status == 404
    rows = await rows_of(gw, rid)
    row = rows.request
    assert (row["status"], row["error_class"], row["cost_micros"], row["model"]) == (
        404,
        "ModelNotFound",
        0,
        None,
    )
    assert row["requested_model"] == "no-such-model" and rows.attempts == []


# -- (5) embeddings and the task endpoints ------------------------------------------------------


async def test_an_embeddings_row_and_its_cost_header(gw: Gateway) -> None:
    gw.fakes["openai"].enqueue(Reply(input_tokens=1234))
    rid = new_id()
    body = {"model": "emb", "input": ["alpha", "beta"]}
    answer = await post(gw.url + "/v1/embeddings", body, openai_headers(rid))
    assert answer.status == 200, answer.raw
    micros = expected_micros(Usage(1234, 0), PRICES["emb"])  # 1,234 x $0.13 per million: 160.42
    assert micros == 160
    assert Decimal(answer.headers["x-waypost-cost-usd"]) == usd(micros)
    assert Decimal(str(answer.json()["usage"]["cost_usd"])) == usd(micros)
    rows = await rows_of(gw, rid)
    row = rows.request
    assert (row["endpoint"], row["client_format"], row["model"], row["status"]) == (
        "embeddings",
        "openai",
        "emb",
        200,
    )
    assert columns_of(row) == token_columns(Usage(1234, 0))
    assert row["cost_micros"] == micros and rows.attempts[0]["cost_micros"] == micros


async def test_an_embed_task_row_and_its_cost_header(gw: Gateway) -> None:
    gw.fakes["openai"].enqueue(Reply(input_tokens=5000))
    rid = new_id()
    answer = await post(gw.url + "/embed", {"model": "emb", "input": "alpha"}, openai_headers(rid))
    assert answer.status == 200, answer.raw
    micros = expected_micros(Usage(5000, 0), PRICES["emb"])
    assert Decimal(answer.headers["x-waypost-cost-usd"]) == usd(micros)
    row = (await rows_of(gw, rid)).request
    assert (row["endpoint"], row["client_format"], row["cost_micros"]) == ("embed", "task", micros)


async def test_a_classify_row_and_its_cost_header(gw: Gateway) -> None:
    gw.fakes["openai"].enqueue(Reply(text='{"label": "spam"}', input_tokens=1000, output_tokens=50))
    rid = new_id()
    body = {"model": "openai", "input": "BUY NOW", "labels": ["spam", "ham"]}
    answer = await post(gw.url + "/classify", body, openai_headers(rid))
    assert answer.status == 200, answer.raw
    micros = expected_micros(Usage(1000, 50), PRICES["openai"])
    assert Decimal(answer.headers["x-waypost-cost-usd"]) == usd(micros)
    assert Decimal(str(answer.json()["call"]["cost_usd"])) == usd(micros)
    rows = await rows_of(gw, rid)
    row = rows.request
    assert (row["endpoint"], row["client_format"], row["status"]) == ("classify", "task", 200)
    assert columns_of(row) == token_columns(Usage(1000, 50)) and row["cost_micros"] == micros


async def test_a_classify_asked_twice_costs_both_calls(gw: Gateway) -> None:
    gw.fakes["openai"].enqueue(
        Reply(text="Spam, surely.", input_tokens=1000, output_tokens=50),
        Reply(text='{"label": "ham"}', input_tokens=1100, output_tokens=20),
    )
    rid = new_id()
    body = {"model": "openai", "input": "hello mum", "labels": ["spam", "ham"]}
    answer = await post(gw.url + "/classify", body, openai_headers(rid))
    assert answer.status == 200, answer.raw
    first, second = (expected_micros(u, PRICES["openai"]) for u in (Usage(1000, 50), Usage(1100, 20)))
    assert Decimal(answer.headers["x-waypost-cost-usd"]) == usd(first + second)
    rows = await rows_of(gw, rid)
    assert rows.request["cost_micros"] == first + second
    assert columns_of(rows.request) == token_columns(Usage(2100, 70))
    assert [(a["attempt"], a["status"], a["cost_micros"]) for a in rows.attempts] == [
        (1, 200, first),
        (2, 200, second),
    ]


# -- (6) refused requests have no row; upstream errors have one ---------------------------------


async def test_a_request_with_a_bad_key_has_no_row(gw: Gateway) -> None:
    rid = new_id()
    headers = {"authorization": "Bearer wp-not-a-key-0123456789", "x-request-id": rid}
    answer = await post(gw.url + "/v1/chat/completions", {"model": "openai", "messages": HELLO}, headers)
    assert answer.status == 401
    assert await no_row(gw, rid, then=await ok_request(gw))


@pytest.mark.parametrize(
    "body",
    [
        {"model": "openai", "messages": "not a list"},
        {"model": "openai"},
        {"model": "openai", "messages": HELLO, "max_tokens": "lots"},
    ],
)
async def test_a_request_with_bad_fields_has_no_row(gw: Gateway, body: dict[str, Any]) -> None:
    rid = new_id()
    answer = await post(gw.url + "/v1/chat/completions", body, openai_headers(rid))
    assert answer.status == 400, answer.raw
    assert await no_row(gw, rid, then=await ok_request(gw))


@pytest.mark.parametrize(
    ("status", "gateway_status", "error_class"),
    [(400, 400, "UpstreamBadRequest"), (429, 429, "RateLimited"), (404, 400, "UpstreamBadRequest")],
)
@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_an_upstream_error_has_a_row_with_its_status_and_class(
    gw: Gateway, client: str, status: int, gateway_status: int, error_class: str
) -> None:
    fake = gw.fakes["openai"]
    fake.enqueue(Reply(status=status, error_message="the upstream says no"))
    rid = new_id()
    if client == "openai":
        answer = await post(
            gw.url + "/v1/chat/completions", {"model": "openai", "messages": HELLO}, openai_headers(rid)
        )
    else:
        body = {"model": "openai", "max_tokens": 64, "messages": HELLO}
        answer = await post(gw.url + "/v1/messages", body, anthropic_headers(rid))
    assert answer.status == gateway_status, answer.raw
    rows = await rows_of(gw, rid)
    row = rows.request
    assert row["status"] == gateway_status
    assert row["error_class"] == error_class
    assert "the upstream says no" in row["error_message"]
    assert (row["cost_micros"], row["output_tokens"], row["attempts"]) == (0, 0, 1)
    [attempt] = rows.attempts
    assert (attempt["status"], attempt["cost_micros"]) == (status, 0)
    assert attempt["error_class"] == row["error_class"]


# -- (7) the reports agree with the rows and the callers ----------------------------------------


async def test_the_usage_summary_and_audit_logs_show_the_requests_with_the_same_totals(gw: Gateway) -> None:
    usages = [Usage(1000, 100), Usage(2500, 40, cache_read_tokens=2000), Usage(333, 7)]
    told = Decimal(0)
    ids = []
    for i, u in enumerate(usages):
        reply = Reply(
            text="r",
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
        )
        gw.fakes["openai"].enqueue(reply)
        rid = new_id()
        ids.append(rid)
        body = {"model": "reports", "messages": HELLO, "metadata": {"tags": ["report-check"]}}
        answer = await post(gw.url + "/v1/chat/completions", body | {"stream": i == 1}, openai_headers(rid))
        assert answer.status == 200
        if i != 1:
            told += Decimal(answer.headers["x-waypost-cost-usd"])
    # Without cache_read prices, cache reads cost the input price.
    expected = [expected_micros(u, PRICES["reports"]) for u in usages]
    told += usd(expected[1])
    rows = [(await rows_of(gw, rid)).request for rid in ids]
    total = sum(r["cost_micros"] for r in rows)
    assert [r["cost_micros"] for r in rows] == expected and usd(total) == told

    summary = await admin_get(gw, "/admin/usage/summary", {"group_by": "model", "model": "reports"})
    [group] = summary["data"]
    assert group["model"] == "reports"
    for figures in (group, summary["totals"]):
        assert (figures["requests"], figures["errors"], figures["cost_micros"]) == (3, 0, total)
        assert Decimal(str(figures["cost_usd"])) == usd(total)
        for column in ("input_tokens", "output_tokens", "cache_read_tokens"):
            assert figures[column] == sum(r[column] for r in rows), column

    by_tag = await admin_get(gw, "/admin/usage/summary", {"group_by": "tag", "tag": "report-check"})
    assert [(g["tag"], g["requests"], g["cost_micros"]) for g in by_tag["data"]] == [
        ("report-check", 3, total)
    ]

    logs = await admin_get(gw, "/admin/audit-logs", {"model": "reports"})
    assert {r["client_request_id"] for r in logs["data"]} == set(ids)
    assert sum(r["cost_micros"] for r in logs["data"]) == total
    entry = await admin_get(gw, f"/admin/audit-logs/{ids[1]}")
    assert entry["request"]["cost_micros"] == expected[1]
    assert [a["cost_micros"] for a in entry["attempts"]] == [expected[1]]


async def test_two_requests_sent_with_one_request_id_are_two_rows(gw: Gateway) -> None:
    """The caller's X-Request-ID is echoed, but the audit log keys rows on the gateway's own id:
    a caller cannot hide a request's spend by reusing an id."""
    rid = "reused-request-id-1"
    for _ in range(2):
        gw.fakes["openai"].enqueue(Reply(text="again", input_tokens=10, output_tokens=5))
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                gw.url + "/v1/chat/completions",
                json={"model": "openai", "messages": [{"role": "user", "content": "hi"}]},
                headers=openai_headers(rid),
            ) as resp,
        ):
            assert resp.status == 200 and resp.headers["x-request-id"] == rid
    for _ in range(500):
        await gw.container.audit.flush()
        found = await select(gw, tables.request_log, rid, by_client_id=True)
        if len(found) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(found) == 2
    assert len({row["request_id"] for row in found}) == 2
    assert sum(row["cost_micros"] for row in found) == 2 * found[0]["cost_micros"] > 0
