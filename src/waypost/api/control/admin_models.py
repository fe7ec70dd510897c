"""/admin/models: models created at run time (config-file ones are read-only) and who may use them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from waypost.api.control.dependencies import ContainerDep, find_group, find_user, requires
from waypost.api.control.model_config import extract_credentials, masked
from waypost.api.control.schemas import (
    Assignments,
    AssignRequest,
    ModelList,
    ModelOut,
    ModelUpdate,
)
from waypost.api.control.trail import Trail, TrailDep
from waypost.api.control.views import secret_out
from waypost.api.state import Container
from waypost.core.errors import BadRequest, Conflict, Forbidden, NotFound
from waypost.providers.kinds import calls_upstream
from waypost.routing.catalog import CatalogEntry
from waypost.routing.registry import destinations
from waypost.security.principal import Principal
from waypost.security.secret_refs import refs_in
from waypost.settings import ModelSettings

router = APIRouter(tags=["models"])

ModelName = Annotated[str, Path(description="The model's name")]
READ_ONLY = "model '{}' is declared in the config file; read-only through the API"
# Fields that decide where a model's requests (and so its credentials) go.
DESTINATION_FIELDS = {"provider", "preset", "base_url", "aws", "api_version", "deployments"}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


async def _directory(container: Container) -> tuple[dict[int, str], dict[int, str]]:
    users = {u.id: u.email for u in await container.store.users.list()}
    groups = {g.id: g.name for g in await container.store.groups.list()}
    return users, groups


def _out(
    entry: CatalogEntry, users: dict[int, str], groups: dict[int, str], disabled: Mapping[str, str]
) -> ModelOut:
    config = entry.settings.model_dump(mode="json", exclude={"name"})
    return ModelOut(
        name=entry.name,
        provider=entry.settings.provider,
        source=entry.source,
        public=entry.public,
        config=masked(config),
        assignments=Assignments(
            users=sorted(users[a.user_id] for a in entry.assignments if a.user_id in users),
            groups=sorted(groups[a.group_id] for a in entry.assignments if a.group_id in groups),
        ),
        disabled=disabled.get(entry.name),
    )


async def _answer(container: Container, name: str) -> ModelOut:
    entry = container.catalog.entry(name)
    if entry is None:
        raise NotFound(f"model '{name}' does not exist")
    return _out(entry, *await _directory(container), container.router.registry.disabled())


async def _changed(container: Container) -> None:
    await container.catalog.reload()
    container.authenticator.forget()


async def _check_destinations(container: Container, model: ModelSettings) -> None:
    """Every URL the model will call must pass the outbound policy now (400 naming the field):
    its own and each of its deployments'."""
    for where, each in destinations(model):
        if calls_upstream(each.provider) and (url := each.resolved_base_url()):
            await container.policy.check_resolved(url, field=f"{where}base_url")
        if each.aws is not None and each.aws.endpoint_url:
            await container.policy.check_resolved(each.aws.endpoint_url, field=f"{where}aws.endpoint_url")


async def _check_references(
    container: Container,
    actor: Principal,
    config: dict[str, Any],
    created: dict[str, str],
    *,
    sensitive: set[str],
) -> None:
    """Referenced secrets must exist. A model sends its credentials to its base URL, so pointing
    stored secrets somewhere (``sensitive``: references that are new or whose destination changes)
    discloses them: that needs ``secret.view`` beyond the model permission."""
    for name in sorted(refs_in(config) - set(created)):
        if await container.store.secrets.get(name) is None:
            raise BadRequest(f"secret '{name}' does not exist")
    if sensitive - set(created) and not actor.has("secret.view"):
        names = ", ".join(sorted(sensitive - set(created)))
        raise Forbidden(f"Sending the stored secrets {names} to this model's URL requires 'secret.view'.")


