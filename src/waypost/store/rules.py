"""Policy rules (their definitions; the rules engine holds them compiled in memory), and the
audit log's requests as a replay of draft rules reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from waypost.core.errors import NotFound
from waypost.store import tables
from waypost.store.repository import Repository, now

_rules, _log = tables.rules, tables.request_log

# What a replay reads of each request: who, which model, how it went, what it used, what the
# rules decided then; the body only when audit bodies were kept.
REPLAY_COLUMNS = (
    "request_id",
    "created_at",
    "user_id",
    "user_email",
    "token_id",
    "groups",
    "tags",
    "endpoint",
    "client_format",
    "requested_model",
    "model",
    "stream",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_micros",
    "rules",
    "request_body",
)


@dataclass(frozen=True, slots=True)
class RuleRecord:
    id: int
    name: str
    description: str
    weight: int
    mode: str  # enforce, shadow, off
    conditions: dict[str, Any]  # one group: {"and": [...]} or {"or": [...]}
    action: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    def spec(self) -> dict[str, Any]:
        """The rule as ``RuleSpec`` reads it."""
        return {
            "name": self.name,
            "description": self.description,
            "weight": self.weight,
            "mode": self.mode,
            "conditions": self.conditions,
            "action": self.action,
        }


def _record(row: sa.RowMapping) -> RuleRecord:
    return RuleRecord(**{c.name: row[c.name] for c in _rules.c})


class RuleRepo(Repository):
    async def list(self) -> list[RuleRecord]:
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(_rules).order_by(_rules.c.id))).all()
        return [_record(row._mapping) for row in rows]

    async def get(self, rule_id: int) -> RuleRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_rules).where(_rules.c.id == rule_id))).one_or_none()
        return _record(row._mapping) if row is not None else None

    async def by_name(self, name: str) -> RuleRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_rules).where(_rules.c.name == name))).one_or_none()
        return _record(row._mapping) if row is not None else None

    async def create(
        self,
        *,
        name: str,
        description: str,
        weight: int,
        mode: str,
        conditions: Mapping[str, Any],
        action: Mapping[str, Any],
    ) -> RuleRecord:
        stamp = now()
        values = {
            "name": name,
            "description": description,
            "weight": weight,
            "mode": mode,
            "conditions": dict(conditions),
            "action": dict(action),
            "created_at": stamp,
            "updated_at": stamp,
        }
        async with self._write(conflict=f"a rule named {name!r} already exists") as conn:
            row = (await conn.execute(sa.insert(_rules).values(**values).returning(*_rules.c))).one()
        return _record(row._mapping)

    async def update(self, rule_id: int, changes: Mapping[str, Any]) -> RuleRecord:
        """Change columns (``conditions`` and ``action`` replace the whole document)."""
        name = changes.get("name")
        conflict = f"a rule named {name!r} already exists" if name is not None else None
        async with self._write(conflict=conflict) as conn:
            row = (
                await conn.execute(
                    sa.update(_rules)
                    .where(_rules.c.id == rule_id)
                    .values(**changes, updated_at=now())
                    .returning(*_rules.c)
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"rule {rule_id} does not exist")
        return _record(row._mapping)

    async def delete(self, rule_id: int) -> bool:
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_rules).where(_rules.c.id == rule_id))
        return result.rowcount > 0

    async def requests(
        self, since: datetime, until: datetime, *, limit: int, with_bodies: bool = True, page: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """The audit log's requests that arrived in [since, until), oldest first, at most
        ``limit`` (``REPLAY_COLUMNS`` of each; ``request_body`` None unless ``with_bodies``),
        read ``page`` rows at a time so that bodies never all sit in memory at once."""
        columns = [
            _log.c[name] if with_bodies or name != "request_body" else sa.null().label(name)
            for name in REPLAY_COLUMNS
        ]
        after: tuple[datetime, int] | None = None
        left = limit
        while left > 0:
            query = sa.select(_log.c.id, *columns).where(
                _log.c.created_at >= since, _log.c.created_at < until
            )
            if after is not None:
                query = query.where(
                    sa.or_(
                        _log.c.created_at > after[0],
                        sa.and_(_log.c.created_at == after[0], _log.c.id > after[1]),
                    )
                )
            query = query.order_by(_log.c.created_at, _log.c.id).limit(min(page, left))
            async with self._read() as conn:
                rows = [dict(row._mapping) for row in (await conn.execute(query)).all()]
            for row in rows:
                yield row
            if len(rows) < min(page, left):
                return
            left -= len(rows)
            after = (rows[-1]["created_at"], rows[-1]["id"])
