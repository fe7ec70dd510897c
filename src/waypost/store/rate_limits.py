"""Rate limits kept in the database (``/admin/limits``); their counters live in the state backend,
and limits declared in the config file are not stored here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from waypost.core.errors import NotFound
from waypost.store import tables
from waypost.store.repository import Repository, now

_limits = tables.rate_limits


@dataclass(frozen=True, slots=True)
class RateLimitRecord:
    id: int
    name: str
    scope: str  # token, user, group, model, default
    target: str | None  # the token, user or group id, or the model name; None for default
    config: dict[str, Any]  # windows, concurrency, enabled, description
    created_at: datetime
    updated_at: datetime


def _record(row: sa.RowMapping) -> RateLimitRecord:
    return RateLimitRecord(**{c.name: row[c.name] for c in _limits.c})


class RateLimitRepo(Repository):
    async def list(self) -> list[RateLimitRecord]:
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(_limits).order_by(_limits.c.id))).all()
        return [_record(row._mapping) for row in rows]

    async def get(self, limit_id: int) -> RateLimitRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_limits).where(_limits.c.id == limit_id))).one_or_none()
        return _record(row._mapping) if row is not None else None

    async def by_name(self, name: str) -> RateLimitRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_limits).where(_limits.c.name == name))).one_or_none()
        return _record(row._mapping) if row is not None else None

    async def create(
        self, *, name: str, scope: str, target: str | None, config: Mapping[str, Any]
    ) -> RateLimitRecord:
        stamp = now()
        values = {
            "name": name,
            "scope": scope,
            "target": target,
            "config": dict(config),
            "created_at": stamp,
            "updated_at": stamp,
        }
        async with self._write(conflict=f"a rate limit named {name!r} already exists") as conn:
            row = (await conn.execute(sa.insert(_limits).values(**values).returning(*_limits.c))).one()
        return _record(row._mapping)

    async def update(self, limit_id: int, changes: Mapping[str, Any]) -> RateLimitRecord:
        """Change columns (``config`` replaces the whole document)."""
        name = changes.get("name")
        conflict = f"a rate limit named {name!r} already exists" if name is not None else None
        async with self._write(conflict=conflict) as conn:
            row = (
                await conn.execute(
                    sa.update(_limits)
                    .where(_limits.c.id == limit_id)
                    .values(**changes, updated_at=now())
                    .returning(*_limits.c)
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"rate limit {limit_id} does not exist")
        return _record(row._mapping)

    async def delete(self, limit_id: int) -> bool:
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_limits).where(_limits.c.id == limit_id))
        return result.rowcount > 0
