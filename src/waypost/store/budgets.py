"""Budgets (their definitions; their running counters live in the state backend), and the spend
the audit log recorded for one, which a gateway reloads into a counter on start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from waypost.core.errors import NotFound
from waypost.store import tables
from waypost.store.repository import Repository, now

_budgets, _log, _labels = tables.budgets, tables.request_log, tables.request_labels

SCOPES = ("user", "group", "token", "model", "tag", "global")


@dataclass(frozen=True, slots=True)
class BudgetRecord:
    id: int
    name: str
    scope: str  # user, group, token, model, tag, global
    target: str | None  # the user/group/token id, the model name or the tag; None for global
    limit_micros: int | None
    limit_tokens: int | None
    period: str  # daily, weekly, monthly, quarterly, total
    rolling: bool
    timezone: str
    config: dict[str, Any]  # fallback_model, status, cut_off_streams, alerts, description, generation
    counted_from: datetime | None  # a reset that discarded the usage recorded before it
    created_at: datetime
    updated_at: datetime

    @property
    def generation(self) -> int:
        """Bumped by each reset and each change of what is counted: the counter to use."""
        return int(self.config.get("generation", 0))


def _record(row: sa.RowMapping) -> BudgetRecord:
    return BudgetRecord(**{c.name: row[c.name] for c in _budgets.c})


class BudgetRepo(Repository):
    async def list(self) -> list[BudgetRecord]:
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(_budgets).order_by(_budgets.c.id))).all()
        return [_record(row._mapping) for row in rows]

    async def get(self, budget_id: int) -> BudgetRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_budgets).where(_budgets.c.id == budget_id))).one_or_none()
        return _record(row._mapping) if row is not None else None

    async def by_name(self, name: str) -> BudgetRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_budgets).where(_budgets.c.name == name))).one_or_none()
        return _record(row._mapping) if row is not None else None

    async def create(
        self,
        *,
        name: str,
        scope: str,
        target: str | None,
        limit_micros: int | None,
        limit_tokens: int | None,
        period: str,
        rolling: bool = False,
        timezone: str = "UTC",
        config: Mapping[str, Any] | None = None,
    ) -> BudgetRecord:
        stamp = now()
        values = {
            "name": name,
            "scope": scope,
            "target": target,
            "limit_micros": limit_micros,
            "limit_tokens": limit_tokens,
            "period": period,
            "rolling": rolling,
            "timezone": timezone,
            "config": {"generation": 0, **(config or {})},
            "created_at": stamp,
            "updated_at": stamp,
        }
        async with self._write(conflict=f"a budget named {name!r} already exists") as conn:
            row = (await conn.execute(sa.insert(_budgets).values(**values).returning(*_budgets.c))).one()
        return _record(row._mapping)

    async def update(
        self, budget_id: int, changes: Mapping[str, Any], *, recount: bool = False
    ) -> BudgetRecord:
        """Change columns (``config`` replaces the whole document); ``recount``: what the budget
        counts changed (scope, target, period, time zone), so it starts a new counter, reloaded
        from the audit log."""
        name = changes.get("name")
        conflict = f"a budget named {name!r} already exists" if name is not None else None
        async with self._write(conflict=conflict) as conn:
            current = (
                await conn.execute(sa.select(_budgets.c.config).where(_budgets.c.id == budget_id))
            ).one_or_none()
            if current is None:
                raise NotFound(f"budget {budget_id} does not exist")
            values = {**changes, "updated_at": now()}
            config = dict(values.get("config", current.config))
            config["generation"] = int(current.config.get("generation", 0)) + (1 if recount else 0)
            values["config"] = config
            row = (
                await conn.execute(
                    sa.update(_budgets)
                    .where(_budgets.c.id == budget_id)
                    .values(**values)
                    .returning(*_budgets.c)
                )
            ).one()
        return _record(row._mapping)

    async def reset(self, budget_id: int, *, keep_usage: bool) -> BudgetRecord:
        """Start the budget's counter again: from the usage the audit log recorded in its period
        (``keep_usage``; held reservations and drift are dropped), or from zero now."""
        changes: dict[str, Any] = {} if keep_usage else {"counted_from": now()}
        return await self.update(budget_id, changes, recount=True)

    async def delete(self, budget_id: int) -> bool:
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_budgets).where(_budgets.c.id == budget_id))
        return result.rowcount > 0

    async def recorded_spend(
        self,
        scope: str,
        match: str | int | None,
        ranges: Mapping[int, tuple[datetime | None, datetime | None]],
    ) -> dict[int, tuple[int, int]]:
        """The micro-dollars and tokens the audit log recorded in each [start, end) range (by
        bucket) for requests a budget of ``scope`` on ``match`` counts (for a group or a tag, its
        name; a user or token, its id; a model, the name asked for or the model that served)."""
        log = _log
        tokens = log.c.input_tokens + log.c.cache_read_tokens + log.c.cache_write_tokens + log.c.output_tokens
        columns: list[Any] = []
        for start, end in ranges.values():
            conditions = [c for c in (_from(start), _before(end)) if c is not None]
            when = sa.and_(*conditions) if conditions else sa.true()
            columns.append(sa.func.coalesce(sa.func.sum(sa.case((when, log.c.cost_micros), else_=0)), 0))
            columns.append(sa.func.coalesce(sa.func.sum(sa.case((when, tokens), else_=0)), 0))
        query = sa.select(*columns).select_from(log)
        for condition in _scope_filter(scope, match):
            query = query.where(condition)
        starts = [s for s, _ in ranges.values()]
        ends = [e for _, e in ranges.values()]
        if starts and all(s is not None for s in starts):
            query = query.where(log.c.created_at >= min(s for s in starts if s is not None))
        if ends and all(e is not None for e in ends):
            query = query.where(log.c.created_at < max(e for e in ends if e is not None))
        async with self._read() as conn:
            row = (await conn.execute(query)).one()
        return {bucket: (int(row[2 * i]), int(row[2 * i + 1])) for i, bucket in enumerate(ranges)}


def _from(start: datetime | None) -> Any:
    return None if start is None else _log.c.created_at >= start


def _before(end: datetime | None) -> Any:
    return None if end is None else _log.c.created_at < end


def _scope_filter(scope: str, match: str | int | None) -> Sequence[Any]:
    log = _log
    if scope == "global":
        return []
    if scope == "user":
        return [log.c.user_id == int(match or 0)]
    if scope == "token":
        return [log.c.token_id == int(match or 0)]
    if scope == "model":
        return [sa.or_(log.c.model == match, log.c.requested_model == match)]
    if scope in ("group", "tag"):
        label = _labels
        return [
            sa.exists().where(
                label.c.request_id == log.c.request_id, label.c.kind == scope, label.c.value == str(match)
            )
        ]
    raise ValueError(f"unknown budget scope {scope!r}")
