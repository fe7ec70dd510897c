"""The stored responses' table on each database (``store/responses.py``): kept per user, read
back as a conversation in one query, deleted, and purged once expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from waypost.api.responses_state import purge_expired
from waypost.settings import DatabaseSettings
from waypost.store import Store
from waypost.store.responses import StoredResponse

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(database: dict[str, Any]) -> AsyncIterator[Store]:
    store = Store.from_settings(DatabaseSettings.model_validate(database))
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


async def user(store: Store, email: str = "ada@example.org") -> int:
    return (await store.users.create(email, email)).id


def row(
    response_id: str, user_id: int, previous: str | None = None, *, expires: timedelta = timedelta(days=1)
) -> StoredResponse:
    return StoredResponse(
        id=response_id,
        user_id=user_id,
        previous_id=previous,
        model="gpt",
        instructions=None,
        input=f'[{{"id": "in-{response_id}"}}]',
        response=f'{{"id": "{response_id}", "output": []}}',
        created_at=NOW - timedelta(minutes=1),
        expires_at=NOW + expires,
    )


async def test_a_kept_response_reads_back_for_its_user(store: Store) -> None:
    ada = await user(store)
    await store.responses.save(row("resp_1", ada))

    found = await store.responses.get("resp_1", ada, NOW)

    assert found == row("resp_1", ada)


async def test_another_users_response_is_not_found(store: Store) -> None:
    ada, bo = await user(store), await user(store, "bo@example.org")
    await store.responses.save(row("resp_1", ada))

    assert await store.responses.get("resp_1", bo, NOW) is None
    assert await store.responses.chain("resp_1", bo, NOW, 10) == []
    assert await store.responses.delete("resp_1", bo, NOW) is False
    assert await store.responses.get("resp_1", ada, NOW) is not None


async def test_an_expired_response_is_not_found(store: Store) -> None:
    ada = await user(store)
    await store.responses.save(row("resp_1", ada, expires=timedelta(seconds=-1)))

    assert await store.responses.get("resp_1", ada, NOW) is None
    assert await store.responses.chain("resp_1", ada, NOW, 10) == []


async def test_a_conversation_reads_back_newest_first_in_one_chain(store: Store) -> None:
    ada = await user(store)
    for n in range(1, 5):
        await store.responses.save(row(f"resp_{n}", ada, f"resp_{n - 1}" if n > 1 else None))

    turns = await store.responses.chain("resp_3", ada, NOW, 10)

    assert [t.id for t in turns] == ["resp_3", "resp_2", "resp_1"]
    assert [t.previous_id for t in turns] == ["resp_2", "resp_1", None]
    assert turns[0].input == '[{"id": "in-resp_3"}]'


async def test_the_chain_stops_at_its_limit(store: Store) -> None:
    ada = await user(store)
    for n in range(1, 6):
        await store.responses.save(row(f"resp_{n}", ada, f"resp_{n - 1}" if n > 1 else None))

    turns = await store.responses.chain("resp_5", ada, NOW, 2)

    assert [t.id for t in turns] == ["resp_5", "resp_4"]


async def test_the_chain_stops_before_an_expired_turn_which_the_oldest_still_names(store: Store) -> None:
    ada = await user(store)
    await store.responses.save(row("resp_1", ada, expires=timedelta(seconds=-1)))
    await store.responses.save(row("resp_2", ada, "resp_1"))
    await store.responses.save(row("resp_3", ada, "resp_2"))

    turns = await store.responses.chain("resp_3", ada, NOW, 10)

    assert [(t.id, t.previous_id) for t in turns] == [("resp_3", "resp_2"), ("resp_2", "resp_1")]


async def test_a_deleted_response_is_gone(store: Store) -> None:
    ada = await user(store)
    await store.responses.save(row("resp_1", ada))

    assert await store.responses.delete("resp_1", ada, NOW) is True
    assert await store.responses.get("resp_1", ada, NOW) is None
    assert await store.responses.delete("resp_1", ada, NOW) is False


async def test_saving_an_id_again_replaces_the_users_own_response(store: Store) -> None:
    ada = await user(store)
    await store.responses.save(row("resp_1", ada))

    await store.responses.save(replace(row("resp_1", ada), model="other"))

    found = await store.responses.get("resp_1", ada, NOW)
    assert found is not None and found.model == "other"


async def test_the_purge_deletes_expired_responses_only(store: Store) -> None:
    ada = await user(store)
    await store.responses.save(row("resp_old", ada, expires=timedelta(seconds=-5)))
    await store.responses.save(row("resp_new", ada))

    assert await purge_expired(store.responses, NOW) == 1

    assert await store.responses.get("resp_new", ada, NOW) is not None
    assert await store.responses.get("resp_old", ada, NOW - timedelta(days=1)) is None


async def test_a_deleted_users_responses_go_with_them(store: Store) -> None:
    ada = await user(store)
    await store.responses.save(row("resp_1", ada))

    await store.users.delete(ada)

    assert await purge_expired(store.responses, NOW + timedelta(days=365)) == 0
