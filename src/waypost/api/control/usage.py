"""Usage reports and the audit log: /admin/usage/summary, /admin/usage/costs,
/admin/usage/latency, /me/usage and /admin/audit-logs. Every number is read from the audit log's
rows (totals are sums of the costs stored on them); parameters are checked in ``usage_params``
before any query runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from waypost.api.control import usage_params as params
from waypost.api.control.dependencies import ContainerDep, human_principal, requires
from waypost.api.state import Container
from waypost.core.errors import NotFound
from waypost.security.principal import Principal
from waypost.store.usage_latency import LATENCY_METRICS
from waypost.store.usage_reports import GROUP_KEYS, PERIODS, UsageFilter, UsageReport

router = APIRouter()

MICROS_PER_USD = 1_000_000
# The caller's own usage is theirs whatever else they hold; grouping by user or group adds nothing.
MY_GROUP_KEYS = ("model", "provider", "token", "tag", *PERIODS)
MY_FILTERS = ("from", "to", "model", "provider", "token", "tag")
ROW_LIMIT = 1000

From = Annotated[
    str | None,
    Query(
        alias="from",
        description="Start of the time range, inclusive: an ISO 8601 date (midnight UTC) or date-time",
    ),
]
To = Annotated[str | None, Query(description="End of the time range, exclusive (same forms as from)")]
Users = Annotated[list[str] | None, Query(description="Only these users: id or e-mail (repeatable)")]
Groups = Annotated[list[str] | None, Query(description="Only requests of members of these groups")]
Models = Annotated[
    list[str] | None, Query(description="Only these models (the one that served, else the one asked for)")
]
Providers = Annotated[list[str] | None, Query(description="Only these providers")]
Tokens = Annotated[list[str] | None, Query(description="Only requests made with these API token ids")]
Tags = Annotated[list[str] | None, Query(description="Only requests carrying any of these tags")]
GroupBy = Annotated[
    list[str] | None,
    Query(description=f"Group rows by up to 3 of: {', '.join(GROUP_KEYS)} (repeatable or comma-separated)"),
]
Sort = Annotated[
    str | None, Query(description="Sort rows by a metric (e.g. cost_micros, requests) or a grouping key")
]
Order = Annotated[str | None, Query(description="asc or desc (default: desc for a metric, else asc)")]
RowLimit = Annotated[int, Query(ge=1, le=10000, description="At most this many rows")]
# The audit log's own filters (the listing, its CSV export and the latency report share them).
Endpoints = Annotated[list[str] | None, Query(description="Only these endpoints (chat, messages, ...)")]
Statuses = Annotated[list[str] | None, Query(description="ok, error, or HTTP status codes (repeatable)")]
MinCost = Annotated[
    float | None, Query(ge=0, le=1_000_000, description="Only requests that cost at least this (USD)")
]
MinLatency = Annotated[
    float | None, Query(ge=0, le=86_400_000, description="Only requests that took at least this long")
]


def usage_filter(
    start: From = None,
    to: To = None,
    user: Users = None,
    group: Groups = None,
    model: Models = None,
    provider: Providers = None,
    token: Tokens = None,
    tag: Tags = None,
) -> UsageFilter:
    """The filters every usage and audit-log listing takes, validated (a 400 names the parameter)."""
    return params.usage_filter(
        start=start, end=to, user=user, group=group, model=model, provider=provider, token=token, tag=tag
    )


class UsageTotals(BaseModel):
    requests: int
    errors: int  # status 400 and above
    client_errors: int  # status 400 to 499
    server_errors: int  # status 500 and above
    input_tokens: int  # uncached
    output_tokens: int  # reasoning included
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int  # input, cache reads, cache writes and output
    cost_micros: int  # the sum of the stored costs, in micro-dollars
    cost_usd: float
    unpriced: int  # requests whose model had no price
    estimated: int  # requests whose usage was estimated
    cache_hits: int  # answered from the response cache
    cache_misses: int  # looked up, not found, sent upstream
    cache_bypasses: int  # not looked up (not cacheable, or the caller asked not to)
    saved_micros: int  # what the upstream calls that cache hits replaced would have cost
    saved_usd: float


class UsageSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    group_by: list[str]
    start: datetime | None = Field(alias="from")
    end: datetime | None = Field(alias="to")
    totals: UsageTotals
    data: list[dict[str, Any]]  # one row per group: its keys, then the totals' fields
    truncated: bool  # more groups matched than ``limit``


class MyUsage(UsageSummary):
    budgets: list[dict[str, Any]]  # the budgets that apply to the caller, with what remains


class UsageCosts(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    group_by: list[str]
    start: datetime | None = Field(alias="from")
    end: datetime | None = Field(alias="to")
    requests: int
    cost_micros: int
    cost_usd: float
    unpriced: int
    data: list[dict[str, Any]]  # keys, requests, cost_micros, cost_usd, share (of the total), unpriced
    truncated: bool


class AuditLogPage(BaseModel):
    data: list[dict[str, Any]]  # request rows, newest first, without bodies
    next_cursor: str | None  # pass as ``cursor`` for the next page; null on the last one
    has_more: bool


class AuditLogEntry(BaseModel):
    request: dict[str, Any]  # the request's row, bodies included when they were logged
    attempts: list[dict[str, Any]]  # each upstream attempt, in the order they were made


async def remaining_budgets(container: Container, principal: Principal) -> list[dict[str, Any]]:
    """The budgets on ``principal`` (its user, its groups, the calling token, everyone) and what
    remains of each, for ``GET /me/usage`` (pipeline/budget_book.py)."""
    if container.budgets is None:
        return []
    return await container.budgets.remaining(principal)


def _usd(micros: int) -> float:
    return micros / MICROS_PER_USD


def _with_usd(row: dict[str, Any]) -> dict[str, Any]:
    out = {**row, "cost_usd": _usd(row["cost_micros"])}
    if "saved_micros" in row:
        out["saved_usd"] = _usd(row["saved_micros"])
    return out


def _summary(report: UsageReport, group_by: list[str], where: UsageFilter) -> dict[str, Any]:
    return {
        "group_by": group_by,
        "from": where.start,
        "to": where.end,
        "totals": _with_usd(report.totals),
        "data": [_with_usd(row) for row in report.rows],
        "truncated": report.truncated,
    }


@router.get(
    "/admin/usage/summary",
    response_model=UsageSummary,
    tags=["usage"],
    summary="Requests, tokens and spend, grouped and filtered",
)
async def usage_summary(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("usage.view"))],
    where: Annotated[UsageFilter, Depends(usage_filter)],
    group_by: GroupBy = None,
    sort: Sort = None,
    order: Order = None,
    limit: RowLimit = ROW_LIMIT,
) -> dict[str, Any]:
    """Totals over every matching request and, with ``group_by``, one row per group. A request
    with two tags is in both tags' rows and once in the totals. Days, weeks (from Monday) and
    months are in UTC and named by their first day."""
    params.only(request, (*params.FILTERS, "group_by", "sort", "order", "limit"))
    keys = params.group_keys(group_by)
    key = params.sort_key(sort, keys)
    report = await container.store.usage_reports.summary(
        where, keys, sort=key, descending=params.descending(order, key), limit=limit
    )
    return _summary(report, keys, where)


@router.get(
    "/admin/usage/costs",
    response_model=UsageCosts,
    tags=["usage"],
    summary="Spend per group, largest first",
)
async def usage_costs(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("usage.view"))],
    where: Annotated[UsageFilter, Depends(usage_filter)],
    group_by: GroupBy = None,
    order: Order = None,
    limit: RowLimit = ROW_LIMIT,
) -> dict[str, Any]:
    """Who or what spent how much (grouped by model unless ``group_by`` says otherwise), each
    row with its share of the total; sorted by cost, largest first unless ``order=asc``."""
    params.only(request, (*params.FILTERS, "group_by", "order", "limit"))
    keys = params.group_keys(group_by) if group_by else ["model"]
    report = await container.store.usage_reports.summary(
        where, keys, sort="cost_micros", descending=params.descending(order, "cost_micros"), limit=limit
    )
    total = report.totals["cost_micros"]
    data = []
    for row in report.rows:
        item = {k: row[k] for k in row if k not in params.METRICS}
        item.update(
            requests=row["requests"],
            cost_micros=row["cost_micros"],
            cost_usd=_usd(row["cost_micros"]),
            share=row["cost_micros"] / total if total else 0.0,
            unpriced=row["unpriced"],
        )
        data.append(item)
    return {
        "group_by": keys,
        "from": where.start,
        "to": where.end,
        "requests": report.totals["requests"],
        "cost_micros": total,
        "cost_usd": _usd(total),
        "unpriced": report.totals["unpriced"],
        "data": data,
        "truncated": report.truncated,
    }


class LatencyFigures(BaseModel):
    requests: int
    latency_mean_ms: float | None  # from arrival to the last byte; null without requests
    latency_p50_ms: float | None  # nearest-rank percentiles
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    ttft_requests: int  # requests with a time to first byte (streams that got one)
    ttft_mean_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


class UsageLatency(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    group_by: list[str]
    start: datetime | None = Field(alias="from")
    end: datetime | None = Field(alias="to")
    totals: LatencyFigures
    data: list[dict[str, Any]]  # one row per group: its keys, then the totals' fields
    truncated: bool


@router.get(
    "/admin/usage/latency",
    response_model=UsageLatency,
    tags=["usage"],
    summary="Latency (mean, p50, p95, p99, max) and time to first byte, grouped and filtered",
)
async def usage_latency(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("usage.view"))],
    where: Annotated[UsageFilter, Depends(usage_filter)],
    endpoint: Endpoints = None,
    status: Statuses = None,
    group_by: GroupBy = None,
    sort: Annotated[
        str | None, Query(description="Sort rows by a figure (e.g. latency_p95_ms) or a grouping key")
    ] = None,
    order: Order = None,
    limit: RowLimit = ROW_LIMIT,
) -> dict[str, Any]:
    """How long requests took, in milliseconds, over every matching request and per group.
    Percentiles are nearest-rank (the smallest latency that at least p% of the requests do not
    exceed), computed in the database."""
    params.only(request, (*params.LOG_FILTERS, "group_by", "sort", "order", "limit"))
    where = params.narrowed(where, endpoint, status)
    keys = params.group_keys(group_by)
    key = params.sort_key(sort, keys, LATENCY_METRICS)
    report = await container.store.usage_latency.latency(
        where, keys, sort=key, descending=params.descending(order, key, LATENCY_METRICS), limit=limit
    )
    return {
        "group_by": keys,
        "from": where.start,
        "to": where.end,
        "totals": report.totals,
        "data": report.rows,
        "truncated": report.truncated,
    }


@router.get("/me/usage", response_model=MyUsage, tags=["me"], summary="My usage, spend and budgets")
async def my_usage(
    request: Request,
    container: ContainerDep,
    principal: Annotated[Principal, Depends(human_principal)],
    start: From = None,
    to: To = None,
    model: Models = None,
    provider: Providers = None,
    token: Tokens = None,
    tag: Tags = None,
    group_by: Annotated[
        list[str] | None, Query(description=f"Group rows by up to 3 of: {', '.join(MY_GROUP_KEYS)}")
    ] = None,
    sort: Sort = None,
    order: Order = None,
    limit: RowLimit = ROW_LIMIT,
) -> dict[str, Any]:
    """The caller's own requests (every token of theirs), as ``/admin/usage/summary`` reports them,
    and the budgets that apply to them."""
    params.only(request, (*MY_FILTERS, "group_by", "sort", "order", "limit"))
    where = params.usage_filter(start=start, end=to, model=model, provider=provider, token=token, tag=tag)
    mine = replace(where, users=(str(principal.user_id),))
    keys = params.group_keys(group_by, MY_GROUP_KEYS)
    key = params.sort_key(sort, keys)
    report = await container.store.usage_reports.summary(
        mine, keys, sort=key, descending=params.descending(order, key), limit=limit
    )
    return {**_summary(report, keys, mine), "budgets": await remaining_budgets(container, principal)}


@router.get(
    "/admin/audit-logs",
    response_model=AuditLogPage,
    tags=["audit"],
    summary="The audit log: one row per request, newest first",
)
async def audit_logs(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("audit.view"))],
    where: Annotated[UsageFilter, Depends(usage_filter)],
    endpoint: Endpoints = None,
    status: Statuses = None,
    min_cost_usd: MinCost = None,
    min_latency_ms: MinLatency = None,
    cursor: Annotated[str | None, Query(description="The next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Rows per page")] = 50,
) -> dict[str, Any]:
    """Pages follow one another by ``next_cursor``, newest request first; rows written while
    paging never make a row repeat or vanish from the pages still to come."""
    params.only(request, (*params.AUDIT_FILTERS, "cursor", "limit"))
    where = params.narrowed(where, endpoint, status, min_cost_usd, min_latency_ms)
    after = params.decode_cursor(cursor)
    page = await container.store.usage_reports.log(where, limit=limit, after=after)
    return {
        "data": [_with_usd(row) for row in page.rows],
        "next_cursor": params.encode_cursor(page.next) if page.next is not None else None,
        "has_more": page.next is not None,
    }


@router.get(
    "/admin/audit-logs/{request_id}",
    response_model=AuditLogEntry,
    tags=["audit"],
    summary="One request: its row, its bodies when they were logged, and every upstream attempt",
)
async def audit_log_entry(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("audit.view"))],
    request_id: Annotated[
        str,
        Path(
            max_length=128,
            description="The request's id, or the X-Request-ID its caller sent (its latest request)",
        ),
    ],
) -> dict[str, Any]:
    params.only(request, ())
    detail = await container.store.usage_reports.request(request_id)
    if detail is None:
        raise NotFound(f"no request {request_id!r} in the audit log")
    attempts = detail.pop("attempt_rows")
    return {"request": _with_usd(detail), "attempts": [_with_usd(a) for a in attempts]}
