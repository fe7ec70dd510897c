"""/admin/cache: the response cache's size and counts (``cache.view``), and invalidation of
cached answers by key, by model, by user or group, or all of them (``cache.manage``);
docs/policy.md, "The response cache"."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from waypost.api.control.dependencies import ContainerDep, find_group, find_user, requires
from waypost.api.control.trail import TrailDep
from waypost.api.state import Container
from waypost.core.errors import BadRequest, Conflict, Overloaded
from waypost.pipeline.cache import CacheStage
from waypost.security.principal import Principal

router = APIRouter(tags=["cache"])

KEY_PATTERN = r"^[0-9a-f]{40}$"  # as the answers name it in X-Waypost-Cache-Key


class CacheCountsOut(BaseModel):
    hits: int
    misses: int
    bypasses: int
    coalesced: int = Field(description="Of the hits: requests that waited for an identical one's answer")
    stored: int
    too_big: int = Field(description="Answers not stored: bigger than cache.max_entry_bytes")
    store_errors: int


class CacheStatus(BaseModel):
    enabled: bool
    backend: str | None = Field(None, description="memory (this process) or redis (shared)")
    tenant: str | None = Field(None, description="Whose answers a caller may receive: user or group")
    ttl: float | None = None
    entries: int | None = None
    bytes: int | None = None
    max_bytes: int | None = None
    max_entry_bytes: int | None = None
    counts: CacheCountsOut | None = Field(None, description="What this gateway process did since it started")


class Invalidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(
        None, pattern=KEY_PATTERN, description="One entry, as X-Waypost-Cache-Key names it"
    )
    model: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Every answer of a model (the name asked for or resolved)",
    )
    user: str | int | None = Field(None, description="Every answer stored for a user (id or e-mail)")
    group: str | int | None = Field(
        None, description="Every answer stored for callers in a group (name or id)"
    )
    all: bool = Field(False, description="Every answer")


class Invalidated(BaseModel):
    removed: int = Field(description="How many entries were removed")
    scope: str = Field(description="What was invalidated, e.g. 'model:gpt-4o'")


def _cache(container: Container) -> CacheStage:
    cache = container.cache
    if cache is None:
        raise Conflict("The response cache is off (cache.enabled: false): nothing is cached.")
    return cache


async def _scope(container: Container, body: Invalidate) -> str:
    """The one thing to invalidate, as a tag (or ``key:`` / ``all``)."""
    given = [name for name in ("key", "model", "user", "group") if getattr(body, name) not in (None, "")] + (
        ["all"] if body.all else []
    )
    if len(given) != 1:
        raise BadRequest(
            "Give exactly one of key, model, user, group or all"
            + (f" (got {', '.join(given)})." if given else "."),
            param=given[1] if len(given) > 1 else "key",
        )
    if body.key is not None:
        return f"key:{body.key}"
    if body.model:
        return f"model:{body.model}"
    if body.user not in (None, ""):
        text = str(body.user).strip()
        # A numeric id is taken as given: the answers of a deleted user can still be dropped.
        return f"user:{text if text.isdigit() else (await find_user(container, text)).id}"
    if body.group not in (None, ""):
        text = str(body.group).strip()
        return f"group:{(await find_group(container, text)).name if text.isdigit() else text}"
    return "all"


@router.get("/admin/cache", response_model=CacheStatus, summary="The response cache's size and counts")
async def cache_status(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("cache.view"))]
) -> CacheStatus:
    cache = container.cache
    if cache is None:
        return CacheStatus(enabled=False)
    settings = cache.settings
    try:
        stats = await cache.store.stats()
    except Exception as exc:
        raise Overloaded(f"The cache's store did not answer ({type(exc).__name__}).") from None
    return CacheStatus(
        enabled=True,
        backend=container.settings.state.backend,
        tenant=settings.tenant,
        ttl=settings.ttl,
        entries=stats.entries,
        bytes=stats.bytes,
        max_bytes=stats.max_bytes,
        max_entry_bytes=settings.max_entry_bytes,
        counts=CacheCountsOut.model_validate(cache.counts, from_attributes=True),
    )


@router.post("/admin/cache/invalidate", response_model=Invalidated, summary="Invalidate cached answers")
async def invalidate(
    body: Invalidate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("cache.manage"))],
    trail: TrailDep,
) -> Invalidated:
    """Removes one entry (``key``), every answer of a model, of a user, of a group, or ``all``.
    With ``state.backend: memory`` only this gateway process's cache is reached."""
    cache = _cache(container)
    scope = await _scope(container, body)
    store = cache.store
    try:
        if scope == "all":
            removed = await store.clear()
        elif scope.startswith("key:"):
            removed = await store.remove(scope.removeprefix("key:"))
        else:
            removed = await store.remove_tagged(scope)
    except Exception as exc:
        raise Overloaded(f"The cache's store did not answer ({type(exc).__name__}).") from None
    after: dict[str, Any] = {"scope": scope, "removed": removed}
    await trail.record("cache.invalidate", "cache", None, after=after)
    return Invalidated(removed=removed, scope=scope)
