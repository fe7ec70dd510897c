"""Encrypted secrets (the store keeps ciphertext only) and the key-value table."""

from __future__ import annotations

import pytest

from waypost.core.errors import Conflict, NotFound
from waypost.store import Store


async def test_a_created_secret_reads_back_without_its_value(store: Store) -> None:
    secret = await store.secrets.create("openai", ciphertext="gAAAA-1", description="Prod key")
    assert (secret.name, secret.description) == ("openai", "Prod key")
    assert not hasattr(secret, "ciphertext")
    assert await store.secrets.get("openai") == secret
    assert await store.secrets.ciphertext("openai") == "gAAAA-1"


async def test_unknown_secrets_are_none(store: Store) -> None:
    assert await store.secrets.get("missing") is None
    assert await store.secrets.ciphertext("missing") is None


async def test_a_taken_secret_name_is_a_conflict(store: Store) -> None:
    await store.secrets.create("openai", ciphertext="c1")
    with pytest.raises(Conflict, match="a secret named 'openai' already exists"):
        await store.secrets.create("openai", ciphertext="c2")


async def test_secrets_are_listed_by_name(store: Store) -> None:
    for name in ("zeta", "alpha", "model.gpt.api_key"):
        await store.secrets.create(name, ciphertext="c")
    assert [s.name for s in await store.secrets.list()] == ["alpha", "model.gpt.api_key", "zeta"]


async def test_update_changes_the_value_or_the_description(store: Store) -> None:
    created = await store.secrets.create("openai", ciphertext="c1", description="old")
    updated = await store.secrets.update("openai", ciphertext="c2")
    assert (updated.description, await store.secrets.ciphertext("openai")) == ("old", "c2")
    assert updated.updated_at > created.updated_at
    described = await store.secrets.update("openai", description="new")
    assert (described.description, await store.secrets.ciphertext("openai")) == ("new", "c2")


async def test_updating_an_unknown_secret_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="secret 'ghost' does not exist"):
        await store.secrets.update("ghost", ciphertext="c")


async def test_deleting_a_secret_reports_whether_it_existed(store: Store) -> None:
    await store.secrets.create("openai", ciphertext="c")
    assert await store.secrets.delete("openai") is True
    assert await store.secrets.get("openai") is None
    assert await store.secrets.delete("openai") is False


async def test_all_ciphertexts_are_replaced_together(store: Store) -> None:
    await store.secrets.create("a", ciphertext="a-old")
    await store.secrets.create("b", ciphertext="b-old")
    assert await store.secrets.all_ciphertexts() == {"a": "a-old", "b": "b-old"}
    replaced = await store.secrets.replace_ciphertexts({"a": "a-new", "b": "b-new", "gone": "x"})
    assert replaced == 2
    assert await store.secrets.all_ciphertexts() == {"a": "a-new", "b": "b-new"}


async def test_a_rotation_does_not_overwrite_a_secret_changed_meanwhile(store: Store) -> None:
    await store.secrets.create("a", ciphertext="a-old")
    await store.secrets.create("b", ciphertext="b-old")
    before = await store.secrets.all_ciphertexts()
    await store.secrets.update("b", ciphertext="b-changed")
    replaced = await store.secrets.replace_ciphertexts({"a": "a-new", "b": "b-new"}, expected=before)
    assert replaced == 1
    assert await store.secrets.all_ciphertexts() == {"a": "a-new", "b": "b-changed"}


async def test_rotation_keeps_updated_at(store: Store) -> None:
    created = await store.secrets.create("a", ciphertext="a-old")
    await store.secrets.replace_ciphertexts({"a": "a-new"})
    assert (await store.secrets.get("a")).updated_at == created.updated_at  # type: ignore[union-attr]


async def test_kv_sets_and_overwrites(store: Store) -> None:
    assert await store.kv.get("canary") is None
    await store.kv.set("canary", "first")
    await store.kv.set("canary", "second")
    await store.kv.set("other", "x")
    assert (await store.kv.get("canary"), await store.kv.get("other")) == ("second", "x")
