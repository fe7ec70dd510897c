"""/me: the caller's own account, the models they may use and their API tokens."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from waypost.api.control.admin_users import permissions_of
from waypost.api.control.dependencies import ContainerDep, current_principal, human_principal
from waypost.api.control.minting import mint
from waypost.api.control.schemas import (
    ModelSummary,
    ModelSummaryList,
    MyTokenCreate,
    PasswordChange,
    TokenCreated,
    TokenList,
    UserDetailOut,
)
from waypost.api.control.trail import TrailDep
from waypost.api.control.views import token_out, user_detail
from waypost.api.state import Container
from waypost.core.errors import BadRequest, NotFound, Unauthorized
from waypost.security.passwords import weak_password_reason
from waypost.security.principal import Principal
from waypost.store.records import UserRecord

router = APIRouter(tags=["me"])

Caller = Annotated[Principal, Depends(current_principal)]
Person = Annotated[Principal, Depends(human_principal)]  # not a gateway service account


async def _me(container: Container, principal: Principal) -> UserRecord:
    user = await container.store.users.get(principal.user_id)
    if user is None:  # deleted since the principal was cached
        raise Unauthorized("This account no longer exists.")
    return user


@router.get("/me", response_model=UserDetailOut, summary="Who am I")
async def who_am_i(container: ContainerDep, principal: Caller) -> UserDetailOut:
    user = await _me(container, principal)
    return user_detail(user, await permissions_of(container, user))


@router.post("/me/password", status_code=204, summary="Change my password")
async def change_password(
    body: PasswordChange, container: ContainerDep, principal: Person, trail: TrailDep
) -> Response:
    """Other sessions end: every refresh token of the account is revoked."""
    user = await _me(container, principal)
    passwords = container.passwords
    if user.password_hash is None:
        raise BadRequest("This account signs in through single sign-on and has no password to change.")
    if not await asyncio.to_thread(passwords.verify, user.password_hash, body.current_password):
        raise BadRequest("current_password: not the current password", param="current_password")
    reason = weak_password_reason(body.new_password, user.email)
    if reason is not None:
        raise BadRequest(f"new_password: {reason}", param="new_password")
    digest = await asyncio.to_thread(passwords.hash, body.new_password)
    await container.store.users.update(user.id, password_hash=digest)
    await container.store.refresh.revoke_user(user.id)
    container.authenticator.forget(user.id)
    await trail.record("user.password.change", "user", user.id, after={"password_changed": True})
    return Response(status_code=204)


@router.get("/me/models", response_model=ModelSummaryList, summary="The models I may use")
async def my_models(container: ContainerDep, principal: Caller) -> ModelSummaryList:
    return ModelSummaryList(
        data=[
            ModelSummary(name=e.name, provider=e.settings.provider, source=e.source, public=e.public)
            for e in container.catalog.entries()
            if principal.may_use(e.name)
        ]
    )


@router.get("/me/tokens", response_model=TokenList, summary="My API tokens")
async def my_tokens(container: ContainerDep, principal: Person) -> TokenList:
    return TokenList(data=[token_out(t) for t in await container.store.tokens.list(principal.user_id)])


@router.post(
    "/me/tokens",
    status_code=201,
    response_model=TokenCreated,
    summary="Create an API token (the plaintext is shown this once)",
)
async def create_my_token(
    body: MyTokenCreate, container: ContainerDep, principal: Person, trail: TrailDep
) -> TokenCreated:
    return await mint(
        container,
        await _me(container, principal),
        principal,
        name=body.name,
        models=body.models,
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
        trail=trail,
    )


@router.delete("/me/tokens/{token_id}", status_code=204, summary="Revoke one of my API tokens")
async def delete_my_token(
    token_id: Annotated[int, Path(description="The token's id")],
    container: ContainerDep,
    principal: Person,
    trail: TrailDep,
) -> Response:
    token = await container.store.tokens.get(token_id)
    if token is None or token.user_id != principal.user_id:  # someone else's looks like no token
        raise NotFound(f"token {token_id} does not exist")
    await container.store.tokens.delete(token.id)
    container.authenticator.forget(principal.user_id)
    await trail.record("token.delete", "token", token.id, before=token_out(token))
    return Response(status_code=204)
