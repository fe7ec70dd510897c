"""The admin audit trail: who changed what in the gateway's users, groups, permissions, models,
tokens, secrets and budgets, when and from where, as a hash chain.

Each entry carries the hash of the one before it: ``hash = sha256(prev_hash + canonical JSON of
the entry)`` (the first entry follows ``GENESIS``). Entries are appended under a lock (SQLite's
write lock, taken up front; on PostgreSQL a transaction-scoped advisory lock), so the chain is one
line however many workers write at once. ``verify`` walks it in order and names
the first entry that was edited, removed or moved.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from waypost.store import tables
from waypost.store.repository import Repository, now

_trail = tables.admin_audit

GENESIS = "0" * 64  # what the first entry's prev_hash is
REMOVED = "[removed]"  # what a credential in a snapshot becomes
VERIFY_BATCH = 1000  # entries read per query while verifying
MAX_PROBLEMS = 20  # a verification stops listing after this many

# Member names whose string values are credentials: password hashes, token hashes, API keys,
# secret values and ciphertexts never reach the trail. References (secret://, env://) stay: they
# say which secret a model uses without disclosing it.
_CREDENTIAL = re.compile(
    r"(?:.*[_.-])?(?:api[_-]?key|apikey|authorization|password|passwd|password[_-]?hash|secret|"
    r"secret[_-]?access[_-]?key|access[_-]?key[_-]?id|session[_-]?token|token|token[_-]?hash|"
    r"refresh[_-]?token|access[_-]?token|id[_-]?token|private[_-]?key|ciphertext|value)",
    re.IGNORECASE,
)
_REFERENCE = ("secret://", "env://")


@dataclass(frozen=True, slots=True)
class TrailChange:
    """One change to append: ``action`` such as ``user.create``, on ``target_type`` / ``target_id``,
    by the actor, from ``client_ip``, with the target as it was (``before``) and is (``after``)."""

    action: str
    target_type: str
    target_id: str | None = None
    actor_id: int | None = None
    actor_email: str | None = None
    client_ip: str | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TrailEntry:
    id: int
    created_at: datetime
    actor_id: int | None
    actor_email: str | None
    action: str
    target_type: str
    target_id: str | None
    client_ip: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class TrailFilter:
    """Which entries to list; ``None`` means any."""

    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    actor_id: int | None = None
    actor_email: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class TrailPage:
    entries: list[TrailEntry]
    next: int | None = None  # the id to pass as ``before`` for the next (older) page


@dataclass(frozen=True, slots=True)
class Problem:
    """A break in the chain: ``kind`` is ``edited``, ``removed`` or ``reordered``; ``id`` the entry
    where it shows (``None``: the anchor is missing)."""

    kind: Literal["edited", "removed", "reordered"]
    id: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int  # how many were checked
    head_id: int | None  # the last entry, whose hash vouches for the whole chain
    head_hash: str | None
    problems: list[Problem] = field(default_factory=list)  # in chain order, at most MAX_PROBLEMS
    problem_count: int = 0  # all of them

    @property
    def ok(self) -> bool:
        return not self.problems


def scrub(value: Any) -> Any:
    """``value`` as plain JSON data, with every credential replaced by ``[removed]``."""
    if isinstance(value, Mapping):
        return {
            str(key): REMOVED if _CREDENTIAL.fullmatch(str(key)) and not _harmless(item) else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = [scrub(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return _scalar(value)


def plain(value: Any) -> Any:
    """``value`` as the JSON data a JSON column gives back (nothing removed): what hashes cover."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, float):
        # What a JSON column gives back must hash the same: 2.0 may come back as 2.
        return int(value) if value.is_integer() else value
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _harmless(value: Any) -> bool:
    """A value under a credential's name that discloses nothing: a flag, a reference, nothing."""
    if value is None or isinstance(value, bool):
        return True
    return isinstance(value, str) and (value.startswith(_REFERENCE) or value in ("", REMOVED))


def _instant(value: datetime) -> str:
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def canonical(entry: Mapping[str, Any]) -> str:
    """The text an entry's hash covers: its fields (not its id or hashes) as sorted, compact JSON."""
    doc = {
        "created_at": _instant(entry["created_at"]),
        "actor_id": entry["actor_id"],
        "actor_email": entry["actor_email"],
        "action": entry["action"],
        "target_type": entry["target_type"],
        "target_id": entry["target_id"],
        "client_ip": entry["client_ip"],
        "before": plain(entry["before"]),
        "after": plain(entry["after"]),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(entry)).encode()).hexdigest()


