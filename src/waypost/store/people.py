"""Users, groups, group membership and permission grants."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from waypost.core.errors import NotFound
from waypost.store import tables
from waypost.store.records import GroupRecord, UserRecord
from waypost.store.repository import (
    UNCHANGED,
    Repository,
    Unchanged,
    insert_ignoring_duplicates,
    now,
    one_owner,
)

_users, _groups, _members, _grants = tables.users, tables.groups, tables.group_members, tables.grants


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserRepo(Repository):
    async def create(
        self,
        email: str,
        display_name: str,
        *,
        password_hash: str | None = None,
        role: str = "user",
        active: bool = True,
    ) -> UserRecord:
        email = normalise_email(email)
        stamp = now()
        async with self._write(conflict=f"a user with e-mail {email!r} already exists") as conn:
            row = (
                await conn.execute(
                    sa.insert(_users)
                    .values(
                        email=email,
                        display_name=display_name,
                        password_hash=password_hash,
                        role=role,
                        active=active,
                        created_at=stamp,
                        updated_at=stamp,
                    )
                    .returning(*_users.c)
                )
            ).one()
        return _user(row._mapping, ())

    async def get(self, user_id: int) -> UserRecord | None:
        async with self._read() as conn:
            return await _one_user(conn, _users.c.id == user_id)

    async def by_email(self, email: str) -> UserRecord | None:
        """Case-insensitive: e-mails are stored lower-cased."""
        async with self._read() as conn:
            return await _one_user(conn, _users.c.email == normalise_email(email))

    async def list(self) -> list[UserRecord]:
        async with self._read() as conn:
            rows = (await conn.execute(sa.select(_users).order_by(_users.c.id))).all()
            names = await _group_names(conn, None)
        return [_user(row._mapping, names.get(row.id, ())) for row in rows]

    async def page(self, *, search: str | None, after: int | None, limit: int) -> builtins.list[UserRecord]:
        """Up to ``limit`` users by id after ``after``, whose e-mail or display name contains
        ``search`` (any case): a page of the admin list, whatever the number of users."""
        query = sa.select(_users).order_by(_users.c.id).limit(limit)
        if after is not None:
            query = query.where(_users.c.id > after)
        if search:
            needle = search.lower()
            query = query.where(
                sa.or_(
                    sa.func.lower(_users.c.email).contains(needle, autoescape=True),
                    sa.func.lower(_users.c.display_name).contains(needle, autoescape=True),
                )
            )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
            names = await _group_names(conn, None, [row.id for row in rows])
        return [_user(row._mapping, names.get(row.id, ())) for row in rows]

    async def count(self) -> int:
        async with self._read() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(_users)) or 0)

    async def update(
        self,
        user_id: int,
        *,
        email: str | Unchanged = UNCHANGED,
        display_name: str | Unchanged = UNCHANGED,
        password_hash: str | Unchanged | None = UNCHANGED,
        role: str | Unchanged = UNCHANGED,
        active: bool | Unchanged = UNCHANGED,
        last_login_at: datetime | Unchanged | None = UNCHANGED,
    ) -> UserRecord:
        """Change the given fields; ``updated_at`` moves unless only ``last_login_at`` changed."""
        given = {
            "email": normalise_email(email) if isinstance(email, str) else email,
            "display_name": display_name,
            "password_hash": password_hash,
            "role": role,
            "active": active,
            "last_login_at": last_login_at,
        }
        values: dict[str, Any] = {k: v for k, v in given.items() if v is not UNCHANGED}
        if set(values) - {"last_login_at"}:
            values["updated_at"] = now()
        conflict = f"a user with e-mail {values.get('email')!r} already exists"
        async with self._write(conflict=conflict) as conn:
            if values:
                await conn.execute(sa.update(_users).where(_users.c.id == user_id).values(**values))
            record = await _one_user(conn, _users.c.id == user_id)
        if record is None:
            raise NotFound(f"user {user_id} does not exist")
        return record

    async def delete(self, user_id: int) -> bool:
        """Delete the user; their tokens, memberships, grants and assignments go with them."""
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_users).where(_users.c.id == user_id))
        return result.rowcount > 0


class GroupRepo(Repository):
    async def create(self, name: str, description: str = "") -> GroupRecord:
        async with self._write(conflict=f"a group named {name!r} already exists") as conn:
            row = (
                await conn.execute(
                    sa.insert(_groups)
                    .values(name=name, description=description, created_at=now())
                    .returning(*_groups.c)
                )
            ).one()
        return _group(row._mapping, ())

    async def get(self, group_id: int) -> GroupRecord | None:
        async with self._read() as conn:
            found = await _groups_where(conn, _groups.c.id == group_id)
        return found[0] if found else None

    async def by_name(self, name: str) -> GroupRecord | None:
        async with self._read() as conn:
            found = await _groups_where(conn, _groups.c.name == name)
        return found[0] if found else None

    async def list(self) -> list[GroupRecord]:
        async with self._read() as conn:
            return await _groups_where(conn, sa.true())

    async def update(
        self, group_id: int, *, name: str | None = None, description: str | None = None
    ) -> GroupRecord:
        values = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
        async with self._write(conflict=f"a group named {name!r} already exists") as conn:
            if values:
                await conn.execute(sa.update(_groups).where(_groups.c.id == group_id).values(**values))
            found = await _groups_where(conn, _groups.c.id == group_id)
        if not found:
            raise NotFound(f"group {group_id} does not exist")
        return found[0]

    async def delete(self, group_id: int) -> bool:
        """Delete the group with its memberships, grants and assignments (not its members)."""
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_groups).where(_groups.c.id == group_id))
        return result.rowcount > 0

    async def add_member(self, group_id: int, user_id: int) -> None:
        """Idempotent; ``NotFound`` when the group or the user does not exist."""
        async with self._write(refs={"group": group_id, "user": user_id}) as conn:
            await conn.execute(
                insert_ignoring_duplicates(conn, _members).values(group_id=group_id, user_id=user_id)
            )

    async def remove_member(self, group_id: int, user_id: int) -> bool:
        async with self._write() as conn:
            result = await conn.execute(
                sa.delete(_members).where(_members.c.group_id == group_id, _members.c.user_id == user_id)
            )
        return result.rowcount > 0

    async def of_user(self, user_id: int) -> builtins.list[GroupRecord]:
        async with self._read() as conn:
            mine = sa.select(_members.c.group_id).where(_members.c.user_id == user_id)
            return await _groups_where(conn, _groups.c.id.in_(mine))


class GrantRepo(Repository):
    async def grant(
        self, permission: str, *, user_id: int | None = None, group_id: int | None = None
    ) -> None:
        """Idempotent; ``NotFound`` when the user or group does not exist."""
        one_owner(user_id, group_id)
        async with self._write(refs={"user": user_id, "group": group_id}) as conn:
            await conn.execute(
                insert_ignoring_duplicates(conn, _grants).values(
                    permission=permission, user_id=user_id, group_id=group_id
                )
            )

    async def revoke(
        self, permission: str, *, user_id: int | None = None, group_id: int | None = None
    ) -> bool:
        one_owner(user_id, group_id)
        owner = _grants.c.user_id == user_id if user_id is not None else _grants.c.group_id == group_id
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_grants).where(owner, _grants.c.permission == permission))
        return result.rowcount > 0

    async def of_user(self, user_id: int) -> frozenset[str]:
        """Direct grants only."""
        return await self._permissions(_grants.c.user_id == user_id)

    async def of_group(self, group_id: int) -> frozenset[str]:
        return await self._permissions(_grants.c.group_id == group_id)

    async def effective(self, user_id: int) -> frozenset[str]:
        """Direct grants and those of every group the user is in (not the role's)."""
        mine = sa.select(_members.c.group_id).where(_members.c.user_id == user_id)
        return await self._permissions(sa.or_(_grants.c.user_id == user_id, _grants.c.group_id.in_(mine)))

    async def _permissions(self, where: sa.ColumnElement[bool]) -> frozenset[str]:
        async with self._read() as conn:
            rows = await conn.scalars(sa.select(_grants.c.permission).where(where).distinct())
            return frozenset(rows)


def _user(row: Any, groups: Iterable[str]) -> UserRecord:
    return UserRecord(
        id=row["id"],
        email=row["email"],
        display_name=row["display_name"],
        role=row["role"],
        active=row["active"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_login_at=row["last_login_at"],
        groups=tuple(groups),
    )


def _group(row: Any, members: Iterable[int]) -> GroupRecord:
    return GroupRecord(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=row["created_at"],
        members=tuple(members),
    )


async def _one_user(conn: AsyncConnection, where: sa.ColumnElement[bool]) -> UserRecord | None:
    row = (await conn.execute(sa.select(_users).where(where))).one_or_none()
    if row is None:
        return None
    names = await _group_names(conn, row.id)
    return _user(row._mapping, names.get(row.id, ()))


async def _group_names(
    conn: AsyncConnection, user_id: int | None, user_ids: list[int] | None = None
) -> dict[int, list[str]]:
    """Sorted group names per user id, for one user, for ``user_ids``, or (neither) for everyone."""
    query = sa.select(_members.c.user_id, _groups.c.name).join(_groups, _groups.c.id == _members.c.group_id)
    if user_id is not None:
        query = query.where(_members.c.user_id == user_id)
    if user_ids is not None:
        query = query.where(_members.c.user_id.in_(user_ids))
    names: dict[int, list[str]] = {}
    for uid, name in (await conn.execute(query)).all():
        names.setdefault(uid, []).append(name)
    # Sorted here, not in SQL: PostgreSQL's collation would order differently from SQLite's.
    return {uid: sorted(group_names) for uid, group_names in names.items()}


async def _groups_where(conn: AsyncConnection, where: sa.ColumnElement[bool]) -> list[GroupRecord]:
    rows = sorted((await conn.execute(sa.select(_groups).where(where))).all(), key=lambda row: row.name)
    if not rows:
        return []
    ids = [row.id for row in rows]
    members: dict[int, list[int]] = {}
    query = (
        sa.select(_members.c.group_id, _members.c.user_id)
        .where(_members.c.group_id.in_(ids))
        .order_by(_members.c.group_id, _members.c.user_id)  # integers: same order on both backends
    )
    for gid, uid in (await conn.execute(query)).all():
        members.setdefault(gid, []).append(uid)
    return [_group(row._mapping, members.get(row.id, ())) for row in rows]
