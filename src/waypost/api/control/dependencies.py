"""What every control-plane route needs: the container, the authenticated caller, a permission
check, and lookups of users and groups by the references paths and bodies use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from waypost.api.state import Container
from waypost.core.errors import Forbidden, NotFound
from waypost.security.permissions import require
from waypost.security.principal import Principal

if TYPE_CHECKING:
    from waypost.store.records import GroupRecord, UserRecord


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


async def current_principal(request: Request) -> Principal:
    """The caller, from a JWT access token or an API token (401 when missing or invalid)."""
    return await get_container(request).authenticator.authenticate_control(request.headers)


async def human_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller, unless it is a gateway service account (those may only read /me)."""
    if principal.role == "gateway":
        raise Forbidden("gateway-only accounts may only call the data plane, GET /me and GET /me/models")
    return principal


def requires(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the caller through only when it holds ``permission`` (403 naming it)."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        require(principal, permission)
        return principal

    check.__name__ = f"requires_{permission.replace('.', '_')}"
    return check


ContainerDep = Annotated[Container, Depends(get_container)]


async def find_user(container: Container, ref: str | int) -> UserRecord:
    """A user by numeric id or e-mail (404 naming the reference)."""
    store = container.store
    text = str(ref).strip()
    user = await store.users.get(int(text)) if text.isdigit() else await store.users.by_email(text)
    if user is None:
        raise NotFound(f"user '{text}' does not exist")
    return user


async def find_group(container: Container, ref: str | int) -> GroupRecord:
    """A group by numeric id or name (404 naming the reference)."""
    store = container.store
    text = str(ref).strip()
    group = await store.groups.get(int(text)) if text.isdigit() else await store.groups.by_name(text)
    if group is None:
        raise NotFound(f"group '{text}' does not exist")
    return group
