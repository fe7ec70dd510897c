"""``GET /admin/usage/summary.csv``: the usage summary's rows as CSV, built by the server.

The same filters, grouping and sort as ``GET /admin/usage/summary``, with every group up to
``limit`` (100,000 by default, not the listing's 1,000), so an export is the whole report and not
the page a browser happened to show. The database groups the rows; they are written out a
thousand at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import StreamingResponse

from waypost.api.control import usage_params as params
from waypost.api.control.audit_export import csv_cell, csv_lines
from waypost.api.control.dependencies import ContainerDep, requires
from waypost.api.control.usage import MICROS_PER_USD, GroupBy, Order, Sort, usage_filter
from waypost.security.principal import Principal
from waypost.store.usage_reports import UsageFilter

router = APIRouter()
CHUNK = 1000
MAX_GROUPS = 1_000_000


def _with_usd(row: dict[str, Any]) -> dict[str, Any]:
    out = {**row, "cost_usd": row["cost_micros"] / MICROS_PER_USD}
    if "saved_micros" in row:
        out["saved_usd"] = row["saved_micros"] / MICROS_PER_USD
    return out


@router.get(
    "/admin/usage/summary.csv",
    tags=["usage"],
    summary="Export the usage summary's rows as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_usage_summary(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("usage.view"))],
    where: Annotated[UsageFilter, Depends(usage_filter)],
    group_by: GroupBy = None,
    sort: Sort = None,
    order: Order = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS, description="Groups at most")] = 100_000,
) -> StreamingResponse:
    """One line per group (none without ``group_by``: then one line of totals)."""
    params.only(request, (*params.FILTERS, "group_by", "sort", "order", "limit"))
    keys = params.group_keys(group_by)
    key = params.sort_key(sort, keys)
    report = await container.store.usage_reports.summary(
        where, keys, sort=key, descending=params.descending(order, key), limit=limit
    )
    rows = [_with_usd(r) for r in report.rows] if keys else [_with_usd(dict(report.totals))]

    async def lines() -> AsyncIterator[str]:
        header = list(rows[0]) if rows else [*keys, "requests", "cost_usd"]
        yield csv_lines([header])
        for start in range(0, len(rows), CHUNK):
            yield csv_lines([[csv_cell(r.get(k)) for k in header] for r in rows[start : start + CHUNK]])
        if report.truncated:
            yield f"# cut at limit={limit}\r\n"

    headers = {"content-disposition": 'attachment; filename="waypost-usage.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)