async def _store_secrets(container: Container, model: str, plaintexts: dict[str, str], trail: Trail) -> None:
    store = container.store
    users = {r.name: refs_in(r.config) for r in await store.models.list()}
    for entry in container.catalog.entries():
        if entry.source == "config":
            users[entry.name] = refs_in(entry.settings.model_dump(exclude_unset=True))
    for name, value in plaintexts.items():
        for other, refs in users.items():
            if other != model and name in refs:
                raise Conflict(f"secret '{name}' already exists and model '{other}' uses it")
        ciphertext = container.secrets.encrypt(value)
        before = await store.secrets.get(name)
        if before is None:
            created = await store.secrets.create(
                name, ciphertext=ciphertext, description=f"credential of model {model}"
            )
            await trail.record("secret.create", "secret", name, after=secret_out(created))
        else:
            updated = await store.secrets.update(name, ciphertext=ciphertext)
            after = {**secret_out(updated).model_dump(mode="json"), "value_changed": True}
            await trail.record("secret.update", "secret", name, before=secret_out(before), after=after)


async def _orphaned(container: Container, model: str, names: set[str], trail: Trail) -> None:
    """Delete ``model``'s own credential secrets that no model refers to any more."""
    in_use: set[str] = set()
    for record in await container.store.models.list():
        in_use |= refs_in(record.config)
    for name in sorted(names - in_use):
        if name.startswith(f"model.{model}."):
            before = await container.store.secrets.get(name)
            if before is not None and await container.store.secrets.delete(name):
                await trail.record("secret.delete", "secret", name, before=secret_out(before))


@router.get("/admin/models", response_model=ModelList, summary="List every model")
async def list_models(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("model.view"))]
) -> ModelList:
    users, groups = await _directory(container)
    disabled = container.router.registry.disabled()
    return ModelList(data=[_out(e, users, groups, disabled) for e in container.catalog.entries()])


@router.get("/admin/models/{name}", response_model=ModelOut, summary="Show a model")
async def get_model(
    name: ModelName, container: ContainerDep, _: Annotated[Principal, Depends(requires("model.view"))]
) -> ModelOut:
    return await _answer(container, name)


@router.post("/admin/models", status_code=201, response_model=ModelOut, summary="Create a model")
async def create_model(
    body: ModelSettings,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("model.create"))],
    trail: TrailDep,
) -> ModelOut:
    """Plaintext credentials are stored as encrypted secrets ``model.<name>.<field>``."""
    name = body.name
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadRequest("name: letters, digits, '.', '_' and '-' only (up to 100)", param="name")
    entry = container.catalog.entry(name)
    if entry is not None and entry.source == "config":
        raise Conflict(f"model '{name}' is declared in the config file")
    if entry is not None or await container.store.models.get(name) is not None:
        raise Conflict(f"model '{name}' already exists")
    raw = body.model_dump(mode="json", exclude_unset=True, exclude={"name", "public"})
    config, plaintexts = extract_credentials(name, raw)
    model = container.catalog.validate({**config, "public": body.public}, name)
    await _check_destinations(container, model)
    await _check_references(container, actor, config, plaintexts, sensitive=refs_in(config))
    await _store_secrets(container, name, plaintexts, trail)
    await container.store.models.create(name, config, public=body.public)
    await _changed(container)
    created = await _answer(container, name)
    await trail.record("model.create", "model", name, after=created)
    return created


