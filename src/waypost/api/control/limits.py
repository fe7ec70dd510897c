"""/admin/limits: rate limits on a token, a user, a group, a model or each user by default
(``limit.*`` permissions); docs/policy.md, "Rate limits". Limits declared in the config file are
listed too, read-only."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from waypost.api.control.dependencies import ContainerDep, find_group, find_user, requires
from waypost.api.control.trail import TrailDep
from waypost.api.state import Container
from waypost.core.errors import BadRequest, Conflict, GatewayError, NotFound
from waypost.pipeline.rate_book import LiveLimit, config_limit, record_limit
from waypost.pipeline.rate_limits import RateLimitStage
from waypost.security.principal import Principal
from waypost.settings import RateLimitWindow
from waypost.state.rate import NONE, SlotLine
from waypost.store.rate_limits import RateLimitRecord

router = APIRouter(tags=["rate limits"])

Scope = Literal["token", "user", "group", "model", "default"]
LimitRef = Annotated[str, Path(description="The rate limit's id or name")]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$"
READ_ONLY = "rate limit '{}' is declared in the config file; change it there"


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    windows: list[RateLimitWindow] | None = Field(
        None, max_length=8, description="Rolling windows, each with its own period ('per')"
    )
    concurrency: int | None = Field(None, ge=1, description="Requests in flight at once")
    enabled: bool | None = Field(None, description="A disabled limit is kept but not enforced")
    description: str | None = Field(None, max_length=1000)


class LimitCreate(_Fields):
    name: str = Field(min_length=1, max_length=128, pattern=NAME)
    scope: Scope
    target: str | int | None = Field(
        None, description="Token id, user id or e-mail, group id or name, model name; none for default"
    )


class LimitUpdate(_Fields):
    name: str | None = Field(None, min_length=1, max_length=128, pattern=NAME)
    scope: Scope | None = None
    target: str | int | None = None


class WindowUsage(BaseModel):
    per: str | int
    requests: int
    tokens: int
    input_tokens: int
    output_tokens: int
    resets_at: datetime | None  # when everything counted has left the window


class LimitUsage(BaseModel):
    windows: list[WindowUsage]
    in_flight: int | None  # with a concurrency limit


class LimitOut(BaseModel):
    id: int | None  # null for a limit of the config file
    name: str
    scope: str
    target: str | None  # as stored: a token, user or group id, a model name
    target_name: str  # e.g. "user alice@example.com"
    windows: list[RateLimitWindow]
    concurrency: int | None
    enabled: bool
    description: str
    source: Literal["database", "config"]
    created_at: datetime | None
    updated_at: datetime | None
    # What is counted now; null for a default limit (counted per user), when limits are off or
    # when the state backend does not answer.
    usage: LimitUsage | None


class LimitList(BaseModel):
    data: list[LimitOut]


def _stage(container: Container) -> RateLimitStage | None:
    stage = container.pipeline.stage("rate_limits")
    return stage if isinstance(stage, RateLimitStage) else None


async def _resolve(container: Container, record: RateLimitRecord) -> LiveLimit:
    groups: dict[int, str] = {}
    users: dict[int, str] = {}
    if record.scope == "group" and record.target is not None:
        group = await container.store.groups.get(int(record.target))
        if group is not None:
            groups[group.id] = group.name
    if record.scope == "user" and record.target is not None:
        user = await container.store.users.get(int(record.target))
        if user is not None:
            users[user.id] = user.email
    return record_limit(record, groups, users)


async def _usage(container: Container, limit: LiveLimit) -> LimitUsage | None:
    stage = _stage(container)
    if stage is None or limit.scope == "default":
        return None
    now = time.time()
    lines = limit.lines(limit.key, now, (0, 0, 0, 0), stage.settings.slot_ttl)
    levels = await stage.levels(lines, now)
    if levels is None:
        return None  # the state backend does not answer: definitions only
    windows = []
    for window, level in zip(limit.windows, levels, strict=False):
        at = window.resets_at(level.newest) if level.newest != NONE else None
        windows.append(
            WindowUsage(
                per=window.source.per,
                requests=level.used[0],
                tokens=level.used[1],
                input_tokens=level.used[2],
                output_tokens=level.used[3],
                resets_at=datetime.fromtimestamp(at, UTC) if at is not None else None,
            )
        )
    in_flight = None
    if lines and isinstance(lines[-1], SlotLine):
        in_flight = levels[-1].used[0]
    return LimitUsage(windows=windows, in_flight=in_flight)


async def _out(container: Container, limit: LiveLimit) -> LimitOut:
    rec = limit.record
    enabled = True if rec is None else bool(rec.config.get("enabled", True))
    return LimitOut(
        id=limit.id,
        name=limit.name,
        scope=limit.scope,
        target=limit.target,
        target_name=limit.label,
        windows=[w.source for w in limit.windows],
        concurrency=limit.concurrency,
        enabled=enabled,
        description=limit.description,
        source="config" if rec is None else "database",
        created_at=rec.created_at if rec is not None else None,
        updated_at=rec.updated_at if rec is not None else None,
        usage=await _usage(container, limit) if enabled else None,
    )


async def _config_limits(container: Container) -> list[LiveLimit]:
    return [await config_limit(d, container.store, quiet=True) for d in container.settings.rate_limits.limits]


async def _find(container: Container, ref: str) -> LiveLimit:
    """A limit by id or name: the database's, or (by name) the config file's."""
    text = ref.strip()
    store = container.store.rate_limits
    record = await store.get(int(text)) if text.isdigit() else await store.by_name(text)
    if record is not None:
        return await _resolve(container, record)
    for limit in await _config_limits(container):
        if limit.name == text:
            return limit
    raise NotFound(f"rate limit '{text}' does not exist")


def _writable(limit: LiveLimit) -> RateLimitRecord:
    if limit.record is None:
        raise Conflict(READ_ONLY.format(limit.name))
    return limit.record


async def _target(container: Container, scope: str, target: str | int | None) -> str | None:
    """The target as stored: a token, user or group id, a model name; None for default."""
    if scope == "default":
        if target not in (None, ""):
            raise BadRequest(
                "target: a default limit applies to each user and takes no target", param="target"
            )
        return None
    if target is None or str(target).strip() == "":
        raise BadRequest(f"target: a {scope} limit needs a target", param="target")
    text = str(target).strip()
    if scope == "user":
        return str((await find_user(container, text)).id)
    if scope == "group":
        return str((await find_group(container, text)).id)
    if scope == "token":
        if not text.isdigit() or await container.store.tokens.get(int(text)) is None:
            raise NotFound(f"token '{text}' does not exist (give its numeric id)")
        return text
    try:
        container.router.registry.resolve(text)
    except GatewayError:
        raise BadRequest(f"target: there is no model named {text!r}", param="target") from None
    return text


def _config(body: _Fields, current: dict[str, Any]) -> dict[str, Any]:
    """The stored document: windows, concurrency, enabled, description (each checked)."""
    config = dict(current)
    sent = body.model_fields_set
    if "windows" in sent:
        windows = body.windows or []
        periods = [w.seconds for w in windows]
        if len(set(periods)) != len(periods):
            raise BadRequest("windows: each window needs a period ('per') of its own", param="windows")
        config["windows"] = [w.model_dump(exclude_none=True) for w in windows]
    for name in ("concurrency", "enabled", "description"):
        if name in sent:
            config[name] = getattr(body, name)
    if not config.get("windows") and config.get("concurrency") is None:
        raise BadRequest("a rate limit needs windows, concurrency or both", param="windows")
    return config


async def _reload(container: Container) -> None:
    """Apply a change in this gateway now (others within ``rate_limits.cache_ttl``)."""
    if container.rate_limits is not None:
        await container.rate_limits.load()


async def _taken_name(container: Container, name: str) -> None:
    if any(d.name == name for d in container.settings.rate_limits.limits):
        raise Conflict(f"a rate limit named {name!r} is declared in the config file")


@router.get("/admin/limits", response_model=LimitList, summary="List rate limits and what each has counted")
async def list_limits(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("limit.view"))]
) -> LimitList:
    limits = await _config_limits(container)
    limits += [await _resolve(container, r) for r in await container.store.rate_limits.list()]
    return LimitList(data=[await _out(container, limit) for limit in limits])


@router.get("/admin/limits/{limit}", response_model=LimitOut, summary="Show a rate limit")
async def get_limit(
    limit: LimitRef, container: ContainerDep, _: Annotated[Principal, Depends(requires("limit.view"))]
) -> LimitOut:
    return await _out(container, await _find(container, limit))


@router.post("/admin/limits", status_code=201, response_model=LimitOut, summary="Create a rate limit")
async def create_limit(
    body: LimitCreate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("limit.create"))],
    trail: TrailDep,
) -> LimitOut:
    await _taken_name(container, body.name)
    target = await _target(container, body.scope, body.target)
    config = _config(body, {"enabled": True, "description": ""})
    record = await container.store.rate_limits.create(
        name=body.name, scope=body.scope, target=target, config=config
    )
    await _reload(container)
    out = await _out(container, await _resolve(container, record))
    await trail.record("limit.create", "rate_limit", record.id, after=_snapshot(out))
    return out


@router.patch("/admin/limits/{limit}", response_model=LimitOut, summary="Change a rate limit")
async def update_limit(
    limit: LimitRef,
    body: LimitUpdate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("limit.modify"))],
    trail: TrailDep,
) -> LimitOut:
    current = _writable(await _find(container, limit))
    sent = body.model_fields_set
    for name in ("name", "scope", "enabled"):
        if name in sent and getattr(body, name) is None:
            raise BadRequest(f"{name}: cannot be null", param=name)
    changes: dict[str, Any] = {}
    if body.name is not None and body.name != current.name:
        await _taken_name(container, body.name)
        changes["name"] = body.name
    if "scope" in sent or "target" in sent:
        scope = body.scope or current.scope
        target = body.target if "target" in sent else current.target
        if "scope" in sent and "target" not in sent and scope != current.scope:
            target = None if scope == "default" else current.target
        changes.update(scope=scope, target=await _target(container, scope, target))
    changes["config"] = _config(body, current.config)
    before = await _out(container, await _resolve(container, current))
    record = await container.store.rate_limits.update(current.id, changes)
    await _reload(container)
    out = await _out(container, await _resolve(container, record))
    await trail.record(
        "limit.update", "rate_limit", record.id, before=_snapshot(before), after=_snapshot(out)
    )
    return out


@router.delete("/admin/limits/{limit}", status_code=204, summary="Delete a rate limit")
async def delete_limit(
    limit: LimitRef,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("limit.delete"))],
    trail: TrailDep,
) -> Response:
    current = _writable(await _find(container, limit))
    before = await _out(container, await _resolve(container, current))
    await container.store.rate_limits.delete(current.id)
    await _reload(container)
    await trail.record("limit.delete", "rate_limit", current.id, before=_snapshot(before))
    return Response(status_code=204)


def _snapshot(out: LimitOut) -> dict[str, Any]:
    """A limit as the trail records it: its definition, not its moving counts."""
    return out.model_dump(mode="json", exclude={"usage", "updated_at"})
