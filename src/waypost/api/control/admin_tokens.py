"""/admin/tokens: every user's API tokens (minting for another user needs all they hold)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from waypost.api.control.admin_users import permissions_of
from waypost.api.control.dependencies import ContainerDep, find_user, requires
from waypost.api.control.minting import allowed_models, expiry, mint
from waypost.api.control.schemas import TokenCreate, TokenCreated, TokenList, TokenOut, TokenUpdate
from waypost.api.control.trail import TrailDep
from waypost.api.control.views import token_out
from waypost.api.state import Container
from waypost.core.errors import NotFound
from waypost.security.permissions import ensure_can_act_on
from waypost.security.principal import Principal
from waypost.store.records import TokenRecord, UserRecord

router = APIRouter(tags=["tokens"])

TokenId = Annotated[int, Path(description="The token's id")]


async def _token(container: Container, token_id: int) -> TokenRecord:
    token = await container.store.tokens.get(token_id)
    if token is None:
        raise NotFound(f"token {token_id} does not exist")
    return token


async def _owner_checked(container: Container, actor: Principal, user_id: int) -> UserRecord:
    """The token owner, once the actor is shown to hold every permission they have."""
    owner = await container.store.users.get(user_id)
    if owner is None:
        raise NotFound(f"user '{user_id}' does not exist")
    ensure_can_act_on(actor, owner.id, owner.role, await permissions_of(container, owner))
    return owner


@router.get("/admin/tokens", response_model=TokenList, summary="List API tokens")
async def list_tokens(
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("token.view"))],
    user: Annotated[str | None, Query(description="Only this user's (id or e-mail)")] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Only tokens whose name or prefix contains this")
    ] = None,
    after: Annotated[int | None, Query(ge=0, description="The next_after of the previous page")] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="Tokens per page (by id); without it, every token")
    ] = None,
) -> TokenList:
    owner = await find_user(container, user) if user is not None else None
    owner_id = owner.id if owner is not None else None
    if limit is None and search is None and after is None:
        return TokenList(data=[token_out(t) for t in await container.store.tokens.list(owner_id)])
    size = limit or 1000
    found = await container.store.tokens.page(user_id=owner_id, search=search, after=after, limit=size + 1)
    more = len(found) > size
    return TokenList(
        data=[token_out(t) for t in found[:size]], next_after=found[size - 1].id if more else None
    )


@router.get("/admin/tokens/{token_id}", response_model=TokenOut, summary="Show an API token")
async def get_token(
    token_id: TokenId, container: ContainerDep, _: Annotated[Principal, Depends(requires("token.view"))]
) -> TokenOut:
    return token_out(await _token(container, token_id))


@router.post(
    "/admin/tokens",
    status_code=201,
    response_model=TokenCreated,
    summary="Mint an API token for a user (the plaintext is shown this once)",
)
async def create_token(
    body: TokenCreate,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("token.create"))],
    trail: TrailDep,
) -> TokenCreated:
    owner = await find_user(container, body.user)
    await _owner_checked(container, actor, owner.id)
    return await mint(
        container,
        owner,
        actor,
        name=body.name,
        models=body.models,
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
        trail=trail,
    )


@router.patch("/admin/tokens/{token_id}", response_model=TokenOut, summary="Change an API token")
async def update_token(
    token_id: TokenId,
    body: TokenUpdate,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("token.modify"))],
    trail: TrailDep,
) -> TokenOut:
    """``models: null`` lifts the restriction, ``expires_at: null`` the expiry."""
    token = await _token(container, token_id)
    owner = await _owner_checked(container, actor, token.user_id)
    changes: dict[str, Any] = {}
    if "models" in body.model_fields_set:
        changes["models"] = await allowed_models(container, owner, body.models, actor)
    if "expires_at" in body.model_fields_set:
        changes["expires_at"] = expiry(body.expires_at, None)
    updated = await container.store.tokens.update(token.id, name=body.name, **changes)
    container.authenticator.forget(owner.id)
    await trail.record("token.update", "token", token.id, before=token_out(token), after=token_out(updated))
    return token_out(updated)


@router.delete("/admin/tokens/{token_id}", status_code=204, summary="Revoke an API token")
async def delete_token(
    token_id: TokenId,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("token.delete"))],
    trail: TrailDep,
) -> Response:
    token = await _token(container, token_id)
    await _owner_checked(container, actor, token.user_id)
    await container.store.tokens.delete(token.id)
    container.authenticator.forget(token.user_id)
    await trail.record("token.delete", "token", token.id, before=token_out(token))
    return Response(status_code=204)
