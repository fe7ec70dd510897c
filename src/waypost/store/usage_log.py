"""Writing the audit log: request rows, their upstream attempts and their labels (tags, groups),
inserted in batches by the audit writer (``metering/audit.py``), and deleted past retention.

A JSON column's value in a row may be its JSON text (a ``str``: what the metering stage hands
over, so that the rows it queues hold no containers) or the value itself. No JSON column of these
tables holds a bare string, so the two cannot be confused.

Inserts are idempotent on both backends (``INSERT ... ON CONFLICT DO NOTHING`` on the unique
``request_id``, ``(request_id, attempt)`` and the labels' primary key): a batch written again —
replayed from the spool after a commit whose answer was lost — adds nothing the second time.
"""

from __future__ import annotations

import asyncio
import operator
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from waypost.store import tables
from waypost.store.repository import Repository, insert_ignoring_duplicates
from waypost.store.tables import UtcDateTime

Row = Mapping[str, Any]

_log, _attempts, _labels = tables.request_log, tables.request_attempts, tables.request_labels
_COLUMNS = {table.name: frozenset(c.name for c in table.c) for table in (_log, _attempts, _labels)}
_JSON_COLUMNS = {
    table.name: [c.name for c in table.c if isinstance(c.type, sa.JSON)]
    for table in (_log, _attempts, _labels)
}
PING_TIMEOUT = 3.0  # seconds
SLICE = 64  # rows converted and handed to the driver at a time
# Parameters one SQLite statement may have (SQLITE_MAX_VARIABLE_NUMBER: 999 before 3.32).
SQLITE_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


