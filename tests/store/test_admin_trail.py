"""The admin audit trail: a hash chain appended under a lock, whose verification names the first
entry that was edited, removed or moved (the tampering is done in SQL, behind the store's back)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.dbs import POSTGRES_URL, fresh_database, postgres_available
from waypost.settings import DatabaseSettings
from waypost.store import Store
from waypost.store.admin_trail import GENESIS, REMOVED, TrailChange, TrailFilter, chain_hash


def change(n: int, **fields: Any) -> TrailChange:
    defaults: dict[str, Any] = {
        "action": "user.update",
        "target_type": "user",
        "target_id": str(n),
        "actor_id": 1,
        "actor_email": "admin@example.org",
        "client_ip": "127.0.0.1",
        "before": {"role": "user", "n": n},
        "after": {"role": "admin", "n": n, "ratio": 0.25, "whole": 2.0},
    }
    return TrailChange(**{**defaults, **fields})


async def filled(store: Store, count: int = 5) -> list[int]:
    return [(await store.admin_trail.append(change(n))).id for n in range(1, count + 1)]


async def sql(store: Store, *statements: str) -> None:
    """Run ``statements`` straight on the database, as someone with write access to it would."""
    async with store.engine.begin() as conn:
        for statement in statements:
            await conn.execute(sa.text(statement))


async def test_each_entry_carries_the_hash_of_the_one_before(store: Store) -> None:
    first = await store.admin_trail.append(change(1))
    second = await store.admin_trail.append(change(2))
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash
    stored = await store.admin_trail.get(second.id)
    assert stored is not None
    assert stored.hash == second.hash == chain_hash(first.hash, asdict(stored))


async def test_an_untouched_trail_verifies(store: Store) -> None:
    ids = await filled(store)
    result = await store.admin_trail.verify()
    assert result.ok and result.problems == []
    assert (result.entries, result.head_id) == (5, ids[-1])
    head = await store.admin_trail.get(ids[-1])
    assert head is not None and result.head_hash == head.hash


async def test_an_empty_trail_verifies(store: Store) -> None:
    result = await store.admin_trail.verify()
    assert result.ok and (result.entries, result.head_id, result.head_hash) == (0, None, None)


async def test_credentials_never_reach_the_trail(store: Store) -> None:
    entry = await store.admin_trail.append(
        change(
            1,
            before={"password_hash": "$argon2id$v=19$abc", "token_hash": "f" * 64, "has_password": True},
            after={
                "api_key": "sk-live-0123456789",
                "config": {
                    "api_key": "secret://model.gpt.api_key",
                    "headers": {"Authorization": "Bearer abc", "x-team": "blue"},
                    "aws": {"secret_access_key": "wJalr", "region": "eu-west-1"},
                },
                "value": "the secret's plaintext",
                "token": "wp-plaintext",
                "value_changed": True,
            },
        )
    )
    stored = await store.admin_trail.get(entry.id)
    assert stored is not None and stored.before is not None and stored.after is not None
    assert stored.before == {"password_hash": REMOVED, "token_hash": REMOVED, "has_password": True}
    config = stored.after["config"]
    assert config["api_key"] == "secret://model.gpt.api_key"  # a reference names, never discloses
    assert config["headers"] == {"Authorization": REMOVED, "x-team": "blue"}
    assert config["aws"] == {"secret_access_key": REMOVED, "region": "eu-west-1"}
    assert stored.after["api_key"] == stored.after["value"] == stored.after["token"] == REMOVED
    assert stored.after["value_changed"] is True
    async with store.engine.connect() as conn:
        text = repr((await conn.execute(sa.text("SELECT * FROM admin_audit"))).all())
    for leaked in ("argon2id", "sk-live", "Bearer abc", "wJalr", "plaintext", "f" * 64):
        assert leaked not in text


async def test_concurrent_appends_from_two_processes_form_one_line(
    store: Store, database: dict[str, Any]
) -> None:
    # A second store on the same database stands for a second worker process.
    other = Store.from_settings(DatabaseSettings.model_validate(database))
    try:
        await asyncio.gather(
            *(store.admin_trail.append(change(n)) for n in range(25)),
            *(other.admin_trail.append(change(100 + n)) for n in range(25)),
        )
    finally:
        await other.close()
    result = await store.admin_trail.verify()
    assert result.ok, result.problems
    assert result.entries == 50
    async with store.engine.connect() as conn:
        links = (await conn.execute(sa.text("SELECT prev_hash FROM admin_audit"))).scalars().all()
    assert len(set(links)) == 50  # no two entries follow the same one: no fork


async def test_an_edited_entry_is_named(store: Store) -> None:
    ids = await filled(store)
    await sql(store, f"UPDATE admin_audit SET actor_email = 'someone@example.org' WHERE id = {ids[2]}")
    result = await store.admin_trail.verify()
    assert not result.ok
    first = result.problems[0]
    assert (first.kind, first.id) == ("edited", ids[2])
    assert f"entry {ids[2]} was edited" in first.message
    assert len(result.problems) == 1  # its hash still links the next entry: only it is named


async def test_an_edited_snapshot_is_named(store: Store) -> None:
    ids = await filled(store)
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.update(sa.table("admin_audit", sa.column("id"), sa.column("after", sa.JSON())))
            .where(sa.column("id") == ids[1])
            .values(after={"role": "user", "n": 2, "ratio": 0.25, "whole": 2})
        )
    result = await store.admin_trail.verify()
    assert [(p.kind, p.id) for p in result.problems] == [("edited", ids[1])]


async def test_an_entry_rewritten_with_its_hash_shows_at_the_next_one(store: Store) -> None:
    ids = await filled(store)
    entry = await store.admin_trail.get(ids[2])
    assert entry is not None
    forged = {**asdict(entry), "actor_email": "someone@example.org"}
    digest = chain_hash(entry.prev_hash, forged)
    await sql(
        store,
        f"UPDATE admin_audit SET actor_email = 'someone@example.org', hash = '{digest}' WHERE id = {ids[2]}",
    )
    result = await store.admin_trail.verify()
    first = result.problems[0]
    assert (first.kind, first.id) == ("removed", ids[3])
    assert f"entry {ids[2]} was rewritten" in first.message


async def test_a_removed_entry_is_named(store: Store) -> None:
    ids = await filled(store)
    await sql(store, f"DELETE FROM admin_audit WHERE id = {ids[2]}")
    result = await store.admin_trail.verify()
    first = result.problems[0]
    assert (first.kind, first.id) == ("removed", ids[3])
    assert f"between entry {ids[1]} and entry {ids[3]} were removed" in first.message
    assert len(result.problems) == 1


async def test_removing_the_first_entry_is_caught(store: Store) -> None:
    ids = await filled(store)
    await sql(store, f"DELETE FROM admin_audit WHERE id = {ids[0]}")
    result = await store.admin_trail.verify()
    assert [(p.kind, p.id) for p in result.problems] == [("removed", ids[1])]


async def test_removing_the_newest_entries_is_caught_by_an_anchor(store: Store) -> None:
    await filled(store)
    anchor = (await store.admin_trail.verify()).head_hash
    assert anchor is not None
    assert (await store.admin_trail.verify(anchor=anchor)).ok
    await sql(store, "DELETE FROM admin_audit WHERE id = (SELECT MAX(id) FROM admin_audit)")
    assert (await store.admin_trail.verify()).ok  # the chain alone cannot tell
    result = await store.admin_trail.verify(anchor=anchor)
    assert [(p.kind, p.id) for p in result.problems] == [("removed", None)]
    assert anchor in result.problems[0].message


async def test_reordered_entries_are_named(store: Store) -> None:
    ids = await filled(store)
    a, b = ids[1], ids[2]
    await sql(
        store,
        f"UPDATE admin_audit SET id = -1 WHERE id = {a}",
        f"UPDATE admin_audit SET id = {a} WHERE id = {b}",
        f"UPDATE admin_audit SET id = {b} WHERE id = -1",
    )
    result = await store.admin_trail.verify()
    first = result.problems[0]
    assert (first.kind, first.id) == ("reordered", a)
    assert f"entry {a} is out of order: it was written after entry {b}" in first.message
    assert all(p.kind == "reordered" for p in result.problems)


async def test_pages_run_newest_first_and_follow_the_cursor(store: Store) -> None:
    ids = await filled(store, 5)
    first = await store.admin_trail.page(TrailFilter(), limit=2)
    assert [e.id for e in first.entries] == [ids[4], ids[3]]
    second = await store.admin_trail.page(TrailFilter(), limit=2, before=first.next)
    third = await store.admin_trail.page(TrailFilter(), limit=2, before=second.next)
    assert [e.id for e in second.entries] == [ids[2], ids[1]]
    assert [e.id for e in third.entries] == [ids[0]] and third.next is None


async def test_pages_filter_by_action_target_actor_and_time(store: Store) -> None:
    await store.admin_trail.append(change(1, action="user.create"))
    await store.admin_trail.append(change(2, action="group.create", target_type="group"))
    mine = await store.admin_trail.append(change(3, actor_id=7, actor_email="ops@example.org"))
    assert [
        e.target_id for e in (await store.admin_trail.page(TrailFilter(action="user.create"))).entries
    ] == ["1"]
    assert [e.action for e in (await store.admin_trail.page(TrailFilter(target_type="group"))).entries] == [
        "group.create"
    ]
    assert [e.id for e in (await store.admin_trail.page(TrailFilter(actor_id=7))).entries] == [mine.id]
    by_email = await store.admin_trail.page(TrailFilter(actor_email="ops@example.org"))
    assert [e.id for e in by_email.entries] == [mine.id]
    assert [e.target_id for e in (await store.admin_trail.page(TrailFilter(target_id="2"))).entries] == ["2"]
    later = await store.admin_trail.page(TrailFilter(start=mine.created_at + timedelta(seconds=1)))
    assert later.entries == []
    earlier = await store.admin_trail.page(TrailFilter(end=mine.created_at))
    assert len(earlier.entries) == 2


async def test_on_postgresql_a_role_that_may_only_insert_and_select_can_append() -> None:
    """The append lock needs no UPDATE or DELETE privilege: the trail can be append-only."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable at WAYPOST_TEST_POSTGRES_URL (127.0.0.1:5432)")
    import asyncpg

    async with fresh_database("postgresql") as database:
        schema, role = database["postgres_schema"], f"trail_{uuid.uuid4().hex[:8]}"
        store = Store.from_settings(DatabaseSettings.model_validate(database))
        await store.upgrade()
        await store.close()
        owner = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await owner.execute(f"CREATE ROLE {role} LOGIN")
            await owner.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
            await owner.execute(f'GRANT SELECT, INSERT ON "{schema}".admin_audit TO {role}')
            url = sa.make_url(database["url"]).set(username=role, password=None)
            limited = Store.from_settings(
                DatabaseSettings.model_validate({**database, "url": url.render_as_string(False)})
            )
            try:
                await asyncio.gather(*(limited.admin_trail.append(change(n)) for n in range(5)))
                result = await limited.admin_trail.verify()
                assert result.ok and result.entries == 5
                with pytest.raises(sa.exc.ProgrammingError):
                    async with limited.engine.begin() as conn:
                        await conn.execute(sa.text("DELETE FROM admin_audit"))
            finally:
                await limited.close()
        finally:
            await owner.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
            await owner.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}')
            await owner.execute(f"DROP ROLE {role}")
            await owner.close()
