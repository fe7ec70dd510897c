"""Permissions, roles and the escalation rules of the admin API, as pure functions.

Every check raises ``Forbidden`` naming what the actor lacks, or ``BadRequest`` for a permission or
role name that does not exist (listing the valid ones). Nobody can hand out more than they hold.
"""

from __future__ import annotations

from collections.abc import Iterable

from waypost.core.errors import BadRequest, Forbidden
from waypost.security.principal import Principal

PERMISSIONS: dict[str, str] = {
    "user.view": "List users and read their profiles and permissions",
    "user.create": "Create users",
    "user.modify": "Change users: profile, password, role, active flag, direct permissions",
    "user.delete": "Delete users",
    "group.view": "List groups and their members",
    "group.create": "Create groups",
    "group.modify": "Change groups: name, description, members, permissions",
    "group.delete": "Delete groups",
    "model.view": "List every model with its settings (credentials masked)",
    "model.create": "Create models",
    "model.modify": "Change models: settings, visibility, user and group assignments",
    "model.delete": "Delete models",
    "token.view": "List the API tokens of every user",
    "token.create": "Mint API tokens for other users",
    "token.modify": "Change other users' API tokens (name, models, expiry)",
    "token.delete": "Revoke other users' API tokens",
    "secret.view": "List encrypted secrets and their descriptions (never their values)",
    "secret.create": "Create encrypted secrets",
    "secret.modify": "Change secret values and descriptions; re-encrypt all with the primary key",
    "secret.delete": "Delete secrets",
    "rule.view": "List policy rules",
    "rule.create": "Create policy rules",
    "rule.modify": "Change policy rules",
    "rule.delete": "Delete policy rules",
    "budget.view": "List budgets and what each has spent",
    "budget.create": "Create budgets",
    "budget.modify": "Change budgets; reset what they have spent",
    "budget.delete": "Delete budgets",
    "limit.view": "List rate limits and what each has counted",
    "limit.create": "Create rate limits",
    "limit.modify": "Change rate limits",
    "limit.delete": "Delete rate limits",
    "cache.view": "See the response cache's size and what it served",
    "cache.manage": "Invalidate cached answers: one, a model's, a user's or group's, or all",
    "usage.view": "Read the usage and spend of every user",
    "audit.view": "Read the audit log",
}
"""Every permission, in display order, with a one-line description."""

ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),  # and every model
    "user": frozenset(),  # self-service only: /me, own tokens, assigned and public models
    "gateway": frozenset(),  # service account: data plane and /me with an API token, nothing else
}


def check_permission_names(names: Iterable[str]) -> frozenset[str]:
    """The names as a set; ``BadRequest`` listing the valid ones when any is unknown."""
    wanted = frozenset(names)
    unknown = sorted(wanted - PERMISSIONS.keys())
    if unknown:
        raise BadRequest(
            f"unknown permission{'s' if len(unknown) > 1 else ''} {_names(unknown)}; "
            f"valid permissions: {', '.join(PERMISSIONS)}",
            param="permissions",
        )
    return wanted


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}", param="role")
    return role


def role_permissions(role: str) -> frozenset[str]:
    return ROLES[check_role(role)]


def effective_permissions(role: str, grants: Iterable[str]) -> frozenset[str]:
    """The role's permissions plus ``grants`` (direct and via groups). A gateway account holds none,
    whatever was granted: it may only call the data plane."""
    if check_role(role) == "gateway":
        return frozenset()
    return ROLES[role] | (frozenset(grants) & PERMISSIONS.keys())


def require(principal: Principal, permission: str) -> None:
    """``Forbidden`` unless ``principal`` holds ``permission``."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")  # a bug in the caller, not the request
    if not principal.has(permission):
        raise Forbidden(f"this action needs the '{permission}' permission")


def ensure_can_grant(actor_perms: frozenset[str], perms: Iterable[str]) -> None:
    """Granting (to a user or a group) needs holding every permission granted."""
    missing = sorted(check_permission_names(perms) - actor_perms)
    if missing:
        raise Forbidden(f"you cannot grant permissions you do not hold: {_names(missing)}")


def ensure_can_act_on(
    actor: Principal,
    target_user_id: int,
    target_role: str,
    target_perms: frozenset[str],
    *,
    changes_own_access: bool = False,
) -> None:
    """Acting on a user (create, modify, delete, mint or revoke their tokens, add to a group) needs
    every permission they hold, their role's included. ``changes_own_access`` marks a change of role,
    active flag or grants (or a deletion), which nobody may make to themselves."""
    if changes_own_access and actor.user_id == target_user_id:
        raise Forbidden(
            "you cannot change your own role, active flag or permissions, nor delete yourself; "
            "ask another administrator"
        )
    missing = sorted((target_perms | role_permissions(target_role)) - actor.permissions)
    if missing:
        raise Forbidden(
            f"user #{target_user_id} holds permissions you do not ({_names(missing)}); "
            "only someone holding all of them can do this"
        )


def ensure_can_assign_role(actor: Principal, role: str) -> None:
    """Giving a user ``role`` needs every permission that role carries."""
    missing = sorted(role_permissions(role) - actor.permissions)
    if missing:
        raise Forbidden(
            f"assigning the role {role!r} needs every permission it carries; you lack {_names(missing)}"
        )


def ensure_can_add_to_group(actor: Principal, group: str, group_perms: frozenset[str]) -> None:
    """Adding a user to a group needs every permission the group grants."""
    missing = sorted(group_perms - actor.permissions)
    if missing:
        raise Forbidden(
            f"group {group!r} grants permissions you do not hold ({_names(missing)}); "
            "you cannot add members to it"
        )


def ensure_token_models_within(owner_models: frozenset[str] | None, requested: list[str] | None) -> None:
    """A token's model list may only narrow its owner's access (``None`` owner access: every model;
    ``None`` requested: the owner's access, whatever it becomes)."""
    if requested is None:
        return
    if not requested:
        raise BadRequest(
            "models: an empty list would make the token useless; omit it to allow the owner's models",
            param="models",
        )
    if owner_models is None:
        return
    outside = sorted(set(requested) - owner_models)
    if outside:
        raise Forbidden(f"the token's owner may not use {_names(outside)}; a token can only narrow access")


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
