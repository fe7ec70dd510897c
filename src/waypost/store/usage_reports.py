"""Reports over the audit log: usage and spend grouped and filtered, and the log's rows themselves.

Everything here reads ``request_log`` (one row per request), ``request_labels`` (its tags and its
user's groups, one row each) and ``request_attempts``. Totals are sums of the costs stored on the
rows, never recomputed from prices. The SQL is portable: time buckets are the only per-backend
expressions, and every value from a caller is a bound parameter; names (grouping keys, sort keys)
are looked up in fixed tables here, so nothing a caller sends becomes SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from waypost.store import tables
from waypost.store.repository import Repository

_log, _labels, _attempts = tables.request_log, tables.request_labels, tables.request_attempts

PERIODS = ("day", "week", "month")
GROUP_KEYS = ("user", "group", "model", "provider", "token", "tag", *PERIODS)
"""What rows may be grouped by."""

METRICS = (
    "requests",
    "errors",
    "client_errors",
    "server_errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_micros",
    "unpriced",
    "estimated",
    "cache_hits",
    "cache_misses",
    "cache_bypasses",
    "saved_micros",
)
"""What each row of a summary counts (and what it may be sorted by, besides its grouping keys)."""

# The output column(s) each grouping key gives a row: a user is its id and its e-mail.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "user": ("user_id", "user_email"),
    "group": ("group",),
    "model": ("model",),
    "provider": ("provider",),
    "token": ("token_id",),
    "tag": ("tag",),
    "day": ("day",),
    "week": ("week",),
    "month": ("month",),
}

# Audit-log rows leave the bodies out: they can be large, and the detail view shows them.
_BODIES = ("request_body", "response_body")
_LOG_COLUMNS = [c for c in _log.c if c.name not in _BODIES]


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which requests count. Empty tuples mean "any"; values within one field are alternatives."""

    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    users: tuple[str, ...] = ()  # user ids (digits) or e-mails
    groups: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # the model that served, else the one requested
    providers: tuple[str, ...] = ()
    tokens: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    statuses: tuple[int, ...] = ()
    outcome: str | None = None  # "ok" (status < 400) or "error"
    min_cost_micros: int | None = None  # the audit log's own filters: requests that cost at least
    min_latency_ms: float | None = None  # this much, or took at least this long


@dataclass(frozen=True, slots=True)
class UsageReport:
    rows: list[dict[str, Any]]
    totals: dict[str, int]
    truncated: bool = False  # more groups matched than the limit


@dataclass(frozen=True, slots=True)
class LogCursor:
    """Where a page of the audit log ends: rows come newest first, by (created_at, id)."""

    created_at: datetime
    id: int


@dataclass(frozen=True, slots=True)
class LogPage:
    rows: list[dict[str, Any]]
    next: LogCursor | None = None  # None: this is the last page


def _model() -> sa.ColumnElement[Any]:
    return sa.func.coalesce(_log.c.model, _log.c.requested_model)


def _sum(expr: sa.ColumnElement[Any], name: str) -> sa.Label[Any]:
    return sa.func.coalesce(sa.func.sum(expr), 0).label(name)


def _count_if(condition: sa.ColumnElement[bool], name: str) -> sa.Label[Any]:
    return _sum(sa.case((condition, 1), else_=0), name)


def _metrics() -> list[sa.Label[Any]]:
    return [
        sa.func.count(_log.c.id).label("requests"),
        _count_if(_log.c.status >= 400, "errors"),
        _count_if(sa.and_(_log.c.status >= 400, _log.c.status < 500), "client_errors"),
        _count_if(_log.c.status >= 500, "server_errors"),
        _sum(_log.c.input_tokens, "input_tokens"),
        _sum(_log.c.output_tokens, "output_tokens"),
        _sum(_log.c.cache_read_tokens, "cache_read_tokens"),
        _sum(_log.c.cache_write_tokens, "cache_write_tokens"),
        _sum(_log.c.reasoning_tokens, "reasoning_tokens"),
        _sum(
            _log.c.input_tokens + _log.c.cache_read_tokens + _log.c.cache_write_tokens + _log.c.output_tokens,
            "total_tokens",
        ),
        _sum(_log.c.cost_micros, "cost_micros"),
        _count_if(_log.c.priced == sa.false(), "unpriced"),
        _count_if(_log.c.usage_estimated == sa.true(), "estimated"),
        # The response cache's verdicts (null where the cache stage did not run).
        _count_if(_log.c.cache_status == "hit", "cache_hits"),
        _count_if(_log.c.cache_status == "miss", "cache_misses"),
        _count_if(_log.c.cache_status == "bypass", "cache_bypasses"),
        _sum(_log.c.saved_micros, "saved_micros"),
    ]


