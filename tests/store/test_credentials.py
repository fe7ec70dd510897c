"""API tokens, refresh tokens and single sign-on logins in progress."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event

from waypost.core.errors import Conflict, NotFound
from waypost.store import UNCHANGED, Store
from waypost.store.records import FlowRecord, UserRecord
from waypost.store.repository import now

LATER = timedelta(hours=1)


@pytest.fixture
async def ada(store: Store) -> UserRecord:
    return await store.users.create("ada@example.org", "Ada")


async def test_a_created_token_reads_back_by_id_and_hash(store: Store, ada: UserRecord) -> None:
    expires = now() + LATER
    token = await store.tokens.create(
        ada.id, "ci", token_hash="hash-1", prefix="wp-abcdefg", models=["gpt", "claude"], expires_at=expires
    )
    assert (token.user_id, token.name, token.prefix) == (ada.id, "ci", "wp-abcdefg")
    assert (token.models, token.expires_at, token.last_used_at) == (("gpt", "claude"), expires, None)
    assert await store.tokens.get(token.id) == token
    assert await store.tokens.by_hash("hash-1") == token
    assert await store.tokens.get(404) is None and await store.tokens.by_hash("nope") is None


async def test_no_model_restriction_and_an_empty_one_differ(store: Store, ada: UserRecord) -> None:
    unrestricted = await store.tokens.create(ada.id, "all", token_hash="h1", prefix="wp-1")
    nothing = await store.tokens.create(ada.id, "none", token_hash="h2", prefix="wp-2", models=[])
    assert (await store.tokens.get(unrestricted.id)).models is None  # type: ignore[union-attr]
    assert (await store.tokens.get(nothing.id)).models == ()  # type: ignore[union-attr]


async def test_a_token_for_a_missing_user_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="user 404 does not exist"):
        await store.tokens.create(404, "ci", token_hash="h", prefix="wp-")


async def test_a_repeated_token_hash_is_a_conflict_without_showing_it(store: Store, ada: UserRecord) -> None:
    await store.tokens.create(ada.id, "one", token_hash="the-hash", prefix="wp-1")
    with pytest.raises(Conflict, match="same hash already exists") as caught:
        await store.tokens.create(ada.id, "two", token_hash="the-hash", prefix="wp-2")
    assert "the-hash" not in caught.value.message


async def test_tokens_are_listed_for_everyone_or_one_user(store: Store, ada: UserRecord) -> None:
    bo = await store.users.create("bo@example.org", "Bo")
    first = await store.tokens.create(ada.id, "a", token_hash="h1", prefix="wp-1")
    second = await store.tokens.create(bo.id, "b", token_hash="h2", prefix="wp-2")
    third = await store.tokens.create(ada.id, "c", token_hash="h3", prefix="wp-3")
    assert [t.id for t in await store.tokens.list()] == [first.id, second.id, third.id]
    assert [t.id for t in await store.tokens.list(ada.id)] == [first.id, third.id]


async def test_update_leaves_what_is_not_given(store: Store, ada: UserRecord) -> None:
    expires = now() + LATER
    token = await store.tokens.create(
        ada.id, "ci", token_hash="h", prefix="wp-", models=["gpt"], expires_at=expires
    )
    renamed = await store.tokens.update(token.id, name="deploy")
    assert (renamed.name, renamed.models, renamed.expires_at) == ("deploy", ("gpt",), expires)
    same = await store.tokens.update(token.id, models=UNCHANGED, expires_at=UNCHANGED)
    assert same == renamed


async def test_update_with_none_lifts_the_restriction_and_the_expiry(store: Store, ada: UserRecord) -> None:
    token = await store.tokens.create(
        ada.id, "ci", token_hash="h", prefix="wp-", models=["gpt"], expires_at=now()
    )
    updated = await store.tokens.update(token.id, models=None, expires_at=None)
    assert (updated.name, updated.models, updated.expires_at) == ("ci", None, None)


async def test_update_sets_models_and_expiry(store: Store, ada: UserRecord) -> None:
    token = await store.tokens.create(ada.id, "ci", token_hash="h", prefix="wp-")
    expires = now() + LATER
    updated = await store.tokens.update(token.id, models=("a", "b"), expires_at=expires)
    assert (updated.models, updated.expires_at) == (("a", "b"), expires)


async def test_updating_an_unknown_token_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="token 404 does not exist"):
        await store.tokens.update(404, name="ghost")
    with pytest.raises(NotFound, match="token 404 does not exist"):
        await store.tokens.update(404)


async def test_deleting_a_token_reports_whether_it_existed(store: Store, ada: UserRecord) -> None:
    token = await store.tokens.create(ada.id, "ci", token_hash="h", prefix="wp-")
    assert await store.tokens.delete(token.id) is True
    assert await store.tokens.by_hash("h") is None
    assert await store.tokens.delete(token.id) is False


async def test_touch_records_use_of_many_tokens_in_one_statement(store: Store, ada: UserRecord) -> None:
    tokens = [await store.tokens.create(ada.id, f"t{i}", token_hash=f"h{i}", prefix="wp-") for i in range(3)]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    when = now()
    await store.tokens.touch([tokens[0].id, tokens[2].id], when)
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)

    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    assert [t.last_used_at for t in await store.tokens.list()] == [when, None, when]


async def test_touch_never_moves_last_use_back(store: Store, ada: UserRecord) -> None:
    token = await store.tokens.create(ada.id, "ci", token_hash="h", prefix="wp-")
    when = now()
    await store.tokens.touch([token.id], when)
    await store.tokens.touch([token.id], when - LATER)
    assert (await store.tokens.get(token.id)).last_used_at == when  # type: ignore[union-attr]


async def test_touching_nothing_is_fine(store: Store) -> None:
    await store.tokens.touch([], now())


async def test_a_refresh_token_is_consumed_once(store: Store, ada: UserRecord) -> None:
    await store.refresh.create(ada.id, token_hash="r1", expires_at=now() + LATER)
    assert await store.refresh.consume("r1") == ada.id
    assert await store.refresh.consume("r1") is None


async def test_of_racing_consumes_exactly_one_wins(store: Store, ada: UserRecord) -> None:
    await store.refresh.create(ada.id, token_hash="r1", expires_at=now() + LATER)
    results = await asyncio.gather(*(store.refresh.consume("r1") for _ in range(5)))
    assert sorted(results, key=lambda r: r is None) == [ada.id, None, None, None, None]


async def test_an_expired_or_unknown_refresh_token_is_not_consumed(store: Store, ada: UserRecord) -> None:
    await store.refresh.create(ada.id, token_hash="old", expires_at=now() - timedelta(seconds=1))
    assert await store.refresh.consume("old") is None
    assert await store.refresh.consume("unknown") is None


async def test_revoking_a_user_ends_all_their_refresh_tokens(store: Store, ada: UserRecord) -> None:
    bo = await store.users.create("bo@example.org", "Bo")
    for owner, token_hash in ((ada, "a1"), (ada, "a2"), (bo, "b1")):
        await store.refresh.create(owner.id, token_hash=token_hash, expires_at=now() + LATER)
    await store.refresh.revoke_user(ada.id)
    assert await store.refresh.consume("a1") is None and await store.refresh.consume("a2") is None
    assert await store.refresh.consume("b1") == bo.id


async def test_a_refresh_token_for_a_missing_user_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="user 404 does not exist"):
        await store.refresh.create(404, token_hash="r", expires_at=now() + LATER)


async def test_a_repeated_refresh_hash_is_a_conflict(store: Store, ada: UserRecord) -> None:
    await store.refresh.create(ada.id, token_hash="r", expires_at=now() + LATER)
    with pytest.raises(Conflict, match="same hash already exists"):
        await store.refresh.create(ada.id, token_hash="r", expires_at=now() + LATER)


async def test_expiry_compares_instants_whatever_the_time_zone(store: Store, ada: UserRecord) -> None:
    # One hour ahead, written as wall time ten hours behind UTC; one hour ago, ten hours ahead.
    future = (now() + LATER).astimezone(timezone(timedelta(hours=-10)))
    past = (now() - LATER).astimezone(timezone(timedelta(hours=10)))
    await store.refresh.create(ada.id, token_hash="future", expires_at=future)
    await store.refresh.create(ada.id, token_hash="past", expires_at=past)
    assert await store.refresh.consume("future") == ada.id
    assert await store.refresh.consume("past") is None


async def test_datetimes_come_back_aware_and_in_utc(store: Store, ada: UserRecord) -> None:
    tokyo = timezone(timedelta(hours=9))
    expires = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=tokyo)
    token = await store.tokens.create(ada.id, "ci", token_hash="h", prefix="wp-", expires_at=expires)
    read = await store.tokens.get(token.id)
    assert read is not None and read.expires_at == expires
    assert read.expires_at.utcoffset() == timedelta(0) and read.expires_at.tzinfo == UTC
    assert ada.created_at.tzinfo == UTC and read.created_at.tzinfo == UTC


def _flow(state: str, expires_at: datetime, redirect_to: str | None = None) -> FlowRecord:
    return FlowRecord(state, "corp", "nonce-1", "verifier-1", redirect_to, expires_at)


async def test_a_login_flow_is_taken_once(store: Store) -> None:
    flow = _flow("state-1", now() + LATER, "/ui/")
    await store.flows.put(flow)
    assert await store.flows.take("state-1") == flow
    assert await store.flows.take("state-1") is None


async def test_an_expired_login_flow_is_not_returned(store: Store) -> None:
    await store.flows.put(_flow("stale", now() - timedelta(seconds=1)))
    assert await store.flows.take("stale") is None


async def test_an_unknown_login_flow_is_none(store: Store) -> None:
    assert await store.flows.take("never-issued") is None


async def test_a_repeated_flow_state_is_a_conflict(store: Store) -> None:
    await store.flows.put(_flow("state-1", now() + LATER))
    with pytest.raises(Conflict, match="this state already exists"):
        await store.flows.put(_flow("state-1", now() + LATER))


async def test_the_flow_secrets_stay_out_of_the_repr() -> None:
    text = repr(_flow("state-1", now()))
    assert "nonce-1" not in text and "verifier-1" not in text
