"""Records as the JSON the API answers with."""

from __future__ import annotations

from waypost.api.control.schemas import (
    GroupOut,
    MemberRef,
    SecretOut,
    TokenCreated,
    TokenOut,
    UserDetailOut,
    UserOut,
)
from waypost.store.records import GroupRecord, SecretRecord, TokenRecord, UserRecord


def user_out(user: UserRecord) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        active=user.active,
        groups=list(user.groups),
        created_at=user.created_at,
        updated_at=user.updated_at,
        last_login_at=user.last_login_at,
    )


def user_detail(user: UserRecord, permissions: frozenset[str]) -> UserDetailOut:
    return UserDetailOut(**user_out(user).model_dump(), permissions=sorted(permissions))


def token_out(token: TokenRecord) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        user_id=token.user_id,
        models=list(token.models) if token.models is not None else None,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
        created_at=token.created_at,
    )


def token_created(token: TokenRecord, plaintext: str) -> TokenCreated:
    return TokenCreated(**token_out(token).model_dump(), token=plaintext)


def secret_out(secret: SecretRecord) -> SecretOut:
    return SecretOut(
        name=secret.name,
        description=secret.description,
        created_at=secret.created_at,
        updated_at=secret.updated_at,
    )


def group_out(group: GroupRecord, emails: dict[int, str], permissions: frozenset[str]) -> GroupOut:
    return GroupOut(
        id=group.id,
        name=group.name,
        description=group.description,
        created_at=group.created_at,
        members=[MemberRef(id=uid, email=emails.get(uid, "")) for uid in group.members],
        permissions=sorted(permissions),
    )
