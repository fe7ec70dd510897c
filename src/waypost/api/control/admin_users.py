"""/admin/users and /admin/permissions: accounts and the permissions granted to them directly.

Every change goes through the escalation rules of security/permissions.py: nobody hands out a
permission they lack, acts on a user holding more than they do, or changes their own access.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from waypost.api.control.dependencies import ContainerDep, find_group, find_user, requires
from waypost.api.control.grant_owners import GrantOwner, add_grants, remove_grant
from waypost.api.control.schemas import (
    GrantRequest,
    GrantsOut,
    PermissionCatalog,
    PermissionOut,
    UserCreate,
    UserDetailOut,
    UserList,
    UserUpdate,
)
from waypost.api.control.trail import TrailDep
from waypost.api.control.views import user_detail, user_out
from waypost.api.state import Container
from waypost.core.errors import BadRequest, NotFound
from waypost.security.passwords import weak_password_reason
from waypost.security.permissions import (
    PERMISSIONS,
    ROLES,
    check_permission_names,
    effective_permissions,
    ensure_can_act_on,
    ensure_can_add_to_group,
    ensure_can_assign_role,
    ensure_can_grant,
)
from waypost.security.principal import Principal
from waypost.store.records import UserRecord

router = APIRouter()

UserRef = Annotated[str, Path(description="A user's numeric id or e-mail")]
NO_GATEWAY_PASSWORD = "password: gateway accounts cannot log in; give them API tokens instead"


async def permissions_of(container: Container, user: UserRecord) -> frozenset[str]:
    """What ``user`` may do: the role's permissions, direct grants and the grants of their groups."""
    return effective_permissions(user.role, await container.store.grants.effective(user.id))


async def _detail(container: Container, user_id: int) -> UserDetailOut:
    user = await container.store.users.get(user_id)
    if user is None:
        raise NotFound(f"user '{user_id}' does not exist")
    return user_detail(user, await permissions_of(container, user))


async def _snapshot(container: Container, user_id: int) -> dict[str, object]:
    """The user as the trail records them: the API's view, and whether a password is set."""
    user = await container.store.users.get(user_id)
    if user is None:
        raise NotFound(f"user '{user_id}' does not exist")
    detail = user_detail(user, await permissions_of(container, user)).model_dump(mode="json")
    return {**detail, "has_password": user.password_hash is not None}


async def _password_hash(container: Container, password: str, email: str) -> str:
    reason = weak_password_reason(password, email)
    if reason is not None:
        raise BadRequest(f"password: {reason}", param="password")
    return await asyncio.to_thread(container.passwords.hash, password)


@router.get("/admin/users", response_model=UserList, tags=["users"], summary="List users")
async def list_users(
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("user.view"))],
    search: Annotated[
        str | None, Query(max_length=200, description="Only users whose e-mail or name contains this")
    ] = None,
    after: Annotated[int | None, Query(ge=0, description="The next_after of the previous page")] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="Users per page (by id); without it, every user")
    ] = None,
) -> UserList:
    if limit is None and search is None and after is None:
        return UserList(data=[user_out(u) for u in await container.store.users.list()])
    size = limit or 1000
    found = await container.store.users.page(search=search, after=after, limit=size + 1)
    more = len(found) > size
    return UserList(data=[user_out(u) for u in found[:size]], next_after=found[size - 1].id if more else None)


@router.get("/admin/users/{user}", response_model=UserDetailOut, tags=["users"], summary="Show a user")
async def get_user(
    user: UserRef, container: ContainerDep, _: Annotated[Principal, Depends(requires("user.view"))]
) -> UserDetailOut:
    return await _detail(container, (await find_user(container, user)).id)


@router.post(
    "/admin/users", status_code=201, response_model=UserDetailOut, tags=["users"], summary="Create a user"
)
async def create_user(
    body: UserCreate,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("user.create"))],
    trail: TrailDep,
) -> UserDetailOut:
    ensure_can_assign_role(actor, body.role)
    groups = []
    for ref in body.groups:
        try:
            group = await find_group(container, ref)
        except NotFound as err:
            raise BadRequest(f"groups: {err.message}", param="groups") from None
        ensure_can_add_to_group(actor, group.name, await container.store.grants.of_group(group.id))
        groups.append(group)
    digest = None
    if body.password is not None:
        if body.role == "gateway":
            raise BadRequest(NO_GATEWAY_PASSWORD, param="password")
        digest = await _password_hash(container, body.password, body.email)
    created = await container.store.users.create(
        body.email,
        body.display_name or body.email.split("@")[0],
        password_hash=digest,
        role=body.role,
        active=body.active,
    )
    for group in groups:
        await container.store.groups.add_member(group.id, created.id)
    await trail.record("user.create", "user", created.id, after=await _snapshot(container, created.id))
    return await _detail(container, created.id)