class UsageLogRepo(Repository):
    async def insert(self, requests: Sequence[Row], attempts: Sequence[Row], labels: Sequence[Row]) -> None:
        """Write the rows in one transaction; rows already there (same keys) are left as they are.
        A row's keys are column names; keys that are not columns raise ``ValueError``."""
        async with self._write() as conn:
            driver: Any = None
            for table, rows in ((_log, requests), (_attempts, attempts), (_labels, labels)):
                # One statement per distinct set of keys: an executemany takes its columns from the
                # first row, and a row that leaves a column out gets the column's default.
                for group in _by_keys(table, rows):
                    fast = _FAST[table.name]
                    if frozenset(group[0]) == fast.keys:
                        # Rows as the metering stage makes them (every column): straight to the
                        # driver, values converted here, without the per-row work of SQLAlchemy's
                        # bind processing (the audit log's cost on the request path).
                        if driver is None:
                            if conn.dialect.name == "postgresql":
                                # SQLAlchemy's asyncpg adapter opens its transaction at the first
                                # statement it runs: run one, so the driver's inserts are in it.
                                await conn.execute(sa.text("SELECT 1"))
                            driver = (await conn.get_raw_connection()).driver_connection
                        await fast.execute(driver, conn.dialect.name, group)
                    else:
                        await conn.execute(insert_ignoring_duplicates(conn, table), _decoded(table, group))

    async def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` requests that arrived before ``cutoff``, with their attempts and
        labels, in one short transaction. Returns how many requests went; repeat until it is
        fewer than ``limit``."""
        async with self._write() as conn:
            old = sa.select(_log.c.id, _log.c.request_id).where(_log.c.created_at < cutoff)
            rows = (await conn.execute(old.order_by(_log.c.id).limit(limit))).all()
            if not rows:
                return 0
            rids = [row.request_id for row in rows]
            await conn.execute(sa.delete(_attempts).where(_attempts.c.request_id.in_(rids)))
            await conn.execute(sa.delete(_labels).where(_labels.c.request_id.in_(rids)))
            await conn.execute(sa.delete(_log).where(_log.c.id.in_([row.id for row in rows])))
        return len(rows)

    async def reachable(self) -> bool:
        """Whether the database answers ``SELECT 1`` within a few seconds."""
        try:
            async with asyncio.timeout(PING_TIMEOUT), self._engine.connect() as conn:
                await conn.execute(sa.select(1))
        except Exception:
            return False
        return True


class _FastInsert:
    """``INSERT ... ON CONFLICT DO NOTHING`` of whole rows through the driver's own executemany,
    storing exactly what the SQLAlchemy types would: UTC timestamps (SQLite: text in SQLAlchemy's
    format), JSON as text, booleans as the backend's."""

    def __init__(self, table: sa.Table) -> None:
        self.columns = [c.name for c in table.c if c.name != "id"]
        self.keys = frozenset(self.columns)
        names = ", ".join(f'"{c}"' for c in self.columns)
        self._sql = {
            "sqlite": f"INSERT INTO {table.name} ({names}) VALUES "
            f"({', '.join('?' for _ in self.columns)}) ON CONFLICT DO NOTHING",
            "postgresql": f"INSERT INTO {table.name} ({names}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(self.columns)))}) ON CONFLICT DO NOTHING",
        }
        kinds = []
        for name in self.columns:
            column_type = table.c[name].type
            if isinstance(column_type, UtcDateTime):
                kinds.append(_WHEN)
            elif isinstance(column_type, sa.JSON):
                kinds.append(_JSON)
            elif isinstance(column_type, sa.Boolean):
                kinds.append(_BOOL)
            else:
                kinds.append(_PLAIN)
        self._special = [(i, kind) for i, kind in enumerate(kinds) if kind != _PLAIN]
        self._take = operator.itemgetter(*self.columns)
        self._names = names
        self._table = table.name
        self._multi: dict[int, str] = {}  # SQLite: the statement inserting that many rows

    def _sqlite_rows(self, count: int) -> str:
        """One SQLite statement inserting ``count`` rows: the driver steps it once, where an
        executemany steps (and hands the interpreter lock back and forth) once per row."""
        sql = self._multi.get(count)
        if sql is None:
            one = f"({', '.join('?' for _ in self.columns)})"
            sql = self._multi[count] = (
                f"INSERT INTO {self._table} ({self._names}) VALUES {', '.join([one] * count)} "
                "ON CONFLICT DO NOTHING"
            )
        return sql

    async def execute(self, driver: Any, dialect: str, rows: Sequence[Row]) -> None:
        """Insert ``rows`` in slices of ``SLICE``: converting a slice holds the event loop for
        about a millisecond, and the driver's awaited ``executemany`` between slices lets the
        requests in flight run (converting a whole batch of 500 at once stalled them all for
        several milliseconds: a p99 spike at every flush)."""
        for start in range(0, len(rows), SLICE):
            await self._execute(driver, dialect, rows[start : start + SLICE])

    async def _execute(self, driver: Any, dialect: str, rows: Sequence[Row]) -> None:
        values = self.driver_values(rows, sqlite=dialect == "sqlite")
        if dialect == "sqlite":
            for sql, params in self.sqlite_statements(values):
                await driver.execute(sql, params)
        else:
            await driver.executemany(self._sql[dialect], values)

    def driver_values(self, rows: Sequence[Row], *, sqlite: bool) -> list[list[Any]]:
        """Each row's values in column order, as the driver takes them."""
        special = self._special
        take = self._take
        values = []
        for row in rows:
            out = list(take(row))  # every column's value in order, in one C call
            for i, kind in special:  # then the few that need converting
                value = out[i]
                if value is None:
                    continue
                if kind == _JSON:
                    if type(value) is not str:  # else JSON text already (see the module's doc)
                        out[i] = orjson.dumps(value).decode()
                elif kind == _WHEN:
                    zone = value.tzinfo
                    if zone is not UTC:  # the metering stage's are UTC already
                        value = value.replace(tzinfo=UTC) if zone is None else value.astimezone(UTC)
                    # SQLAlchemy's SQLite text form, "%Y-%m-%d %H:%M:%S.%f": isoformat's first
                    # 26 characters (C, several times faster than strftime; microseconds always).
                    out[i] = value.isoformat(" ", "microseconds")[:26] if sqlite else value
                else:
                    out[i] = int(value) if sqlite else bool(value)
            values.append(out)
        return values

    def sqlite_statements(self, values: Sequence[list[Any]]) -> Iterator[tuple[str, list[Any]]]:
        """SQLite: as many rows per statement as its parameter limit allows."""
        per = max(1, SQLITE_VARIABLES // len(self.columns))
        for start in range(0, len(values), per):
            part = values[start : start + per]
            yield self._sqlite_rows(len(part)), [v for row in part for v in row]


_PLAIN, _JSON, _WHEN, _BOOL = range(4)
_FAST = {table.name: _FastInsert(table) for table in (_log, _attempts, _labels)}


def _decoded(table: sa.Table, rows: Sequence[Row]) -> list[Row]:
    """``rows`` for SQLAlchemy's insert, whose JSON type encodes values itself: JSON text decoded."""
    names = _JSON_COLUMNS[table.name]
    out = []
    for row in rows:
        text = {n: orjson.loads(row[n]) for n in names if type(row.get(n)) is str}
        out.append({**row, **text} if text else row)
    return out


def _by_keys(table: sa.Table, rows: Sequence[Row]) -> list[list[Row]]:
    columns = _COLUMNS[table.name]
    fast = _FAST[table.name].keys
    # The usual batch: every row as the metering stage makes it, with every column but the id
    # (a cheap test of each row's keys against a set, not a set built from each).
    if all(len(row) == len(fast) and fast.issuperset(row) for row in rows):
        return [list(rows)] if rows else []
    groups: dict[frozenset[str], list[Row]] = {}
    for row in rows:
        keys = frozenset(row)
        if not keys <= columns:
            unknown = ", ".join(sorted(keys - columns))
            raise ValueError(f"{table.name} has no column(s) {unknown}")
        groups.setdefault(keys, []).append(row)
    return list(groups.values())