@router.patch("/admin/models/{name}", response_model=ModelOut, summary="Change a model")
async def update_model(
    name: ModelName,
    body: ModelUpdate,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("model.modify"))],
    trail: TrailDep,
) -> ModelOut:
    """Only the fields sent change; ``null`` puts a field back to its default. A section
    (``timeouts``, ``retry``, ``aws``, ``headers``...) is replaced whole. ``********`` keeps a
    stored credential."""
    record = await container.store.models.get(name)
    if record is None:
        entry = container.catalog.entry(name)
        raise (
            Conflict(READ_ONLY.format(name))
            if entry is not None
            else NotFound(f"model '{name}' does not exist")
        )
    changes = body.model_dump(mode="json", exclude_unset=True)
    public = changes.pop("public", None)
    public = record.public if public is None else bool(public)
    merged = {**record.config}
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    config, plaintexts = extract_credentials(name, merged, record.config)
    model = container.catalog.validate({**config, "public": public}, name)
    await _check_destinations(container, model)
    sensitive = refs_in(config) - refs_in(record.config)
    if DESTINATION_FIELDS & changes.keys():
        sensitive = refs_in(config)
    await _check_references(container, actor, config, plaintexts, sensitive=sensitive)
    before = await _answer(container, name)
    await _store_secrets(container, name, plaintexts, trail)
    await container.store.models.update(name, config=config, public=public)
    await _orphaned(container, name, refs_in(record.config), trail)
    await _changed(container)
    after = await _answer(container, name)
    await trail.record("model.update", "model", name, before=before, after=after)
    return after


@router.delete("/admin/models/{name}", status_code=204, summary="Delete a model")
async def delete_model(
    name: ModelName,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("model.delete"))],
    trail: TrailDep,
) -> Response:
    record = await container.store.models.get(name)
    if record is None:
        entry = container.catalog.entry(name)
        raise (
            Conflict(READ_ONLY.format(name))
            if entry is not None
            else NotFound(f"model '{name}' does not exist")
        )
    before = await _answer(container, name)
    await container.store.models.delete(name)
    await trail.record("model.delete", "model", name, before=before)
    await _orphaned(container, name, refs_in(record.config), trail)
    await _changed(container)
    return Response(status_code=204)


async def _assignment_targets(
    container: Container, actor: Principal, name: str, body: AssignRequest, *, granting: bool
) -> tuple[list[int], list[int]]:
    if container.catalog.entry(name) is None:
        raise NotFound(f"model '{name}' does not exist")
    users = [await find_user(container, ref) for ref in body.users]
    groups = [await find_group(container, ref) for ref in body.groups]
    if not users and not groups:
        raise BadRequest("Name at least one user or group.", param="users")
    # Nobody widens their own access: giving yourself (or a group of yours) a model you cannot use.
    own = any(u.id == actor.user_id for u in users) or any(actor.user_id in g.members for g in groups)
    if granting and own and not actor.may_use(name):
        raise Forbidden(f"You cannot give yourself access to '{name}', which you may not use.")
    return [u.id for u in users], [g.id for g in groups]


async def _change_assignments(
    container: Container, actor: Principal, trail: Trail, name: str, body: AssignRequest, *, granting: bool
) -> ModelOut:
    """Assign (or, not ``granting``, unassign) model ``name`` to the users and groups ``body`` names."""
    user_ids, group_ids = await _assignment_targets(container, actor, name, body, granting=granting)
    before = (await _answer(container, name)).assignments
    store = container.store.assignments
    change = store.assign if granting else store.unassign
    for uid in user_ids:
        await change(name, user_id=uid)
    for gid in group_ids:
        await change(name, group_id=gid)
    await _changed(container)
    answer = await _answer(container, name)
    action = "model.assign" if granting else "model.unassign"
    await trail.record(action, "model", name, before=before, after=answer.assignments)
    return answer


@router.post(
    "/admin/models/{name}/assign", response_model=ModelOut, summary="Let users or groups use a model"
)
async def assign_model(
    name: ModelName,
    body: AssignRequest,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("model.modify"))],
    trail: TrailDep,
) -> ModelOut:
    return await _change_assignments(container, actor, trail, name, body, granting=True)


@router.post(
    "/admin/models/{name}/unassign", response_model=ModelOut, summary="Stop users or groups using a model"
)
async def unassign_model(
    name: ModelName,
    body: AssignRequest,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("model.modify"))],
    trail: TrailDep,
) -> ModelOut:
    return await _change_assignments(container, actor, trail, name, body, granting=False)
