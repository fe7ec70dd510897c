"""API tokens, refresh tokens and single sign-on logins in progress. Only hashes are stored."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from waypost.core.errors import NotFound
from waypost.store import tables
from waypost.store.records import FlowRecord, TokenRecord
from waypost.store.repository import UNCHANGED, Repository, Unchanged, now

_tokens, _refresh, _flows = tables.api_tokens, tables.refresh_tokens, tables.login_flows


class TokenRepo(Repository):
    async def create(
        self,
        user_id: int,
        name: str,
        *,
        token_hash: str,
        prefix: str,
        models: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> TokenRecord:
        """``NotFound`` when the user does not exist."""
        values = {
            "user_id": user_id,
            "name": name,
            "token_hash": token_hash,
            "prefix": prefix,
            "models": None if models is None else list(models),
            "expires_at": expires_at,
            "created_at": now(),
        }
        conflict = "an API token with the same hash already exists"
        async with self._write(conflict=conflict, refs={"user": user_id}) as conn:
            row = (await conn.execute(sa.insert(_tokens).values(**values).returning(*_tokens.c))).one()
        return _token(row._mapping)

    async def get(self, token_id: int) -> TokenRecord | None:
        return await self._one(_tokens.c.id == token_id)

    async def by_hash(self, token_hash: str) -> TokenRecord | None:
        """The token whatever its expiry: the caller decides what an expired token means."""
        return await self._one(_tokens.c.token_hash == token_hash)

    async def list(self, user_id: int | None = None) -> list[TokenRecord]:
        query = sa.select(_tokens).order_by(_tokens.c.id)
        if user_id is not None:
            query = query.where(_tokens.c.user_id == user_id)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_token(row._mapping) for row in rows]

    async def page(
        self, *, user_id: int | None, search: str | None, after: int | None, limit: int
    ) -> builtins.list[TokenRecord]:
        """Up to ``limit`` tokens by id after ``after`` (of ``user_id`` when given), whose name or
        prefix contains ``search`` (any case): a page of the admin list, whatever the number."""
        query = sa.select(_tokens).order_by(_tokens.c.id).limit(limit)
        if user_id is not None:
            query = query.where(_tokens.c.user_id == user_id)
        if after is not None:
            query = query.where(_tokens.c.id > after)
        if search:
            needle = search.lower()
            query = query.where(
                sa.or_(
                    sa.func.lower(_tokens.c.name).contains(needle, autoescape=True),
                    sa.func.lower(_tokens.c.prefix).contains(needle, autoescape=True),
                )
            )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_token(row._mapping) for row in rows]

    async def update(
        self,
        token_id: int,
        *,
        name: str | None = None,
        models: Sequence[str] | Unchanged | None = UNCHANGED,
        expires_at: datetime | Unchanged | None = UNCHANGED,
    ) -> TokenRecord:
        """``models=None`` lifts the restriction and ``expires_at=None`` the expiry; leave them out
        to keep them."""
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if not isinstance(models, Unchanged):
            values["models"] = None if models is None else list(models)
        if not isinstance(expires_at, Unchanged):
            values["expires_at"] = expires_at
        query = (
            sa.update(_tokens).where(_tokens.c.id == token_id).values(**values).returning(*_tokens.c)
            if values
            else sa.select(_tokens).where(_tokens.c.id == token_id)
        )
        async with self._write() as conn:
            row = (await conn.execute(query)).one_or_none()
        if row is None:
            raise NotFound(f"token {token_id} does not exist")
        return _token(row._mapping)

    async def delete(self, token_id: int) -> bool:
        async with self._write() as conn:
            result = await conn.execute(sa.delete(_tokens).where(_tokens.c.id == token_id))
        return result.rowcount > 0

    async def touch(self, token_ids: Collection[int], when: datetime) -> None:
        """Record use of many tokens in one statement; never moves ``last_used_at`` back (batches
        from several workers may arrive out of order)."""
        if not token_ids:
            return
        async with self._write() as conn:
            await conn.execute(
                sa.update(_tokens)
                .where(
                    _tokens.c.id.in_(list(token_ids)),
                    sa.or_(_tokens.c.last_used_at.is_(None), _tokens.c.last_used_at < when),
                )
                .values(last_used_at=when)
            )

    async def _one(self, where: sa.ColumnElement[bool]) -> TokenRecord | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_tokens).where(where))).one_or_none()
        return _token(row._mapping) if row is not None else None


class RefreshRepo(Repository):
    async def create(self, user_id: int, *, token_hash: str, expires_at: datetime) -> None:
        """Store a new refresh token; the user's expired ones are dropped on the way."""
        stamp = now()
        conflict = "a refresh token with the same hash already exists"
        async with self._write(conflict=conflict, refs={"user": user_id}) as conn:
            await conn.execute(
                sa.delete(_refresh).where(_refresh.c.user_id == user_id, _refresh.c.expires_at <= stamp)
            )
            await conn.execute(
                sa.insert(_refresh).values(
                    user_id=user_id, token_hash=token_hash, expires_at=expires_at, created_at=stamp
                )
            )

    async def consume(self, token_hash: str) -> int | None:
        """Revoke a live, unexpired token and return its user id; ``None`` if it was unknown,
        expired or already used. One conditional UPDATE, so of two racing calls only one wins."""
        stamp = now()
        query = (
            sa.update(_refresh)
            .where(
                _refresh.c.token_hash == token_hash,
                _refresh.c.revoked_at.is_(None),
                _refresh.c.expires_at > stamp,
            )
            .values(revoked_at=stamp)
            .returning(_refresh.c.user_id)
        )
        async with self._write() as conn:
            return await conn.scalar(query)

    async def revoke_user(self, user_id: int) -> None:
        """Revoke every live refresh token of the user (logout everywhere, password change)."""
        async with self._write() as conn:
            await conn.execute(
                sa.update(_refresh)
                .where(_refresh.c.user_id == user_id, _refresh.c.revoked_at.is_(None))
                .values(revoked_at=now())
            )


class FlowRepo(Repository):
    async def put(self, flow: FlowRecord) -> None:
        """Remember a login in progress; abandoned (expired) ones are dropped on the way."""
        async with self._write(conflict="a login flow with this state already exists") as conn:
            await conn.execute(sa.delete(_flows).where(_flows.c.expires_at <= now()))
            await conn.execute(
                sa.insert(_flows).values(
                    state=flow.state,
                    provider=flow.provider,
                    nonce=flow.nonce,
                    code_verifier=flow.code_verifier,
                    redirect_to=flow.redirect_to,
                    expires_at=flow.expires_at,
                )
            )

    async def take(self, state: str) -> FlowRecord | None:
        """Remove the flow and return it, unless unknown or expired: each state works once."""
        async with self._write() as conn:
            row = (
                await conn.execute(sa.delete(_flows).where(_flows.c.state == state).returning(*_flows.c))
            ).one_or_none()
        if row is None or row.expires_at <= now():
            return None
        return FlowRecord(
            state=row.state,
            provider=row.provider,
            nonce=row.nonce,
            code_verifier=row.code_verifier,
            redirect_to=row.redirect_to,
            expires_at=row.expires_at,
        )


def _token(row: Any) -> TokenRecord:
    models = row["models"]
    return TokenRecord(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        prefix=row["prefix"],
        models=None if models is None else tuple(models),
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        created_at=row["created_at"],
    )
