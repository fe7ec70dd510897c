"""Stored responses of the Responses API (``api/responses_state.py``): kept per user until they
expire, found by id only for their own user, chained by ``previous_id`` into conversations.

Bodies are JSON text, already masked when they get here; this module neither reads nor changes
them. A row past ``expires_at`` is as good as gone (every read ignores it) until the purge
deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from waypost.store import tables
from waypost.store.repository import Repository

_t = tables.stored_responses


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One kept response: who made it, what it was asked (its own input items and its
    instructions) and what it answered, as JSON text."""

    id: str
    user_id: int
    previous_id: str | None
    model: str
    instructions: str | None
    input: str
    response: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Turn:
    """One response of a conversation, as the chain reads it."""

    id: str
    previous_id: str | None
    input: str
    response: str


class ResponseRepo(Repository):
    async def save(self, row: StoredResponse) -> None:
        """Keep ``row``; kept again under the same id (by the same user) it replaces the earlier
        one. Another user's response of that id is left alone (an ``IntegrityError``)."""
        values = {
            "id": row.id,
            "user_id": row.user_id,
            "previous_id": row.previous_id,
            "model": row.model,
            "instructions": row.instructions,
            "input": row.input,
            "response": row.response,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
        }
        async with self._write() as conn:
            await conn.execute(sa.delete(_t).where(_t.c.id == row.id, _t.c.user_id == row.user_id))
            await conn.execute(sa.insert(_t).values(values))

    async def get(self, response_id: str, user_id: int, now: datetime) -> StoredResponse | None:
        """The response ``response_id`` of ``user_id``, unless it expired."""
        query = sa.select(_t).where(_t.c.id == response_id, _t.c.user_id == user_id, _t.c.expires_at > now)
        async with self._read() as conn:
            found = (await conn.execute(query)).first()
        return StoredResponse(**found._mapping) if found is not None else None

    async def chain(self, response_id: str, user_id: int, now: datetime, limit: int) -> Sequence[Turn]:
        """The response ``response_id`` of ``user_id`` and the ones before it, newest first, at
        most ``limit``, in one query (a recursive CTE). The walk stops at an earlier response
        that expired, was deleted, or is not the same user's: the oldest turn returned still
        names it as its ``previous_id``. Empty when ``response_id`` itself is not there."""
        live = (_t.c.user_id == user_id, _t.c.expires_at > now)
        first = sa.select(
            _t.c.id, _t.c.previous_id, _t.c.input, _t.c.response, sa.literal(1).label("depth")
        ).where(_t.c.id == response_id, *live)
        walk = first.cte("conversation", recursive=True)
        earlier = (
            sa.select(_t.c.id, _t.c.previous_id, _t.c.input, _t.c.response, walk.c.depth + 1)
            .join(walk, _t.c.id == walk.c.previous_id)
            .where(walk.c.depth < limit, *live)
        )
        walk = walk.union_all(earlier)
        query = sa.select(walk.c.id, walk.c.previous_id, walk.c.input, walk.c.response).order_by(walk.c.depth)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [Turn(r.id, r.previous_id, r.input, r.response) for r in rows]

    async def delete(self, response_id: str, user_id: int, now: datetime) -> bool:
        """Delete the response ``response_id`` of ``user_id``; whether it was there (unexpired)."""
        query = sa.delete(_t).where(_t.c.id == response_id, _t.c.user_id == user_id, _t.c.expires_at > now)
        async with self._write() as conn:
            gone = (await conn.execute(query)).rowcount
        return bool(gone)

    async def delete_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` responses that expired by ``now`` in one short transaction; how
        many went (repeat until it is fewer than ``limit``)."""
        expired = sa.select(_t.c.id).where(_t.c.expires_at <= now).order_by(_t.c.expires_at).limit(limit)
        async with self._write() as conn:
            ids = list((await conn.execute(expired)).scalars())
            if ids:
                await conn.execute(sa.delete(_t).where(_t.c.id.in_(ids)))
        return len(ids)
