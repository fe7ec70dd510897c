"""Writing the audit log: request rows, their upstream attempts and their labels (tags, groups),
inserted in batches by the audit writer (``metering/audit.py``), and deleted past retention.

A JSON column's value in a row may be its JSON text (a ``str``: what the metering stage hands
over, so that the rows it queues hold no containers) or the value itself. No JSON column of these
tables holds a bare string, so the two cannot be confused. A time may be a ``datetime`` or a Unix
time (a ``float``: what the metering stage hands over; converted here, a batch at a time, where
most rows share their second and its text is made once).

Inserts are idempotent on both backends (``INSERT ... ON CONFLICT DO NOTHING`` on the unique
``request_id``, ``(request_id, attempt)`` and the labels' primary key): a batch written again —
replayed from the spool after a commit whose answer was lost — adds nothing the second time.
"""

from __future__ import annotations

import asyncio
import operator
import sqlite3
import time
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
_TIME_COLUMNS = {
    table.name: [c.name for c in table.c if isinstance(c.type, UtcDateTime)]
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
                for group, whole, ordered in _by_keys(table, rows):
                    if whole:
                        # Rows as the metering stage makes them (every column): straight to the
                        # driver, values converted here, without the per-row work of SQLAlchemy's
                        # bind processing (the audit log's cost on the request path).
                        if driver is None:
                            if conn.dialect.name == "postgresql":
                                # SQLAlchemy's asyncpg adapter opens its transaction at the first
                                # statement it runs: run one, so the driver's inserts are in it.
                                await conn.execute(sa.text("SELECT 1"))
                            driver = (await conn.get_raw_connection()).driver_connection
                        await _FAST[table.name].execute(driver, conn.dialect.name, group, ordered=ordered)
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
    format), JSON as text, booleans as the backend's.

    A row whose keys are the columns in the table's order (the metering stage's) gives its
    values as they are (``dict.values``, one C call); any other whole row is looked up key by key."""

    def __init__(self, table: sa.Table) -> None:
        self.columns = [c.name for c in table.c if c.name != "id"]
        self.order = tuple(self.columns)
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

    async def execute(self, driver: Any, dialect: str, rows: Sequence[Row], *, ordered: bool = False) -> None:
        """Insert ``rows`` in slices of ``SLICE``: converting a slice holds the event loop for
        about a millisecond, and the driver's awaited ``executemany`` between slices lets the
        requests in flight run (converting a whole batch of 500 at once stalled them all for
        several milliseconds: a p99 spike at every flush). ``ordered``: every row's keys are the
        columns in the table's order (``_by_keys`` checked)."""
        for start in range(0, len(rows), SLICE):
            part = rows[start : start + SLICE]
            if dialect == "sqlite":
                for sql, params in self.sqlite_statements(part, ordered=ordered):
                    await driver.execute(sql, params)
            else:
                await driver.executemany(self._sql[dialect], self.driver_values(part, ordered=ordered))

    def driver_values(self, rows: Sequence[Row], *, ordered: bool = False) -> list[list[Any]]:
        """PostgreSQL: each row's values in column order, as asyncpg takes them."""
        values = []
        for row in rows:
            out: list[Any] = []
            self._convert(out, row, ordered, sqlite=False)
            values.append(out)
        return values

    def sqlite_statements(
        self, rows: Sequence[Row], *, ordered: bool = False
    ) -> Iterator[tuple[str, list[Any]]]:
        """SQLite: as many rows per statement as its parameter limit allows, each statement's
        parameters one flat list (the rows' values, converted, one row after another)."""
        per = max(1, SQLITE_VARIABLES // len(self.columns))
        for start in range(0, len(rows), per):
            part = rows[start : start + per]
            params: list[Any] = []
            for row in part:
                self._convert(params, row, ordered, sqlite=True)
            yield self._sqlite_rows(len(part)), params

    def _convert(self, out: list[Any], row: Row, ordered: bool, *, sqlite: bool) -> None:
        """Append ``row``'s values to ``out`` in column order, converted for the driver."""
        base = len(out)
        # Every column's value in order: as the row holds them when its keys are the columns in
        # the table's order, else one lookup per column (one C call either way).
        out.extend(row.values() if ordered else self._take(row))
        for i, kind in self._special:  # then the few that need converting
            value = out[base + i]
            if value is None:
                continue
            if kind == _JSON:
                if type(value) is not str:  # else JSON text already (see the module's doc)
                    out[base + i] = orjson.dumps(value).decode()
            elif kind == _WHEN:
                out[base + i] = _sqlite_time(value) if sqlite else _utc(value)
            elif sqlite:
                if type(value) is not bool:  # sqlite3 stores a bool as 1 or 0 itself
                    out[base + i] = int(value)
            else:
                out[base + i] = bool(value)


_PLAIN, _JSON, _WHEN, _BOOL = range(4)
_SECONDS: dict[int, str] = {}  # a Unix second -> its SQLite text, "%Y-%m-%d %H:%M:%S"
_SECONDS_KEPT = 4096


def _utc(value: datetime | float) -> datetime:
    """A row's time as an aware UTC datetime (a naive one is taken as UTC)."""
    if not isinstance(value, datetime):
        return datetime.fromtimestamp(value, UTC)
    zone = value.tzinfo
    if zone is UTC:
        return value
    return value.replace(tzinfo=UTC) if zone is None else value.astimezone(UTC)


def _sqlite_time(value: datetime | float) -> str:
    """SQLAlchemy's SQLite text form of a time, "%Y-%m-%d %H:%M:%S.%f" in UTC. A Unix time's
    second is formatted once per second (most rows of a batch share a few), and its microseconds
    rounded as ``datetime.fromtimestamp`` rounds them (half to even)."""
    if isinstance(value, datetime) or value < 0:
        return _utc(value).isoformat(" ", "microseconds")[:26]  # isoformat's first 26 characters
    second = int(value)
    micros = round((value - second) * 1e6)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        text = _SECONDS[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
    return f"{text}.{micros:06d}"


_FAST = {table.name: _FastInsert(table) for table in (_log, _attempts, _labels)}


def _decoded(table: sa.Table, rows: Sequence[Row]) -> list[Row]:
    """``rows`` for SQLAlchemy's insert, whose types encode values themselves: JSON text decoded,
    Unix times made datetimes."""
    names, times = _JSON_COLUMNS[table.name], _TIME_COLUMNS[table.name]
    out = []
    for row in rows:
        changed = {n: orjson.loads(row[n]) for n in names if type(row.get(n)) is str}
        changed.update((n, _utc(row[n])) for n in times if isinstance(row.get(n), int | float))
        out.append({**row, **changed} if changed else row)
    return out


def _by_keys(table: sa.Table, rows: Sequence[Row]) -> list[tuple[list[Row], bool, bool]]:
    """``rows`` in groups of one set of keys, each with whether its rows have every column (then
    the driver takes them: ``_FastInsert``) and whether their keys are in the table's order."""
    columns = _COLUMNS[table.name]
    fast = _FAST[table.name]
    # The usual batch: every row as the metering stage makes it, every column but the id in the
    # table's order (one tuple of each row's keys, compared in C).
    order = fast.order
    if all(tuple(row) == order for row in rows):
        return [(list(rows), True, True)] if rows else []
    groups: dict[frozenset[str], list[Row]] = {}
    for row in rows:
        keys = frozenset(row)
        if not keys <= columns:
            unknown = ", ".join(sorted(keys - columns))
            raise ValueError(f"{table.name} has no column(s) {unknown}")
        groups.setdefault(keys, []).append(row)
    return [(group, keys == fast.keys, False) for keys, group in groups.items()]