@router.patch("/admin/users/{user}", response_model=UserDetailOut, tags=["users"], summary="Change a user")
async def update_user(
    user: UserRef,
    body: UserUpdate,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("user.modify"))],
    trail: TrailDep,
) -> UserDetailOut:
    target = await find_user(container, user)
    before = await _snapshot(container, target.id)
    sent = body.model_fields_set
    role = body.role if "role" in sent and body.role is not None else target.role
    active = body.active if "active" in sent and body.active is not None else target.active
    ensure_can_act_on(
        actor,
        target.id,
        target.role,
        await permissions_of(container, target),
        changes_own_access=role != target.role or active != target.active,
    )
    if role != target.role:
        ensure_can_assign_role(actor, role)
    changes: dict[str, object] = {}
    if body.email is not None:
        changes["email"] = body.email
    if body.display_name is not None:
        changes["display_name"] = body.display_name
    if body.password is not None:
        if role == "gateway":
            raise BadRequest(NO_GATEWAY_PASSWORD, param="password")
        changes["password_hash"] = await _password_hash(container, body.password, body.email or target.email)
    if role != target.role:
        changes["role"] = role
    if active != target.active:
        changes["active"] = active
    if changes:
        await container.store.users.update(target.id, **changes)  # type: ignore[arg-type]
    if "password_hash" in changes or not active or role == "gateway":
        await container.store.refresh.revoke_user(target.id)  # their other sessions end
    container.authenticator.forget(target.id)
    if changes:
        after = await _snapshot(container, target.id)
        if "password_hash" in changes:
            after["password_changed"] = True
        await trail.record("user.update", "user", target.id, before=before, after=after)
    return await _detail(container, target.id)


@router.delete("/admin/users/{user}", status_code=204, tags=["users"], summary="Delete a user")
async def delete_user(
    user: UserRef,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("user.delete"))],
    trail: TrailDep,
) -> Response:
    """Their tokens, memberships, grants and model assignments go with them."""
    target = await find_user(container, user)
    ensure_can_act_on(
        actor, target.id, target.role, await permissions_of(container, target), changes_own_access=True
    )
    before = await _snapshot(container, target.id)
    await container.store.users.delete(target.id)
    container.authenticator.forget(target.id)
    await trail.record("user.delete", "user", target.id, before=before)
    return Response(status_code=204)


# -- permissions ----------------------------------------------------------------------------------


@router.get(
    "/admin/permissions",
    response_model=PermissionCatalog,
    tags=["permissions"],
    summary="Every permission, and what each role holds",
)
async def list_permissions(_: Annotated[Principal, Depends(requires("user.view"))]) -> PermissionCatalog:
    return PermissionCatalog(
        data=[PermissionOut(name=n, description=d) for n, d in PERMISSIONS.items()],
        roles={role: sorted(perms) for role, perms in ROLES.items()},
    )


async def _user_grants(container: Container, user: UserRecord) -> GrantsOut:
    direct = await container.store.grants.of_user(user.id)
    return GrantsOut(direct=sorted(direct), effective=sorted(await permissions_of(container, user)))


@router.get(
    "/admin/users/{user}/permissions",
    response_model=GrantsOut,
    tags=["permissions"],
    summary="A user's direct and effective permissions",
)
async def get_user_permissions(
    user: UserRef, container: ContainerDep, _: Annotated[Principal, Depends(requires("user.view"))]
) -> GrantsOut:
    return await _user_grants(container, await find_user(container, user))


@router.post(
    "/admin/users/{user}/permissions",
    response_model=GrantsOut,
    tags=["permissions"],
    summary="Grant permissions to a user",
)
async def grant_user_permissions(
    user: UserRef,
    body: GrantRequest,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("user.modify"))],
    trail: TrailDep,
) -> GrantsOut:
    target = await find_user(container, user)
    ensure_can_grant(actor.permissions, body.permissions)
    ensure_can_act_on(
        actor, target.id, target.role, await permissions_of(container, target), changes_own_access=True
    )
    if target.role == "gateway":
        raise BadRequest("gateway accounts hold no permissions: they may only call the data plane")
    before = await _user_grants(container, target)
    await add_grants(container, GrantOwner(user=target), body.permissions)
    after = await _user_grants(container, target)
    await trail.record("permission.grant", "user", target.id, before=before, after=after)
    return after


@router.delete(
    "/admin/users/{user}/permissions/{permission}",
    status_code=204,
    tags=["permissions"],
    summary="Revoke a user's direct permission",
)
async def revoke_user_permission(
    user: UserRef,
    permission: str,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("user.modify"))],
    trail: TrailDep,
) -> Response:
    target = await find_user(container, user)
    check_permission_names([permission])
    ensure_can_act_on(
        actor, target.id, target.role, await permissions_of(container, target), changes_own_access=True
    )
    before = await _user_grants(container, target)
    await remove_grant(container, GrantOwner(user=target), permission)
    after = await _user_grants(container, target)
    await trail.record("permission.revoke", "user", target.id, before=before, after=after)
    return Response(status_code=204)
