"""Writing the audit log: request rows, their upstream attempts and their labels (tags, groups),
inserted in batches by the audit writer (``metering/audit.py``), and deleted past retention.

Inserts are idempotent on both backends (``INSERT ... ON CONFLICT DO NOTHING`` on the unique
``request_id``, ``(request_id, attempt)`` and the labels' primary key): a batch written again —
replayed from the spool after a commit whose answer was lost — adds nothing the second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from waypost.store import tables
from waypost.store.repository import Repository, insert_ignoring_duplicates

Row = Mapping[str, Any]

_log, _attempts, _labels = tables.request_log, tables.request_attempts, tables.request_labels
_COLUMNS = {table.name: frozenset(c.name for c in table.c) for table in (_log, _attempts, _labels)}
PING_TIMEOUT = 3.0  # seconds


class UsageLogRepo(Repository):
    async def insert(self, requests: Sequence[Row], attempts: Sequence[Row], labels: Sequence[Row]) -> None:
        """Write the rows in one transaction; rows already there (same keys) are left as they are.
        A row's keys are column names; keys that are not columns raise ``ValueError``."""
        async with self._write() as conn:
            for table, rows in ((_log, requests), (_attempts, attempts), (_labels, labels)):
                # One statement per distinct set of keys: an executemany takes its columns from the
                # first row, and a row that leaves a column out gets the column's default.
                for group in _by_keys(table, rows):
                    await conn.execute(insert_ignoring_duplicates(conn, table), group)

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


def _by_keys(table: sa.Table, rows: Sequence[Row]) -> list[list[Row]]:
    columns = _COLUMNS[table.name]
    groups: dict[frozenset[str], list[Row]] = {}
    for row in rows:
        keys = frozenset(row)
        if not keys <= columns:
            unknown = ", ".join(sorted(keys - columns))
            raise ValueError(f"{table.name} has no column(s) {unknown}")
        groups.setdefault(keys, []).append(row)
    return list(groups.values())
