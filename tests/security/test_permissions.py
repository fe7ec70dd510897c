"""Permissions, roles and the escalation rules: nobody can hand out more than they hold."""

from __future__ import annotations

import pytest

from waypost.core.errors import BadRequest, Forbidden
from waypost.security.permissions import (
    PERMISSIONS,
    ROLES,
    check_permission_names,
    effective_permissions,
    ensure_can_act_on,
    ensure_can_add_to_group,
    ensure_can_assign_role,
    ensure_can_grant,
    ensure_token_models_within,
    require,
    role_permissions,
)
from waypost.security.principal import Principal

ALL = frozenset(PERMISSIONS)


def principal(user_id: int = 1, role: str = "user", permissions: frozenset[str] = frozenset()) -> Principal:
    return Principal(user_id, f"u{user_id}@example.com", role, permissions, frozenset())


ADMIN = principal(1, "admin", ALL)
USER_ADMIN = principal(2, "user", frozenset({"user.view", "user.create", "user.modify"}))


def test_the_catalogue_lists_every_contract_permission_with_a_description() -> None:
    expected = (
        {
            f"{obj}.{verb}"
            for obj in ("user", "group", "model", "token", "secret", "rule", "budget", "limit")
            for verb in ("view", "create", "modify", "delete")
        }
        | {"usage.view", "audit.view"}
        | {"cache.view", "cache.manage"}
    )
    assert set(PERMISSIONS) == expected
    assert all(description and "\n" not in description for description in PERMISSIONS.values())


def test_admin_holds_every_permission_and_user_and_gateway_none() -> None:
    assert {"admin": ALL, "user": frozenset(), "gateway": frozenset()} == ROLES
    assert role_permissions("admin") == ALL


def test_an_unknown_role_is_a_bad_request_listing_the_roles() -> None:
    with pytest.raises(BadRequest, match="unknown role 'root'; valid roles: admin, user, gateway"):
        role_permissions("root")


def test_effective_permissions_are_the_role_plus_grants() -> None:
    assert effective_permissions("user", ["model.view", "usage.view"]) == {"model.view", "usage.view"}
    assert effective_permissions("admin", []) == ALL


def test_a_gateway_account_holds_no_permission_whatever_was_granted() -> None:
    assert effective_permissions("gateway", ["user.create", "secret.view"]) == frozenset()


def test_unknown_permission_names_are_a_bad_request_listing_the_valid_ones() -> None:
    with pytest.raises(BadRequest, match=r"unknown permission 'user\.hack'; valid permissions: user\.view, "):
        check_permission_names(["user.view", "user.hack"])


def test_require_names_the_missing_permission() -> None:
    require(USER_ADMIN, "user.create")
    with pytest.raises(Forbidden, match=r"needs the 'secret\.view' permission"):
        require(USER_ADMIN, "secret.view")


def test_granting_needs_holding_every_granted_permission() -> None:
    ensure_can_grant(USER_ADMIN.permissions, ["user.view"])
    with pytest.raises(Forbidden, match=r"do not hold: 'secret\.view', 'user\.delete'"):
        ensure_can_grant(USER_ADMIN.permissions, ["user.delete", "user.view", "secret.view"])


def test_granting_an_unknown_permission_is_a_bad_request_not_forbidden() -> None:
    with pytest.raises(BadRequest, match="unknown permission 'everything'"):
        ensure_can_grant(ALL, ["everything"])


def test_acting_on_a_user_holding_more_is_refused() -> None:
    with pytest.raises(Forbidden, match=r"user #9 holds permissions you do not \('secret.view'\)"):
        ensure_can_act_on(USER_ADMIN, 9, "user", frozenset({"user.view", "secret.view"}))


def test_acting_on_an_admin_needs_every_permission_of_the_role() -> None:
    with pytest.raises(Forbidden, match="user #9 holds permissions you do not"):
        ensure_can_act_on(USER_ADMIN, 9, "admin", frozenset())
    ensure_can_act_on(ADMIN, 9, "admin", frozenset())


def test_acting_on_a_user_holding_less_is_allowed() -> None:
    ensure_can_act_on(USER_ADMIN, 9, "user", frozenset({"user.view"}))


def test_nobody_changes_their_own_access_not_even_an_admin() -> None:
    with pytest.raises(Forbidden, match="cannot change your own role, active flag or permissions"):
        ensure_can_act_on(ADMIN, ADMIN.user_id, "admin", ALL, changes_own_access=True)


def test_editing_ones_own_profile_is_not_an_access_change() -> None:
    ensure_can_act_on(USER_ADMIN, USER_ADMIN.user_id, "user", USER_ADMIN.permissions)


def test_assigning_a_role_needs_its_permissions() -> None:
    ensure_can_assign_role(USER_ADMIN, "user")
    ensure_can_assign_role(USER_ADMIN, "gateway")
    with pytest.raises(Forbidden, match="assigning the role 'admin' needs every permission it carries"):
        ensure_can_assign_role(USER_ADMIN, "admin")


def test_adding_to_a_group_needs_the_groups_permissions() -> None:
    ensure_can_add_to_group(USER_ADMIN, "helpdesk", frozenset({"user.view"}))
    with pytest.raises(Forbidden, match=r"group 'ops' grants permissions you do not hold \('model.delete'\)"):
        ensure_can_add_to_group(USER_ADMIN, "ops", frozenset({"user.view", "model.delete"}))


def test_a_token_may_narrow_its_owners_models() -> None:
    ensure_token_models_within(frozenset({"a", "b"}), ["a"])
    ensure_token_models_within(frozenset({"a", "b"}), None)
    ensure_token_models_within(None, ["anything"])


def test_a_token_may_not_widen_its_owners_models() -> None:
    with pytest.raises(Forbidden, match="the token's owner may not use 'c'"):
        ensure_token_models_within(frozenset({"a", "b"}), ["a", "c"])


def test_an_empty_token_model_list_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="models: an empty list"):
        ensure_token_models_within(None, [])


def test_model_access_joins_assigned_and_public_names_and_the_token_narrows_it() -> None:
    public = frozenset({"open-1", "open-2"})
    user = Principal(3, "u3@example.com", "user", frozenset(), frozenset({"mine"}), public=public)
    narrowed = Principal(
        3, "u3@example.com", "user", frozenset(), frozenset({"mine"}), 7, frozenset({"open-1"}), public
    )
    admin = Principal(1, "a@example.com", "admin", ALL, None, public=public)
    assert [user.may_use(m) for m in ("mine", "open-1", "other")] == [True, True, False]
    assert [narrowed.may_use(m) for m in ("mine", "open-1", "open-2")] == [False, True, False]
    assert admin.may_use("other") and admin.model_names() is None
    assert user.model_names() == {"mine", "open-1", "open-2"}
    assert user.public is public  # shared, not copied into each principal