def _const(text: str) -> sa.ColumnElement[Any]:
    """A constant written into the SQL (only ever our own text), so the same expression in the
    select list and in GROUP BY is textually identical, as PostgreSQL requires."""
    return sa.literal_column(text)


def _bucket(period: str, dialect: str) -> sa.ColumnElement[Any]:
    """The first day of the request's day, ISO week (from Monday) or month, in UTC, as
    ``YYYY-MM-DD`` text on both backends."""
    created = _log.c.created_at
    if dialect == "postgresql":
        utc = sa.func.timezone(_const("'UTC'"), created)
        start = sa.func.date_trunc(_const(f"'{period}'"), utc)
        return sa.func.to_char(start, _const("'YYYY-MM-DD'"))
    # SQLite keeps UTC wall time as fixed-width text: 'YYYY-MM-DD HH:MM:SS.ffffff'.
    if period == "day":
        return sa.func.substr(created, _const("1"), _const("10"))
    if period == "month":
        return sa.func.substr(created, _const("1"), _const("7")).concat(_const("'-01'"))
    # 'weekday 0' moves forward to Sunday (or stays on one); six days back is that week's Monday.
    return sa.func.date(created, _const("'weekday 0'"), _const("'-6 days'"))


def _has_label(kind: str, values: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.exists(
        sa.select(_const("1")).where(
            _labels.c.request_id == _log.c.request_id,
            _labels.c.kind == kind,
            _labels.c.value.in_(list(values)),
        )
    )


def conditions(where: UsageFilter) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of ``where`` over ``request_log`` (all bound parameters)."""
    out: list[sa.ColumnElement[bool]] = []
    if where.start is not None:
        out.append(_log.c.created_at >= where.start)
    if where.end is not None:
        out.append(_log.c.created_at < where.end)
    if where.users:
        ids = [int(u) for u in where.users if u.isdigit()]
        emails = [u.lower() for u in where.users if not u.isdigit()]
        out.append(sa.or_(_log.c.user_id.in_(ids), sa.func.lower(_log.c.user_email).in_(emails)))
    if where.groups:
        out.append(_has_label("group", where.groups))
    if where.tags:
        out.append(_has_label("tag", where.tags))
    if where.models:
        out.append(_model().in_(list(where.models)))
    if where.providers:
        out.append(_log.c.provider.in_(list(where.providers)))
    if where.tokens:
        out.append(_log.c.token_id.in_(list(where.tokens)))
    if where.endpoints:
        out.append(_log.c.endpoint.in_(list(where.endpoints)))
    if where.statuses:
        out.append(_log.c.status.in_(list(where.statuses)))
    if where.outcome == "ok":
        out.append(_log.c.status < 400)
    elif where.outcome == "error":
        out.append(_log.c.status >= 400)
    if where.min_cost_micros is not None:
        out.append(_log.c.cost_micros >= where.min_cost_micros)
    if where.min_latency_ms is not None:
        out.append(_log.c.latency_ms >= where.min_latency_ms)
    return out


def grouping(
    where: UsageFilter, group_by: Sequence[str], dialect: str
) -> tuple[sa.FromClause, dict[str, sa.Label[Any]]]:
    """What a grouped report selects from (``request_log``, joined to its labels when grouped by
    group or tag) and, per key, the labelled expression it is grouped by."""
    source: sa.FromClause = _log
    keys: dict[str, sa.Label[Any]] = {}
    for key in group_by:
        if key in ("group", "tag"):
            label = _labels.alias(f"{key}_label")
            joined = [label.c.request_id == _log.c.request_id, label.c.kind == key]
            # Filtered by tag and grouped by tag: only the tags asked for get rows.
            wanted = where.groups if key == "group" else where.tags
            if wanted:
                joined.append(label.c.value.in_(list(wanted)))
            source = source.outerjoin(label, sa.and_(*joined))
            keys[key] = label.c.value.label(key)
        elif key == "user":
            keys[key] = _log.c.user_id.label("user_id")
        elif key == "model":
            keys[key] = _model().label("model")
        elif key == "provider":
            keys[key] = _log.c.provider.label("provider")
        elif key == "token":
            keys[key] = _log.c.token_id.label("token_id")
        else:
            keys[key] = _bucket(key, dialect).label(key)
    return source, keys


def _int(value: Any) -> int:
    # PostgreSQL sums BIGINTs as NUMERIC (a Decimal here); both backends give NULL for no rows.
    return int(value) if value is not None else 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value)
    return value


class UsageReportRepo(Repository):
    """Read-only queries for /admin/usage, /me/usage and /admin/audit-logs."""

    async def summary(
        self,
        where: UsageFilter,
        group_by: Sequence[str] = (),
        *,
        sort: str | None = None,
        descending: bool = False,
        limit: int = 1000,
    ) -> UsageReport:
        """One row per combination of ``group_by`` keys (none: no rows, only totals), and the
        totals over every matching request. A request with two tags counts in both tags' rows but
        once in the totals; a request without any is in the row whose ``tag`` is null.

        ``sort`` is a metric or one of ``group_by``; ties and the default go by the keys in order."""
        unknown = [k for k in group_by if k not in GROUP_KEYS]
        if unknown or (sort is not None and sort not in METRICS and sort not in group_by):
            raise ValueError(f"unknown grouping or sort key: {unknown or sort}")  # checked by callers
        where_clauses = conditions(where)
        async with self._read() as conn:
            totals_row = (await conn.execute(sa.select(*_metrics()).where(*where_clauses))).one()
            totals = {name: _int(totals_row._mapping[name]) for name in METRICS}
            if not group_by:
                return UsageReport([], totals)
            metrics = {m.name: m for m in _metrics()}
            query, keys = self._grouped(where, group_by, conn.dialect.name, list(metrics.values()))
            query = query.where(*where_clauses)
            order: list[Any] = []
            if sort is not None:
                first = keys.get(sort, metrics.get(sort))
                assert first is not None
                order.append(sa.nulls_last(first.desc() if descending else first.asc()))
            order += [sa.nulls_last(keys[k].asc()) for k in group_by]
            rows = (await conn.execute(query.order_by(*order).limit(limit + 1))).all()
        out = []
        for row in rows[:limit]:
            mapping = row._mapping
            item: dict[str, Any] = {}
            for key in group_by:
                for column in KEY_COLUMNS[key]:
                    item[column] = _jsonable(mapping[column])
            item.update({name: _int(mapping[name]) for name in METRICS})
            out.append(item)
        return UsageReport(out, totals, truncated=len(rows) > limit)

    def _grouped(
        self, where: UsageFilter, group_by: Sequence[str], dialect: str, metrics: list[sa.Label[Any]]
    ) -> tuple[sa.Select[Any], dict[str, sa.Label[Any]]]:
        """The grouped select (no WHERE yet) and, per key, the expression it is grouped by."""
        source, keys = grouping(where, group_by, dialect)
        # A user's row names the user by id; the e-mail is the latest one logged for that id.
        extra = [sa.func.max(_log.c.user_email).label("user_email")] if "user" in keys else []
        query = (
            sa.select(*keys.values(), *extra, *metrics)
            .select_from(source)
            # The expressions, not the labels: PostgreSQL reads a GROUP BY name as a table column
            # first, and "model" is one.
            .group_by(*(k.element for k in keys.values()))
        )
        return query, keys

    async def log(self, where: UsageFilter, *, limit: int = 50, after: LogCursor | None = None) -> LogPage:
        """A page of request rows, newest first (bodies left out), and the cursor of the next."""
        clauses = conditions(where)
        if after is not None:
            clauses.append(
                sa.or_(
                    _log.c.created_at < after.created_at,
                    sa.and_(_log.c.created_at == after.created_at, _log.c.id < after.id),
                )
            )
        query = (
            sa.select(*_LOG_COLUMNS)
            .where(*clauses)
            .order_by(_log.c.created_at.desc(), _log.c.id.desc())
            .limit(limit + 1)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        page = [dict(row._mapping) for row in rows[:limit]]
        following = None
        if len(rows) > limit:
            last = page[-1]
            following = LogCursor(last["created_at"], last["id"])
        return LogPage(page, following)

    async def request(self, request_id: str) -> dict[str, Any] | None:
        """One request's row with its bodies (if they were logged) and its attempts, in order."""
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_log).where(_log.c.request_id == request_id))).one_or_none()
            if row is None:  # the caller's own X-Request-ID: its latest request
                row = (
                    await conn.execute(
                        sa.select(_log)
                        .where(_log.c.client_request_id == request_id)
                        .order_by(_log.c.created_at.desc(), _log.c.id.desc())
                        .limit(1)
                    )
                ).one_or_none()
            if row is None:
                return None
            attempts = (
                await conn.execute(
                    sa.select(_attempts)
                    .where(_attempts.c.request_id == row.request_id)
                    .order_by(_attempts.c.attempt)
                )
            ).all()
        detail = dict(row._mapping)
        detail["attempt_rows"] = [dict(a._mapping) for a in attempts]
        return detail
