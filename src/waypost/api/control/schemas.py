"""Request and response bodies of the control plane (they make the OpenAPI document)."""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from waypost.settings import (
    AwsSettings,
    HeaderRuleSettings,
    MockSettings,
    Prices,
    RetryPolicy,
    Timeouts,
    TransformSettings,
)

Role = Literal["admin", "user", "gateway"]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"
GROUP_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SECRET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MODEL_NAME_PATTERN = r"^[^/\s][^/]{0,199}$"


class _Request(BaseModel):
    """Unknown fields are refused, so a typo does not go unnoticed."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class _Email(_Request):
    @field_validator("email", mode="after", check_fields=False)
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.strip().lower() if value is not None else None


class ErrorDetail(BaseModel):
    message: str  # names the problem: the field, the name, the permission
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every error, in the OpenAI shape."""

    error: ErrorDetail


# -- auth ----------------------------------------------------------------------------------------


class LoginRequest(_Email):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(_Request):
    refresh_token: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    id: int
    email: str
    display_name: str
    role: Role
    active: bool
    groups: list[str]
    created_at: datetime.datetime
    updated_at: datetime.datetime
    last_login_at: datetime.datetime | None


class UserDetailOut(UserOut):
    permissions: list[str]  # effective: the role's, direct grants and the groups'


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int  # seconds
    refresh_token: str
    user: UserOut


class IdentityProviderOut(BaseModel):
    name: str
    display_name: str
    login_url: str


class IdentityProviderList(BaseModel):
    data: list[IdentityProviderOut]


# -- users, groups, permissions ------------------------------------------------------------------


class UserList(BaseModel):
    data: list[UserOut]
    # With ``limit``: the ``after`` of the next page, or null on the last one.
    next_after: int | None = None


class UserCreate(_Email):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=320)
    display_name: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=1024)
    role: Role = "user"
    active: bool = True
    groups: list[str] = Field(default_factory=list)


class UserUpdate(_Email):
    email: str | None = Field(None, pattern=EMAIL_PATTERN, max_length=320)
    display_name: str | None = Field(None, max_length=200)
    password: str | None = Field(None, max_length=1024)
    role: Role | None = None
    active: bool | None = None


class PasswordChange(_Request):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class MemberRef(BaseModel):
    id: int
    email: str


class GroupOut(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime.datetime
    members: list[MemberRef]
    permissions: list[str]  # granted to the group directly


class GroupList(BaseModel):
    data: list[GroupOut]


class _GroupName(_Request):
    @field_validator("name", mode="after", check_fields=False)
    @classmethod
    def _not_a_number(cls, value: str | None) -> str | None:
        # Paths refer to a group by id or by name, so a name may not look like an id.
        if value is not None and value.isdigit():
            raise ValueError("a group name cannot be only digits")
        return value


class GroupCreate(_GroupName):
    name: str = Field(pattern=GROUP_NAME_PATTERN)
    description: str = Field("", max_length=1000)


class GroupUpdate(_GroupName):
    name: str | None = Field(None, pattern=GROUP_NAME_PATTERN)
    description: str | None = Field(None, max_length=1000)


class MemberAdd(_Request):
    user: str | int  # an id or an e-mail


class PermissionOut(BaseModel):
    name: str
    description: str


class PermissionCatalog(BaseModel):
    data: list[PermissionOut]
    roles: dict[str, list[str]]


class GrantRequest(_Request):
    permissions: list[str] = Field(min_length=1)


class GrantsOut(BaseModel):
    direct: list[str]  # granted to this user or group itself
    effective: list[str]  # for a user: with the role's and the groups'; for a group: the same as direct


# -- tokens ---------------------------------------------------------------------------------------


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    user_id: int
    models: list[str] | None  # None: every model the owner may use
    expires_at: datetime.datetime | None
    last_used_at: datetime.datetime | None
    created_at: datetime.datetime


class TokenCreated(TokenOut):
    token: str  # the plaintext, shown this once


class TokenList(BaseModel):
    data: list[TokenOut]
    # With ``limit``: the ``after`` of the next page, or null on the last one.
    next_after: int | None = None


class _TokenFields(_Request):
    name: str = Field(min_length=1, max_length=100)
    models: list[str] | None = None
    expires_at: datetime.datetime | None = None
    expires_in_days: int | None = Field(None, ge=1, le=36500)


class MyTokenCreate(_TokenFields):
    pass


class TokenCreate(_TokenFields):
    user: str | int  # an id or an e-mail


class TokenUpdate(_Request):
    name: str | None = Field(None, min_length=1, max_length=100)
    models: list[str] | None = None
    expires_at: datetime.datetime | None = None


# -- secrets --------------------------------------------------------------------------------------


class SecretOut(BaseModel):
    name: str
    description: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


class SecretList(BaseModel):
    data: list[SecretOut]


class SecretCreate(_Request):
    name: str = Field(pattern=SECRET_NAME_PATTERN)
    value: str = Field(min_length=1, max_length=65536)
    description: str = Field("", max_length=1000)


class SecretUpdate(_Request):
    value: str | None = Field(None, min_length=1, max_length=65536)
    description: str | None = Field(None, max_length=1000)


class RotateResult(BaseModel):
    rotated: int


# -- models ---------------------------------------------------------------------------------------


class Assignments(BaseModel):
    users: list[str]  # e-mails
    groups: list[str]  # names


class ModelOut(BaseModel):
    name: str
    provider: str
    source: Literal["config", "database"]
    public: bool
    config: dict[str, Any]  # every setting but the name; credentials as secret:// refs or "********"
    assignments: Assignments
    # Why the model cannot be called (its credentials are missing), or null: a disabled model
    # is never called, retried or fallen back to.
    disabled: str | None = None


class ModelList(BaseModel):
    data: list[ModelOut]


class ModelSummary(BaseModel):
    name: str
    provider: str
    source: Literal["config", "database"]
    public: bool


class ModelSummaryList(BaseModel):
    data: list[ModelSummary]


class ModelUpdate(_Request):
    """The fields to change; ``null`` puts a field back to its default. The name cannot change."""

    provider: str | None = Field(None, min_length=1)
    preset: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    upstream_model: str | None = None
    match: str | None = None
    headers: dict[str, str] | None = None
    timeouts: Timeouts | None = None
    verify_tls: bool | None = None
    retry: RetryPolicy | None = None
    fallbacks: list[str] | None = None
    default_max_tokens: int | None = Field(None, ge=1)
    mock: MockSettings | None = None
    aws: AwsSettings | None = None
    api_version: str | None = None
    prices: Prices | None = None
    candidates: list[str] | None = None
    order: Literal["cheapest", "listed"] | None = None
    public: bool | None = None
    header_rules: HeaderRuleSettings | None = None
    transformations: TransformSettings | None = None


class AssignRequest(_Request):
    users: list[str | int] = Field(default_factory=list)
    groups: list[str | int] = Field(default_factory=list)


# -- status ---------------------------------------------------------------------------------------


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class StatusOut(BaseModel):
    status: Literal["ok", "degraded"]
    checks: list[Check]
