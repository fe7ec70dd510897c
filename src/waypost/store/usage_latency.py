"""Latency over the audit log: mean, percentiles and maximum of ``request_log.latency_ms`` (and of
``ttft_ms``, a stream's time to first byte), for every matching request or per group.

Percentiles are nearest-rank, computed in SQL on both backends without per-backend functions
(SQLite has no ``percentile_cont``): a window ranks each group's requests by latency, and the p-th
percentile is the value whose rank is the first r with ``100 * r >= p * n``. Only one row per
group leaves the database. Ranking sorts the matching rows, so the cost grows with the range asked
for, as any report's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from waypost.store import tables
from waypost.store.repository import Repository
from waypost.store.usage_reports import GROUP_KEYS, KEY_COLUMNS, UsageFilter, conditions, grouping

_log = tables.request_log

PERCENTILES = (50, 95, 99)
TTFT_PERCENTILES = (50, 95)
LATENCY_METRICS = (
    "requests",
    "latency_mean_ms",
    *(f"latency_p{p}_ms" for p in PERCENTILES),
    "latency_max_ms",
    "ttft_requests",
    "ttft_mean_ms",
    *(f"ttft_p{p}_ms" for p in TTFT_PERCENTILES),
)
"""What each row of a latency report holds (and what it may be sorted by, besides its keys)."""


@dataclass(frozen=True, slots=True)
class LatencyReport:
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    truncated: bool = False


def _at_rank(rank: Any, count: Any, percent: int) -> sa.ColumnElement[bool]:
    """True for the nearest-rank ``percent``-th value: the first rank r with 100 r >= percent n
    (integer arithmetic only, so both backends agree exactly)."""
    return sa.and_(count > 0, rank * 100 >= count * percent, (rank - 1) * 100 < count * percent)


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)


def _ranked(where: UsageFilter, group_by: Sequence[str], dialect: str) -> tuple[sa.Subquery, list[str]]:
    """Every matching request (once per group it is in) with its group's keys, its latencies and
    their ranks within the group; and the subquery's key column names."""
    source, keys = grouping(where, group_by, dialect)
    partition = [k.element for k in keys.values()]
    # A stream without a first byte has no ttft: those rows rank after every timed one.
    untimed = sa.case((_log.c.ttft_ms.is_(None), 1), else_=0)
    columns: list[Any] = [
        *keys.values(),
        _log.c.latency_ms.label("latency"),
        _log.c.ttft_ms.label("ttft"),
        sa.func.row_number().over(partition_by=partition, order_by=_log.c.latency_ms).label("rank"),
        sa.func.count(_log.c.id).over(partition_by=partition).label("n"),
        sa.func.row_number()
        .over(partition_by=partition, order_by=[untimed, _log.c.ttft_ms])
        .label("ttft_rank"),
        sa.func.count(_log.c.ttft_ms).over(partition_by=partition).label("ttft_n"),
    ]
    if "user" in keys:
        columns.append(_log.c.user_email.label("user_email"))
    query = sa.select(*columns).select_from(source).where(*conditions(where))
    return query.subquery("ranked"), [k.name for k in keys.values()]


def _aggregates(ranked: sa.Subquery) -> list[sa.Label[Any]]:
    c = ranked.c
    return [
        sa.func.count().label("requests"),
        sa.func.avg(c.latency).label("latency_mean_ms"),
        *(
            sa.func.max(sa.case((_at_rank(c.rank, c.n, p), c.latency))).label(f"latency_p{p}_ms")
            for p in PERCENTILES
        ),
        sa.func.max(c.latency).label("latency_max_ms"),
        sa.func.count(c.ttft).label("ttft_requests"),
        sa.func.avg(c.ttft).label("ttft_mean_ms"),
        *(
            sa.func.max(sa.case((_at_rank(c.ttft_rank, c.ttft_n, p), c.ttft))).label(f"ttft_p{p}_ms")
            for p in TTFT_PERCENTILES
        ),
    ]


def _figures(mapping: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in LATENCY_METRICS:
        value = mapping[name]
        out[name] = int(value or 0) if name in ("requests", "ttft_requests") else _ms(value)
    return out


class LatencyReportRepo(Repository):
    """Read-only latency figures for /admin/usage/latency."""

    async def latency(
        self,
        where: UsageFilter,
        group_by: Sequence[str] = (),
        *,
        sort: str | None = None,
        descending: bool = False,
        limit: int = 1000,
    ) -> LatencyReport:
        """The figures over every matching request and, with ``group_by``, per group (a request
        with two tags is in both tags' rows, once in the totals). ``sort`` is a figure or a key;
        ties and the default go by the keys in order."""
        unknown = [k for k in group_by if k not in GROUP_KEYS]
        if unknown or (sort is not None and sort not in LATENCY_METRICS and sort not in group_by):
            raise ValueError(f"unknown grouping or sort key: {unknown or sort}")  # checked by callers
        async with self._read() as conn:
            dialect = conn.dialect.name
            overall, _ = _ranked(where, (), dialect)
            totals = _figures((await conn.execute(sa.select(*_aggregates(overall)))).one()._mapping)
            if not group_by:
                return LatencyReport([], totals)
            ranked, names = _ranked(where, group_by, dialect)
            figures = {f.name: f for f in _aggregates(ranked)}
            key_columns = {key: ranked.c[name] for key, name in zip(group_by, names, strict=True)}
            extra = [sa.func.max(ranked.c.user_email).label("user_email")] if "user" in group_by else []
            order: list[Any] = []
            if sort is not None:
                first = key_columns[sort] if sort in key_columns else figures[sort]
                order.append(sa.nulls_last(first.desc() if descending else first.asc()))
            order += [sa.nulls_last(key_columns[k].asc()) for k in group_by]
            query = (
                sa.select(*key_columns.values(), *extra, *figures.values())
                .group_by(*key_columns.values())
                .order_by(*order)
                .limit(limit + 1)
            )
            rows = (await conn.execute(query)).all()
        out = []
        for row in rows[:limit]:
            mapping = row._mapping
            item: dict[str, Any] = {}
            for key in group_by:
                for column in KEY_COLUMNS[key]:
                    item[column] = mapping[column]
            item.update(_figures(mapping))
            out.append(item)
        return LatencyReport(out, totals, truncated=len(rows) > limit)
