"""What the store hands out: frozen snapshots of rows, never live ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    email: str
    display_name: str
    role: str
    active: bool
    password_hash: str | None = field(repr=False)  # kept out of reprs, hence out of logs
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    groups: tuple[str, ...] = ()  # group names, sorted


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: int
    name: str
    description: str
    created_at: datetime
    members: tuple[int, ...] = ()  # user ids, sorted


@dataclass(frozen=True, slots=True)
class ModelRecord:
    id: int
    name: str
    config: dict[str, Any]  # the model's settings without ``name`` and ``public``
    public: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    model_name: str
    user_id: int | None
    group_id: int | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    user_id: int
    name: str
    prefix: str
    models: tuple[str, ...] | None  # None: whatever the owner may use
    expires_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SecretRecord:
    id: int
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """An OpenID Connect login in progress, keyed by its ``state`` parameter."""

    state: str
    provider: str
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    redirect_to: str | None
    expires_at: datetime
