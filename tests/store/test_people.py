"""Users, groups and permission grants."""

from __future__ import annotations

import pytest

from waypost.core.errors import Conflict, NotFound
from waypost.store import Store
from waypost.store.repository import now


async def test_a_created_user_reads_back(store: Store) -> None:
    user = await store.users.create("ada@example.org", "Ada", password_hash="$argon2id$h", role="admin")
    assert (user.email, user.display_name, user.role, user.active) == (
        "ada@example.org",
        "Ada",
        "admin",
        True,
    )
    assert user.password_hash == "$argon2id$h"
    assert user.last_login_at is None and user.groups == ()
    assert await store.users.get(user.id) == user


async def test_users_default_to_active_users_without_a_password(store: Store) -> None:
    user = await store.users.create("bo@example.org", "Bo")
    assert (user.role, user.active, user.password_hash) == ("user", True, None)


async def test_emails_are_stored_lower_cased_and_found_case_insensitively(store: Store) -> None:
    user = await store.users.create("  Ada.Lovelace@Example.ORG ", "Ada")
    assert user.email == "ada.lovelace@example.org"
    assert await store.users.by_email("ADA.LOVELACE@example.org") == user


async def test_unknown_users_are_none(store: Store) -> None:
    assert await store.users.get(404) is None
    assert await store.users.by_email("nobody@example.org") is None


async def test_a_taken_email_is_a_conflict_whatever_its_case(store: Store) -> None:
    await store.users.create("ada@example.org", "Ada")
    with pytest.raises(Conflict, match=r"a user with e-mail 'ada@example\.org' already exists") as caught:
        await store.users.create("ADA@example.org", "Other Ada")
    assert "INSERT" not in caught.value.message and "constraint" not in caught.value.message


async def test_changing_to_a_taken_email_is_a_conflict(store: Store) -> None:
    await store.users.create("ada@example.org", "Ada")
    bo = await store.users.create("bo@example.org", "Bo")
    with pytest.raises(Conflict, match=r"'ada@example\.org' already exists"):
        await store.users.update(bo.id, email="Ada@Example.org")


async def test_the_password_hash_stays_out_of_the_repr(store: Store) -> None:
    user = await store.users.create("ada@example.org", "Ada", password_hash="$argon2id$secret-hash")
    assert "secret-hash" not in repr(user)


async def test_users_are_listed_in_creation_order_and_counted(store: Store) -> None:
    ids = [(await store.users.create(f"u{i}@example.org", f"U{i}")).id for i in (3, 1, 2)]
    assert [u.id for u in await store.users.list()] == ids
    assert await store.users.count() == 3


async def test_update_changes_only_the_given_fields(store: Store) -> None:
    user = await store.users.create("ada@example.org", "Ada", password_hash="h1")
    updated = await store.users.update(user.id, display_name="Countess", role="admin", active=False)
    assert (updated.display_name, updated.role, updated.active) == ("Countess", "admin", False)
    assert (updated.email, updated.password_hash, updated.created_at) == (user.email, "h1", user.created_at)
    assert updated.updated_at > user.updated_at


async def test_update_can_clear_the_password_hash(store: Store) -> None:
    user = await store.users.create("ada@example.org", "Ada", password_hash="h1")
    assert (await store.users.update(user.id, password_hash=None)).password_hash is None


async def test_recording_a_login_does_not_count_as_an_update(store: Store) -> None:
    user = await store.users.create("ada@example.org", "Ada")
    when = now()
    updated = await store.users.update(user.id, last_login_at=when)
    assert updated.last_login_at == when
    assert updated.updated_at == user.updated_at


async def test_updating_an_unknown_user_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="user 404 does not exist"):
        await store.users.update(404, display_name="Ghost")


async def test_deleting_a_user_reports_whether_it_existed(store: Store) -> None:
    user = await store.users.create("ada@example.org", "Ada")
    assert await store.users.delete(user.id) is True
    assert await store.users.get(user.id) is None
    assert await store.users.delete(user.id) is False


async def test_ids_of_deleted_users_are_never_reused(store: Store) -> None:
    first = await store.users.create("first@example.org", "First")
    await store.users.delete(first.id)
    second = await store.users.create("second@example.org", "Second")
    assert second.id != first.id


async def test_deleting_a_user_removes_everything_they_own(store: Store) -> None:
    user = await store.users.create("ada@example.org", "Ada")
    other = await store.users.create("bo@example.org", "Bo")
    team = await store.groups.create("team")
    await store.groups.add_member(team.id, user.id)
    await store.groups.add_member(team.id, other.id)
    await store.grants.grant("user.view", user_id=user.id)
    await store.assignments.assign("gpt", user_id=user.id)
    await store.assignments.assign("gpt", user_id=other.id)
    await store.tokens.create(user.id, "ci", token_hash="h-ada", prefix="wp-ada")
    await store.refresh.create(user.id, token_hash="r-ada", expires_at=now().replace(year=now().year + 1))

    await store.users.delete(user.id)

    assert await store.tokens.list(user.id) == [] and await store.tokens.by_hash("h-ada") is None
    assert await store.refresh.consume("r-ada") is None
    assert (await store.groups.get(team.id)).members == (other.id,)  # type: ignore[union-attr]
    assert await store.grants.of_user(user.id) == frozenset()
    assert [a.user_id for a in await store.assignments.list()] == [other.id]


async def test_a_created_group_reads_back_by_id_and_name(store: Store) -> None:
    group = await store.groups.create("research", "People who read papers")
    assert (group.name, group.description, group.members) == ("research", "People who read papers", ())
    assert await store.groups.get(group.id) == group
    assert await store.groups.by_name("research") == group
    assert await store.groups.get(404) is None and await store.groups.by_name("nope") is None


