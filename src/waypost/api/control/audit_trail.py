"""/admin/audit-trail: who changed what in the gateway's configuration, and whether the hash
chain that links the entries is intact (audit.view)."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from waypost.api.control import usage_params as params
from waypost.api.control.dependencies import ContainerDep, requires
from waypost.core.errors import BadRequest
from waypost.security.principal import Principal
from waypost.store.admin_trail import TrailEntry, TrailFilter

router = APIRouter(tags=["audit trail"])

FILTERS = ("action", "target_type", "target_id", "actor", "from", "to")
_CURSOR = re.compile(r"^[1-9][0-9]{0,18}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TrailEntryOut(BaseModel):
    id: int
    created_at: datetime
    actor_id: int | None = Field(description="The user who made the change")
    actor_email: str | None
    action: str = Field(description="What was done, e.g. user.create, model.assign, secret.delete")
    target_type: str = Field(description="user, group, model, token, secret, budget")
    target_id: str | None = Field(description="The target's id (users, groups, tokens) or name")
    client_ip: str | None
    before: dict[str, Any] | None = Field(description="The target before the change (no credentials)")
    after: dict[str, Any] | None = Field(description="The target after the change (no credentials)")
    prev_hash: str = Field(description="The hash of the entry before this one")
    hash: str = Field(description="sha256 of prev_hash and this entry's canonical JSON")


class TrailPage(BaseModel):
    data: list[TrailEntryOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next (older) page; null on the last")
    has_more: bool


class TrailProblem(BaseModel):
    kind: Literal["edited", "removed", "reordered"]
    id: int | None = Field(description="The entry where the break shows; null when the anchor is missing")
    message: str


class TrailVerification(BaseModel):
    ok: bool
    entries: int = Field(description="How many entries were checked")
    head_id: int | None = Field(description="The newest entry")
    head_hash: str | None = Field(description="Its hash: keep it elsewhere and pass it as anchor later")
    problems: list[TrailProblem] = Field(description="The first breaks, in chain order")
    problem_count: int


@router.get(
    "/admin/audit-trail",
    response_model=TrailPage,
    summary="Admin changes: who changed what, when and from where, newest first",
)
async def audit_trail(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("audit.view"))],
    action: Annotated[
        str | None, Query(max_length=64, pattern=r"^[a-z][a-z_.]*$", description="e.g. user.create")
    ] = None,
    target_type: Annotated[
        str | None, Query(max_length=32, pattern=r"^[a-z][a-z_]*$", description="e.g. user, model")
    ] = None,
    target_id: Annotated[str | None, Query(max_length=256, description="The target's id or name")] = None,
    actor: Annotated[str | None, Query(max_length=320, description="The actor's user id or e-mail")] = None,
    start: Annotated[str | None, Query(alias="from", description="From this ISO date or date-time")] = None,
    end: Annotated[str | None, Query(alias="to", description="Before this ISO date or date-time")] = None,
    cursor: Annotated[str | None, Query(description="The next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Entries per page")] = 50,
) -> TrailPage:
    params.only(request, (*FILTERS, "cursor", "limit"))
    where = TrailFilter(
        action=action,
        target_type=target_type,
        target_id=_text("target_id", target_id),
        start=params.moment("from", start),
        end=params.moment("to", end),
        **_actor(actor),
    )
    if where.start is not None and where.end is not None and where.end <= where.start:
        raise BadRequest("to: must be later than from (the range is from <= time < to)", param="to")
    if cursor is not None and not _CURSOR.match(cursor):
        raise BadRequest(
            "cursor: not a cursor this endpoint returned (use next_cursor as given)", param="cursor"
        )
    page = await container.store.admin_trail.page(
        where, limit=limit, before=int(cursor) if cursor is not None else None
    )
    return TrailPage(
        data=[_out(e) for e in page.entries],
        next_cursor=str(page.next) if page.next is not None else None,
        has_more=page.next is not None,
    )


@router.get(
    "/admin/audit-trail/verify",
    response_model=TrailVerification,
    summary="Check the hash chain: name the first entry edited, removed or moved",
)
async def verify_audit_trail(
    request: Request,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("audit.view"))],
    anchor: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9a-f]{64}$",
            description="A head_hash kept from an earlier check: must still be there",
        ),
    ] = None,
) -> TrailVerification:
    """Always 200: ``ok`` says whether the chain is intact, ``problems`` where it is not."""
    params.only(request, ("anchor",))
    result = await container.store.admin_trail.verify(anchor=anchor)
    return TrailVerification(
        ok=result.ok,
        entries=result.entries,
        head_id=result.head_id,
        head_hash=result.head_hash,
        problems=[TrailProblem(kind=p.kind, id=p.id, message=p.message) for p in result.problems],
        problem_count=result.problem_count,
    )


def _text(name: str, value: str | None) -> str | None:
    if value is not None and (not value.strip() or _CONTROL.search(value)):
        raise BadRequest(f"{name}: must be printable and not empty", param=name)
    return value


def _actor(value: str | None) -> dict[str, Any]:
    """``actor``: a user id (digits) or an e-mail (compared lower-cased, as stored)."""
    text = _text("actor", value)
    if text is None:
        return {}
    text = text.strip()
    if text.isascii() and text.isdigit():
        if not 0 < int(text) < 2**63:
            raise BadRequest("actor: not a user id or an e-mail", param="actor")
        return {"actor_id": int(text)}
    return {"actor_email": text.lower()}


def _out(entry: TrailEntry) -> TrailEntryOut:
    return TrailEntryOut.model_validate(asdict(entry))
