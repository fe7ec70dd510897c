"""Models stored through the API, and which users and groups may use which model."""

from __future__ import annotations

from typing import Any

import pytest

from waypost.core.errors import Conflict, NotFound
from waypost.store import Store
from waypost.store.records import AssignmentRecord

CONFIG: dict[str, Any] = {
    "provider": "openai",
    "base_url": "https://api.example.com/v1",
    "api_key": "secret://model.gpt.api_key",
    "headers": {"x-team": "café ☕"},
    "timeouts": {"total": 12.5, "connect": 3},
    "retry": {"max_retries": 0, "status_codes": [429, 503]},
    "fallbacks": ["backup", "other"],
    "verify_tls": False,
    "prices": None,
    "mock": {"tool_arguments": {"nested": [1, {"deep": True}]}},
}


async def test_a_model_config_round_trips_as_json(store: Store) -> None:
    created = await store.models.create("gpt", CONFIG, public=True)
    assert (created.name, created.public, created.config) == ("gpt", True, CONFIG)
    assert await store.models.get("gpt") == created


async def test_name_and_public_are_not_kept_inside_the_config(store: Store) -> None:
    created = await store.models.create("gpt", {"name": "gpt", "public": True, "provider": "mock"})
    assert (created.config, created.public) == ({"provider": "mock"}, False)


async def test_a_taken_model_name_is_a_conflict(store: Store) -> None:
    await store.models.create("gpt", CONFIG)
    with pytest.raises(Conflict, match="a model named 'gpt' already exists"):
        await store.models.create("gpt", CONFIG)


async def test_models_are_listed_by_name(store: Store) -> None:
    for name in ("zeta", "alpha", "Mid"):
        await store.models.create(name, {"provider": "mock"})
    assert [m.name for m in await store.models.list()] == ["Mid", "alpha", "zeta"]
    assert await store.models.get("missing") is None


async def test_update_replaces_the_config_whole(store: Store) -> None:
    created = await store.models.create("gpt", CONFIG)
    updated = await store.models.update("gpt", config={"provider": "mock"})
    assert (updated.config, updated.public, updated.created_at) == (
        {"provider": "mock"},
        False,
        created.created_at,
    )
    assert updated.updated_at > created.updated_at


async def test_update_can_change_only_the_public_flag(store: Store) -> None:
    await store.models.create("gpt", CONFIG)
    updated = await store.models.update("gpt", public=True)
    assert (updated.config, updated.public) == (CONFIG, True)


async def test_updating_an_unknown_model_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="model 'ghost' does not exist"):
        await store.models.update("ghost", public=True)


async def test_deleting_a_model_removes_its_assignments(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    await store.models.create("gpt", CONFIG)
    await store.assignments.assign("gpt", user_id=ada.id)
    await store.assignments.assign("claude", user_id=ada.id)
    assert await store.models.delete("gpt") is True
    assert await store.models.delete("gpt") is False
    assert await store.models.get("gpt") is None
    assert await store.assignments.models_for_user(ada.id) == {"claude"}


async def test_config_file_models_can_be_assigned_by_name(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    await store.assignments.assign("declared-in-yaml", user_id=ada.id)
    assert await store.assignments.of_model("declared-in-yaml") == [
        AssignmentRecord("declared-in-yaml", ada.id, None)
    ]


async def test_assigning_twice_is_harmless(store: Store) -> None:
    ops = await store.groups.create("ops")
    await store.assignments.assign("gpt", group_id=ops.id)
    await store.assignments.assign("gpt", group_id=ops.id)
    assert await store.assignments.list() == [AssignmentRecord("gpt", None, ops.id)]


async def test_assigning_to_a_missing_owner_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="user 404 does not exist"):
        await store.assignments.assign("gpt", user_id=404)
    with pytest.raises(NotFound, match="group 404 does not exist"):
        await store.assignments.assign("gpt", group_id=404)


async def test_an_assignment_needs_exactly_one_owner(store: Store) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await store.assignments.assign("gpt")


async def test_unassign_reports_whether_there_was_an_assignment(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops = await store.groups.create("ops")
    await store.assignments.assign("gpt", user_id=ada.id)
    await store.assignments.assign("gpt", group_id=ops.id)
    assert await store.assignments.unassign("gpt", user_id=ada.id) is True
    assert await store.assignments.unassign("gpt", user_id=ada.id) is False
    assert await store.assignments.of_model("gpt") == [AssignmentRecord("gpt", None, ops.id)]


async def test_a_user_may_use_models_assigned_to_them_or_their_groups(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    bo = await store.users.create("bo@example.org", "Bo")
    ops, dev = await store.groups.create("ops"), await store.groups.create("dev")
    await store.groups.add_member(ops.id, ada.id)
    await store.groups.add_member(dev.id, bo.id)
    await store.assignments.assign("mine", user_id=ada.id)
    await store.assignments.assign("shared", user_id=ada.id)
    await store.assignments.assign("shared", group_id=ops.id)
    await store.assignments.assign("ops-only", group_id=ops.id)
    await store.assignments.assign("dev-only", group_id=dev.id)
    await store.assignments.assign("bos", user_id=bo.id)
    assert await store.assignments.models_for_user(ada.id) == {"mine", "shared", "ops-only"}
    assert await store.assignments.models_for_user(bo.id) == {"dev-only", "bos"}


async def test_assignments_are_listed_by_model(store: Store) -> None:
    ada = await store.users.create("ada@example.org", "Ada")
    ops = await store.groups.create("ops")
    await store.assignments.assign("zeta", user_id=ada.id)
    await store.assignments.assign("alpha", group_id=ops.id)
    await store.assignments.assign("alpha", user_id=ada.id)
    assert await store.assignments.list() == [
        AssignmentRecord("alpha", None, ops.id),
        AssignmentRecord("alpha", ada.id, None),
        AssignmentRecord("zeta", ada.id, None),
    ]
