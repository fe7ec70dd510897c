"""Granting and revoking permissions the same way for either kind of owner: a user or a group."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from waypost.api.state import Container
from waypost.core.errors import NotFound
from waypost.store.records import GroupRecord, UserRecord


@dataclass(frozen=True, slots=True)
class GrantOwner:
    """The user or the group (exactly one) that grants are stored against."""

    user: UserRecord | None = None
    group: GroupRecord | None = None

    def lacks(self, permission: str) -> str:
        """The 404 message for revoking a grant this owner does not have."""
        if self.user is not None:
            return f"user '{self.user.email}' has no direct grant of '{permission}'"
        assert self.group is not None
        return f"group '{self.group.name}' does not hold '{permission}'"

    @property
    def user_id(self) -> int | None:
        """The user's id, or ``None`` for a group (whose change touches every member)."""
        return self.user.id if self.user is not None else None

    @property
    def group_id(self) -> int | None:
        """The group's id, or ``None`` for a user."""
        return self.group.id if self.group is not None else None


async def add_grants(container: Container, owner: GrantOwner, permissions: Iterable[str]) -> None:
    """Grant each of ``permissions`` to ``owner`` and drop the cached principals it changes."""
    for permission in sorted(set(permissions)):
        await container.store.grants.grant(permission, user_id=owner.user_id, group_id=owner.group_id)
    container.authenticator.forget(owner.user_id)


async def remove_grant(container: Container, owner: GrantOwner, permission: str) -> None:
    """Revoke ``owner``'s grant of ``permission`` (404 when it has none) and drop cached principals."""
    if not await container.store.grants.revoke(permission, user_id=owner.user_id, group_id=owner.group_id):
        raise NotFound(owner.lacks(permission))
    container.authenticator.forget(owner.user_id)
