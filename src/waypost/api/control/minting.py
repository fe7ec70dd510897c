"""Minting and restricting API tokens, shared by /me/tokens and /admin/tokens."""

from __future__ import annotations

import datetime

from waypost.api.control.schemas import TokenCreated
from waypost.api.control.trail import Trail
from waypost.api.control.views import token_created, token_out
from waypost.api.state import Container
from waypost.core.errors import BadRequest
from waypost.security.api_tokens import new_api_token
from waypost.security.permissions import ensure_token_models_within
from waypost.security.principal import Principal
from waypost.store.records import UserRecord


def expiry(expires_at: datetime.datetime | None, expires_in_days: int | None) -> datetime.datetime | None:
    """When a token expires (UTC), from an instant or a number of days; never in the past."""
    if expires_at is not None and expires_in_days is not None:
        raise BadRequest("Give expires_at or expires_in_days, not both.", param="expires_at")
    now = datetime.datetime.now(datetime.UTC)
    if expires_in_days is not None:
        return now + datetime.timedelta(days=expires_in_days)
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=datetime.UTC)
    if expires_at <= now:
        raise BadRequest("expires_at: must be in the future", param="expires_at")
    return expires_at.astimezone(datetime.UTC)


async def allowed_models(
    container: Container, owner: UserRecord, models: list[str] | None, actor: Principal
) -> tuple[str, ...] | None:
    """The token's model restriction, checked to narrow what its owner may use (and, when the
    caller is itself a restricted token of the owner, what that token may use)."""
    inherited: frozenset[str] | None = None
    if actor.user_id == owner.id and actor.token_models is not None:
        inherited = actor.token_models
    if models is None:
        return tuple(sorted(inherited)) if inherited is not None else None
    known = {e.name for e in container.catalog.entries()}
    unknown = sorted(set(models) - known)
    if unknown:
        raise BadRequest(f"models: model '{unknown[0]}' does not exist", param="models")
    ensure_token_models_within(
        (await container.authenticator.principal_for(owner, None)).model_names(), models
    )
    ensure_token_models_within(inherited, models)
    return tuple(sorted(set(models)))


async def mint(
    container: Container,
    owner: UserRecord,
    actor: Principal,
    *,
    trail: Trail,
    name: str,
    models: list[str] | None,
    expires_at: datetime.datetime | None,
    expires_in_days: int | None,
) -> TokenCreated:
    """Create a token for ``owner``; the plaintext is in the answer only, the store keeps its hash
    (and the audit trail neither)."""
    restriction = await allowed_models(container, owner, models, actor)
    when = expiry(expires_at, expires_in_days)
    plaintext, digest, prefix = new_api_token()
    record = await container.store.tokens.create(
        owner.id, name, token_hash=digest, prefix=prefix, models=restriction, expires_at=when
    )
    await trail.record("token.create", "token", record.id, after=token_out(record))
    return token_created(record, plaintext)
