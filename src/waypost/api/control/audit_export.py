"""``GET /admin/audit-logs.csv``: the audit log's request rows as CSV, streamed by the server.

The same filters as the listing (``GET /admin/audit-logs``), newest first, read a thousand rows
at a time by cursor so that an export of any size holds one page in memory; ``max_rows`` bounds
it (the last line says when it was cut). Bodies are never exported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import StreamingResponse

from waypost.api.control import usage_params as params
from waypost.api.control.dependencies import ContainerDep, requires
from waypost.api.control.usage import Endpoints, MinCost, MinLatency, Statuses, usage_filter
from waypost.security.principal import Principal
from waypost.store.usage_reports import UsageFilter

router = APIRouter()
PAGE = 1000
MAX_ROWS = 1_000_000


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell: lists joined with ``;``, nothing for null."""
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return "" if value is None else value


def csv_lines(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


@router.get(
    "/admin/audit-logs.csv",
    tags=["audit"],
    summary="Export request rows as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_audit_log(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("audit.view"))],
    where: Annotated[UsageFilter, Depends(usage_filter)],
    endpoint: Endpoints = None,
    status: Statuses = None,
    min_cost_usd: MinCost = None,
    min_latency_ms: MinLatency = None,
    max_rows: Annotated[int, Query(ge=1, le=MAX_ROWS, description="Rows at most")] = 100_000,
) -> StreamingResponse:
    params.only(request, (*params.AUDIT_FILTERS, "max_rows"))
    narrowed = params.narrowed(where, endpoint, status, min_cost_usd, min_latency_ms)
    reports = container.store.usage_reports

    async def lines() -> AsyncIterator[str]:
        header: list[str] | None = None
        sent = 0
        after = None
        while sent < max_rows:
            page = await reports.log(narrowed, limit=min(PAGE, max_rows - sent), after=after)
            rows = [{**r, "cost_usd": r["cost_micros"] / 1_000_000} for r in page.rows]
            if header is None:
                header = list(rows[0]) if rows else ["request_id"]
                yield csv_lines([header])
            if rows:
                yield csv_lines([[csv_cell(r.get(k)) for k in header] for r in rows])
            sent += len(rows)
            if page.next is None:
                return
            after = page.next
        yield f"# cut at max_rows={max_rows}\r\n"

    headers = {"content-disposition": 'attachment; filename="waypost-audit-log.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)
