"""/admin/secrets: encrypted values that models refer to as ``secret://name``; never shown again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from waypost.api.control.dependencies import ContainerDep, requires
from waypost.api.control.schemas import (
    RotateResult,
    SecretCreate,
    SecretList,
    SecretOut,
    SecretUpdate,
)
from waypost.api.control.trail import TrailDep
from waypost.api.control.views import secret_out
from waypost.api.state import Container
from waypost.core.errors import Conflict, NotFound
from waypost.security.key_rotation import reencrypt_stored
from waypost.security.principal import Principal
from waypost.security.secret_refs import refs_in

router = APIRouter(tags=["secrets"])

SecretName = Annotated[str, Path(description="The secret's name")]


async def _users_of(container: Container, name: str) -> list[str]:
    """The models (database or config file) that refer to secret ``name``."""
    users = {r.name for r in await container.store.models.list() if name in refs_in(r.config)}
    users |= {
        e.name
        for e in container.catalog.entries()
        if name in refs_in(e.settings.model_dump(exclude_unset=True))
    }
    return sorted(users)


@router.get("/admin/secrets", response_model=SecretList, summary="List secrets (names, never values)")
async def list_secrets(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("secret.view"))]
) -> SecretList:
    return SecretList(data=[secret_out(s) for s in await container.store.secrets.list()])


@router.get("/admin/secrets/{name}", response_model=SecretOut, summary="Show a secret (never its value)")
async def get_secret(
    name: SecretName, container: ContainerDep, _: Annotated[Principal, Depends(requires("secret.view"))]
) -> SecretOut:
    secret = await container.store.secrets.get(name)
    if secret is None:
        raise NotFound(f"secret '{name}' does not exist")
    return secret_out(secret)


@router.post("/admin/secrets", status_code=201, response_model=SecretOut, summary="Create a secret")
async def create_secret(
    body: SecretCreate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("secret.create"))],
    trail: TrailDep,
) -> SecretOut:
    ciphertext = container.secrets.encrypt(body.value)
    secret = await container.store.secrets.create(
        body.name, ciphertext=ciphertext, description=body.description
    )
    await trail.record("secret.create", "secret", secret.name, after=secret_out(secret))
    if await _users_of(container, body.name):  # a model waiting for this secret can start working
        await container.catalog.reload()
    return secret_out(secret)


@router.post("/admin/secrets/rotate", response_model=RotateResult, summary="Re-encrypt every secret")
async def rotate_secrets(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("secret.modify"))], trail: TrailDep
) -> RotateResult:
    """Re-encrypts each value with the primary (first) key of ``security.encryption_keys``, so an
    older key can then be removed from the list."""
    count = await reencrypt_stored(container.store, container.secrets)
    await trail.record("secret.rotate", "secret", None, after={"rotated": count})
    await container.catalog.reload()
    return RotateResult(rotated=count)


@router.patch(
    "/admin/secrets/{name}", response_model=SecretOut, summary="Change a secret's value or description"
)
async def update_secret(
    name: SecretName,
    body: SecretUpdate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("secret.modify"))],
    trail: TrailDep,
) -> SecretOut:
    before = await container.store.secrets.get(name)
    if before is None:
        raise NotFound(f"secret '{name}' does not exist")
    ciphertext = container.secrets.encrypt(body.value) if body.value is not None else None
    secret = await container.store.secrets.update(name, ciphertext=ciphertext, description=body.description)
    after = {**secret_out(secret).model_dump(mode="json"), "value_changed": ciphertext is not None}
    await trail.record("secret.update", "secret", name, before=secret_out(before), after=after)
    if ciphertext is not None:
        await container.catalog.reload()  # models using it pick up the new value
    return secret_out(secret)


@router.delete("/admin/secrets/{name}", status_code=204, summary="Delete a secret")
async def delete_secret(
    name: SecretName,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("secret.delete"))],
    trail: TrailDep,
) -> Response:
    before = await container.store.secrets.get(name)
    if before is None:
        raise NotFound(f"secret '{name}' does not exist")
    users = await _users_of(container, name)
    if users:
        raise Conflict(
            f"secret '{name}' is used by model {', '.join(repr(u) for u in users)}; change those first"
        )
    await container.store.secrets.delete(name)
    await trail.record("secret.delete", "secret", name, before=secret_out(before))
    return Response(status_code=204)