class AdminTrailRepo(Repository):
    async def append(self, change: TrailChange) -> TrailEntry:
        """Add ``change`` at the end of the chain (credentials scrubbed out of its snapshots)."""
        values: dict[str, Any] = {
            "actor_id": change.actor_id,
            "actor_email": change.actor_email,
            "action": change.action,
            "target_type": change.target_type,
            "target_id": change.target_id,
            "client_ip": change.client_ip,
            "before": scrub(change.before),
            "after": scrub(change.after),
        }
        async with self._write() as conn:
            await _lock(conn)
            prev = await conn.scalar(sa.select(_trail.c.hash).order_by(_trail.c.id.desc()).limit(1))
            values["created_at"] = now()  # under the lock: times follow the chain's order
            values["prev_hash"] = prev or GENESIS
            values["hash"] = chain_hash(values["prev_hash"], values)
            entry_id = await conn.scalar(sa.insert(_trail).values(**values).returning(_trail.c.id))
        return TrailEntry(id=int(entry_id or 0), **values)

    async def page(self, where: TrailFilter, *, limit: int = 50, before: int | None = None) -> TrailPage:
        """Entries newest first, and the cursor of the next page."""
        clauses = _conditions(where)
        if before is not None:
            clauses.append(_trail.c.id < before)
        query = sa.select(_trail).where(*clauses).order_by(_trail.c.id.desc()).limit(limit + 1)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        entries = [_entry(row._mapping) for row in rows[:limit]]
        return TrailPage(entries, entries[-1].id if len(rows) > limit else None)

    async def get(self, entry_id: int) -> TrailEntry | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(_trail).where(_trail.c.id == entry_id))).one_or_none()
        return _entry(row._mapping) if row is not None else None

    async def verify(self, *, anchor: str | None = None) -> Verification:
        """Walk the chain in order; each entry must hash to its stored hash (else it was edited)
        and follow the one before it (else entries were removed or moved). ``anchor``, a head hash
        kept elsewhere, must still be in the chain: that catches the newest entries removed."""
        expected, last_id, last_hash, count = GENESIS, None, None, 0
        problems: list[Problem] = []
        found = 0
        anchor_seen = anchor is None
        while True:
            query = sa.select(_trail).order_by(_trail.c.id).limit(VERIFY_BATCH)
            if last_id is not None:
                query = query.where(_trail.c.id > last_id)
            async with self._read() as conn:
                rows = (await conn.execute(query)).all()
                for row in rows:
                    entry = row._mapping
                    count += 1
                    problem = await _check(conn, entry, expected, last_id)
                    if problem is not None:
                        found += 1
                        if len(problems) < MAX_PROBLEMS:
                            problems.append(problem)
                    anchor_seen = anchor_seen or entry["hash"] == anchor
                    expected, last_id, last_hash = entry["hash"], entry["id"], entry["hash"]
            if len(rows) < VERIFY_BATCH:
                break
        if not anchor_seen:
            found += 1
            message = f"the anchor {anchor} is not in the trail: entries up to it were removed or rewritten"
            if len(problems) < MAX_PROBLEMS:
                problems.append(Problem("removed", None, message))
        return Verification(count, last_id, last_hash, problems, found)


async def _lock(conn: AsyncConnection) -> None:
    """Serialise appenders. SQLite: the write transaction already holds the database's write lock
    (BEGIN IMMEDIATE). PostgreSQL: an advisory lock held to the end of the transaction, one per
    schema; unlike LOCK TABLE or SELECT ... FOR UPDATE it needs no UPDATE or DELETE privilege, so
    the gateway's role may be left with INSERT and SELECT only on the trail."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(hashtext('waypost.admin_audit'), hashtext(current_schema()))"
            )
        )


async def _check(conn: AsyncConnection, entry: Any, expected: str, last_id: int | None) -> Problem | None:
    entry_id = entry["id"]
    if chain_hash(entry["prev_hash"], entry) != entry["hash"]:
        return Problem("edited", entry_id, f"entry {entry_id} was edited: it no longer matches its hash")
    if entry["prev_hash"] == expected:
        return None
    written_after = await conn.scalar(sa.select(_trail.c.id).where(_trail.c.hash == entry["prev_hash"]))
    if written_after is not None:
        where = "comes first" if last_id is None else f"comes after entry {last_id}"
        return Problem(
            "reordered",
            entry_id,
            f"entry {entry_id} is out of order: it was written after entry {written_after}, but {where}",
        )
    if last_id is None:
        return Problem(
            "removed",
            entry_id,
            f"entries before entry {entry_id} were removed: it is the first but does not start the chain",
        )
    return Problem(
        "removed",
        entry_id,
        f"entries between entry {last_id} and entry {entry_id} were removed "
        f"(or entry {last_id} was rewritten along with its hash)",
    )


def _conditions(where: TrailFilter) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if where.action is not None:
        clauses.append(_trail.c.action == where.action)
    if where.target_type is not None:
        clauses.append(_trail.c.target_type == where.target_type)
    if where.target_id is not None:
        clauses.append(_trail.c.target_id == where.target_id)
    if where.actor_id is not None:
        clauses.append(_trail.c.actor_id == where.actor_id)
    if where.actor_email is not None:
        clauses.append(_trail.c.actor_email == where.actor_email)
    if where.start is not None:
        clauses.append(_trail.c.created_at >= where.start)
    if where.end is not None:
        clauses.append(_trail.c.created_at < where.end)
    return clauses


def _entry(row: Any) -> TrailEntry:
    return TrailEntry(**{column.name: row[column.name] for column in _trail.c})
