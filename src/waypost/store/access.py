"""Models defined through the API, and who may use which model."""

from __future__ import annotations

import builtins
from typing import Any

import sqlalchemy as sa

from waypost.core.errors import NotFound
from waypost.store import tables
from waypost.store.records import AssignmentRecord, ModelRecord
from waypost.store.repository import Repository, insert_ignoring_duplicates, now, one_owner

_models, _assignments, _members = tables.models, tables.model_assignments, tables.group_members
_NOT_CONFIG = ("name", "public")  # columns of their own, never duplicated inside ``config``


class ModelRepo(Repository):
    async def create(self, name: str, config: dict[str, Any], *, public: bool = False) -> ModelRecord:
        stamp = now()
        async with self._write(conflict=f"a model named {name!r} already exists") as conn:
            row = (
                await conn.execute(
                    sa.insert(_models)
                    .values(
                        name=name, config=_config(config), public=public, created_at=stamp, updated_at=stamp
                    )
                    .returning(*_models.c)
                )
            ).one()
        return _model(row._mapping)

    async def get(self, name: str) -> ModelRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_models).where(_models.c.name == name))).one_or_none()
        return _model(row._mapping) if row is not None else None

    async def list(self) -> list[ModelRecord]:
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(_models))).all()
        return sorted((_model(row._mapping) for row in rows), key=lambda model: model.name)

    async def update(
        self, name: str, *, config: dict[str, Any] | None = None, public: bool | None = None
    ) -> ModelRecord:
        """Replace the config and/or the public flag (a config is replaced whole, not merged)."""
        values: dict[str, Any] = {"updated_at": now()}
        if config is not None:
            values["config"] = _config(config)
        if public is not None:
            values["public"] = public
        async with self._write() as conn:
            row = (
                await conn.execute(
                    sa.update(_models).where(_models.c.name == name).values(**values).returning(*_models.c)
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"model {name!r} does not exist")
        return _model(row._mapping)

    async def delete(self, name: str) -> bool:
        """Delete the model and its assignments."""
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_models).where(_models.c.name == name))
            if result.rowcount:
                await conn.execute(sa.delete(_assignments).where(_assignments.c.model_name == name))
        return result.rowcount > 0


class AssignmentRepo(Repository):
    """Model names may belong to config-file models, so they are not checked here."""

    async def assign(
        self, model_name: str, *, user_id: int | None = None, group_id: int | None = None
    ) -> None:
        """Idempotent; ``NotFound`` when the user or group does not exist."""
        one_owner(user_id, group_id)
        async with self._write(refs={"user": user_id, "group": group_id}) as conn:
            await conn.execute(
                insert_ignoring_duplicates(conn, _assignments).values(
                    model_name=model_name, user_id=user_id, group_id=group_id
                )
            )

    async def unassign(
        self, model_name: str, *, user_id: int | None = None, group_id: int | None = None
    ) -> bool:
        one_owner(user_id, group_id)
        owner = (
            _assignments.c.user_id == user_id if user_id is not None else _assignments.c.group_id == group_id
        )
        async with self._write() as conn:
            result = await conn.execute(
                sa.delete(_assignments).where(owner, _assignments.c.model_name == model_name)
            )
        return result.rowcount > 0

    async def of_model(self, model_name: str) -> list[AssignmentRecord]:
        return await self._where(_assignments.c.model_name == model_name)

    async def list(self) -> list[AssignmentRecord]:
        return await self._where(sa.true())

    async def models_for_user(self, user_id: int) -> frozenset[str]:
        """Names assigned to the user directly or to any of their groups."""
        mine = sa.select(_members.c.group_id).where(_members.c.user_id == user_id)
        query = sa.select(_assignments.c.model_name).where(
            sa.or_(_assignments.c.user_id == user_id, _assignments.c.group_id.in_(mine))
        )
        async with self._read() as conn:
            return frozenset(await conn.scalars(query.distinct()))

    async def _where(self, where: sa.ColumnElement[bool]) -> builtins.list[AssignmentRecord]:
        query = sa.select(_assignments.c.model_name, _assignments.c.user_id, _assignments.c.group_id)
        async with self._read() as conn:
            rows = (await conn.execute(query.where(where))).all()
        records = [AssignmentRecord(row.model_name, row.user_id, row.group_id) for row in rows]
        return sorted(records, key=lambda a: (a.model_name, a.user_id or 0, a.group_id or 0))


def _config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in _NOT_CONFIG}


def _model(row: Any) -> ModelRecord:
    return ModelRecord(
        id=row["id"],
        name=row["name"],
        config=dict(row["config"]),
        public=row["public"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