async def test_a_taken_group_name_is_a_conflict(store: Store) -> None:
    await store.groups.create("research")
    with pytest.raises(Conflict, match="a group named 'research' already exists"):
        await store.groups.create("research")


async def test_groups_are_listed_by_name(store: Store) -> None:
    for name in ("ops", "Admins", "dev"):
        await store.groups.create(name)
    assert [g.name for g in await store.groups.list()] == ["Admins", "dev", "ops"]


async def test_group_update_renames_and_describes(store: Store) -> None:
    group = await store.groups.create("research")
    renamed = await store.groups.update(group.id, name="science")
    assert (renamed.name, renamed.description) == ("science", "")
    described = await store.groups.update(group.id, description="Lab")
    assert (described.name, described.description) == ("science", "Lab")


async def test_renaming_a_group_to_a_taken_name_is_a_conflict(store: Store) -> None:
    await store.groups.create("ops")
    dev = await store.groups.create("dev")
    with pytest.raises(Conflict, match="a group named 'ops' already exists"):
        await store.groups.update(dev.id, name="ops")


async def test_updating_an_unknown_group_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="group 404 does not exist"):
        await store.groups.update(404, name="ghosts")


async def test_members_and_memberships_are_sorted(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    bo = await store.users.create("bo@example.org", "Bo")
    ops, dev = await store.groups.create("ops"), await store.groups.create("dev")
    for group in (ops, dev):
        for user in (bo, ada):
            await store.groups.add_member(group.id, user.id)
    assert (await store.groups.get(ops.id)).members == (ada.id, bo.id)  # type: ignore[union-attr]
    assert (await store.users.get(ada.id)).groups == ("dev", "ops")  # type: ignore[union-attr]
    assert [u.groups for u in await store.users.list()] == [("dev", "ops"), ("dev", "ops")]
    assert [g.name for g in await store.groups.of_user(bo.id)] == ["dev", "ops"]


async def test_adding_a_member_twice_is_harmless(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops = await store.groups.create("ops")
    await store.groups.add_member(ops.id, ada.id)
    await store.groups.add_member(ops.id, ada.id)
    assert (await store.groups.get(ops.id)).members == (ada.id,)  # type: ignore[union-attr]


async def test_adding_a_missing_user_or_to_a_missing_group_is_not_found(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops = await store.groups.create("ops")
    with pytest.raises(NotFound, match="user 404 does not exist"):
        await store.groups.add_member(ops.id, 404)
    with pytest.raises(NotFound, match="group 404 does not exist"):
        await store.groups.add_member(404, ada.id)


async def test_removing_a_member_reports_whether_they_were_one(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops = await store.groups.create("ops")
    await store.groups.add_member(ops.id, ada.id)
    assert await store.groups.remove_member(ops.id, ada.id) is True
    assert await store.groups.remove_member(ops.id, ada.id) is False
    assert await store.groups.of_user(ada.id) == []


async def test_deleting_a_group_keeps_its_members_but_drops_its_grants_and_models(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops = await store.groups.create("ops")
    await store.groups.add_member(ops.id, ada.id)
    await store.grants.grant("model.view", group_id=ops.id)
    await store.assignments.assign("gpt", group_id=ops.id)
    assert await store.groups.delete(ops.id) is True
    assert await store.groups.delete(ops.id) is False
    assert (await store.users.get(ada.id)).groups == ()  # type: ignore[union-attr]
    assert await store.grants.effective(ada.id) == frozenset()
    assert await store.assignments.models_for_user(ada.id) == frozenset()


async def test_grants_are_idempotent_and_revocable(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    await store.grants.grant("user.view", user_id=ada.id)
    await store.grants.grant("user.view", user_id=ada.id)
    await store.grants.grant("token.view", user_id=ada.id)
    assert await store.grants.of_user(ada.id) == {"user.view", "token.view"}
    assert await store.grants.revoke("user.view", user_id=ada.id) is True
    assert await store.grants.revoke("user.view", user_id=ada.id) is False
    assert await store.grants.of_user(ada.id) == {"token.view"}


async def test_group_grants_are_separate_from_user_grants(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops = await store.groups.create("ops")
    await store.grants.grant("model.view", group_id=ops.id)
    await store.grants.grant("model.view", user_id=ada.id)
    assert await store.grants.of_group(ops.id) == {"model.view"}
    assert await store.grants.revoke("model.view", group_id=ops.id) is True
    assert await store.grants.of_user(ada.id) == {"model.view"}


async def test_effective_grants_add_those_of_every_group(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops, dev, other = [await store.groups.create(n) for n in ("ops", "dev", "other")]
    await store.groups.add_member(ops.id, ada.id)
    await store.groups.add_member(dev.id, ada.id)
    await store.grants.grant("user.view", user_id=ada.id)
    await store.grants.grant("model.view", group_id=ops.id)
    await store.grants.grant("user.view", group_id=dev.id)
    await store.grants.grant("secret.view", group_id=other.id)
    assert await store.grants.effective(ada.id) == {"user.view", "model.view"}
    assert await store.grants.of_user(ada.id) == {"user.view"}


async def test_granting_to_a_missing_owner_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="user 404 does not exist"):
        await store.grants.grant("user.view", user_id=404)
    with pytest.raises(NotFound, match="group 404 does not exist"):
        await store.grants.grant("user.view", group_id=404)


async def test_a_grant_needs_exactly_one_owner(store: Store) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await store.grants.grant("user.view")
    with pytest.raises(ValueError, match="exactly one"):
        await store.grants.grant("user.view", user_id=1, group_id=1)
