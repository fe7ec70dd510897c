"""/admin/groups: groups, their members and the permissions granted to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from waypost.api.control.admin_users import permissions_of
from waypost.api.control.dependencies import ContainerDep, find_group, find_user, requires
from waypost.api.control.grant_owners import GrantOwner, add_grants, remove_grant
from waypost.api.control.schemas import (
    GrantRequest,
    GrantsOut,
    GroupCreate,
    GroupList,
    GroupOut,
    GroupUpdate,
    MemberAdd,
)
from waypost.api.control.trail import TrailDep
from waypost.api.control.views import group_out
from waypost.api.state import Container
from waypost.core.errors import NotFound
from waypost.security.permissions import (
    check_permission_names,
    ensure_can_act_on,
    ensure_can_add_to_group,
    ensure_can_grant,
)
from waypost.security.principal import Principal
from waypost.store.records import GroupRecord

router = APIRouter()

GroupRef = Annotated[str, Path(description="A group's numeric id or name")]
UserRef = Annotated[str, Path(description="A user's numeric id or e-mail")]


async def _out(container: Container, group: GroupRecord) -> GroupOut:
    emails = {u.id: u.email for u in await container.store.users.list()}
    return group_out(group, emails, await container.store.grants.of_group(group.id))


async def _fresh(container: Container, group_id: int) -> GroupOut:
    group = await container.store.groups.get(group_id)
    if group is None:
        raise NotFound(f"group '{group_id}' does not exist")
    return await _out(container, group)


@router.get("/admin/groups", response_model=GroupList, tags=["groups"], summary="List groups")
async def list_groups(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("group.view"))]
) -> GroupList:
    emails = {u.id: u.email for u in await container.store.users.list()}
    data = [
        group_out(g, emails, await container.store.grants.of_group(g.id))
        for g in await container.store.groups.list()
    ]
    return GroupList(data=data)


@router.post(
    "/admin/groups", status_code=201, response_model=GroupOut, tags=["groups"], summary="Create a group"
)
async def create_group(
    body: GroupCreate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("group.create"))],
    trail: TrailDep,
) -> GroupOut:
    created = await _out(container, await container.store.groups.create(body.name, body.description))
    await trail.record("group.create", "group", created.id, after=created)
    return created


@router.get("/admin/groups/{group}", response_model=GroupOut, tags=["groups"], summary="Show a group")
async def get_group(
    group: GroupRef, container: ContainerDep, _: Annotated[Principal, Depends(requires("group.view"))]
) -> GroupOut:
    return await _out(container, await find_group(container, group))


@router.patch(
    "/admin/groups/{group}", response_model=GroupOut, tags=["groups"], summary="Rename or describe a group"
)
async def update_group(
    group: GroupRef,
    body: GroupUpdate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("group.modify"))],
    trail: TrailDep,
) -> GroupOut:
    target = await find_group(container, group)
    before = await _out(container, target)
    updated = await container.store.groups.update(target.id, name=body.name, description=body.description)
    after = await _out(container, updated)
    await trail.record("group.update", "group", target.id, before=before, after=after)
    return after


@router.delete("/admin/groups/{group}", status_code=204, tags=["groups"], summary="Delete a group")
async def delete_group(
    group: GroupRef,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("group.delete"))],
    trail: TrailDep,
) -> Response:
    """Members lose what the group granted them; the accounts stay."""
    target = await find_group(container, group)
    before = await _out(container, target)
    await container.store.groups.delete(target.id)
    await trail.record("group.delete", "group", target.id, before=before)
    await container.catalog.reload()  # its model assignments went with it
    container.authenticator.forget()
    return Response(status_code=204)


@router.post(
    "/admin/groups/{group}/members", response_model=GroupOut, tags=["groups"], summary="Add a member"
)
async def add_member(
    group: GroupRef,
    body: MemberAdd,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("group.modify"))],
    trail: TrailDep,
) -> GroupOut:
    target = await find_group(container, group)
    user = await find_user(container, body.user)
    ensure_can_add_to_group(actor, target.name, await container.store.grants.of_group(target.id))
    ensure_can_act_on(
        actor, user.id, user.role, await permissions_of(container, user), changes_own_access=True
    )
    before = await _out(container, target)
    await container.store.groups.add_member(target.id, user.id)
    container.authenticator.forget(user.id)
    after = await _fresh(container, target.id)
    await trail.record("group.member.add", "group", target.id, before=before, after=after)
    return after


@router.delete(
    "/admin/groups/{group}/members/{user}", status_code=204, tags=["groups"], summary="Remove a member"
)
async def remove_member(
    group: GroupRef,
    user: UserRef,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("group.modify"))],
    trail: TrailDep,
) -> Response:
    target = await find_group(container, group)
    member = await find_user(container, user)
    ensure_can_act_on(
        actor, member.id, member.role, await permissions_of(container, member), changes_own_access=True
    )
    before = await _out(container, target)
    if not await container.store.groups.remove_member(target.id, member.id):
        raise NotFound(f"user '{member.email}' is not a member of group '{target.name}'")
    container.authenticator.forget(member.id)
    after = await _fresh(container, target.id)
    await trail.record("group.member.remove", "group", target.id, before=before, after=after)
    return Response(status_code=204)


# -- permissions ----------------------------------------------------------------------------------


async def _grants(container: Container, group: GroupRecord) -> GrantsOut:
    direct = sorted(await container.store.grants.of_group(group.id))
    return GrantsOut(direct=direct, effective=direct)


@router.get(
    "/admin/groups/{group}/permissions",
    response_model=GrantsOut,
    tags=["permissions"],
    summary="A group's permissions",
)
async def get_group_permissions(
    group: GroupRef, container: ContainerDep, _: Annotated[Principal, Depends(requires("group.view"))]
) -> GrantsOut:
    return await _grants(container, await find_group(container, group))


@router.post(
    "/admin/groups/{group}/permissions",
    response_model=GrantsOut,
    tags=["permissions"],
    summary="Grant permissions to a group",
)
async def grant_group_permissions(
    group: GroupRef,
    body: GrantRequest,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("group.modify"))],
    trail: TrailDep,
) -> GrantsOut:
    target = await find_group(container, group)
    ensure_can_grant(actor.permissions, body.permissions)
    before = await _grants(container, target)
    await add_grants(container, GrantOwner(group=target), body.permissions)
    after = await _grants(container, target)
    await trail.record("permission.grant", "group", target.id, before=before, after=after)
    return after


@router.delete(
    "/admin/groups/{group}/permissions/{permission}",
    status_code=204,
    tags=["permissions"],
    summary="Revoke a group's permission",
)
async def revoke_group_permission(
    group: GroupRef,
    permission: str,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("group.modify"))],
    trail: TrailDep,
) -> Response:
    """Managing a permission needs holding it, for revoking as for granting."""
    target = await find_group(container, group)
    check_permission_names([permission])
    ensure_can_grant(actor.permissions, [permission])
    before = await _grants(container, target)
    await remove_grant(container, GrantOwner(group=target), permission)
    after = await _grants(container, target)
    await trail.record("permission.revoke", "group", target.id, before=before, after=after)
    return Response(status_code=204)
