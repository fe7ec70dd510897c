"""/admin/budgets: spend limits on a user, a group, a token, a model, a tag or everyone
(``budget.*`` permissions); docs/metering.md, "Budgets"."""

from __future__ import annotations

import re
import time
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from waypost.api.control.dependencies import ContainerDep, find_group, find_user, requires
from waypost.api.control.trail import TrailDep
from waypost.api.state import Container
from waypost.core.errors import BadRequest, GatewayError, NotFound
from waypost.pipeline.budget_book import MICROS_PER_USD, LiveBudget, live_budget, view
from waypost.pipeline.budget_periods import PERIODS, check_period
from waypost.security.principal import Principal
from waypost.settings import BudgetSettings
from waypost.store.budgets import BudgetRecord

router = APIRouter(tags=["budgets"])

Scope = Literal["user", "group", "token", "model", "tag", "global"]
Period = Literal["daily", "weekly", "monthly", "quarterly", "total"]
BudgetRef = Annotated[str, Path(description="The budget's id or name")]
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")
CONFIG_FIELDS = (
    "fallback_model",
    "status",
    "cut_off_streams",
    "alert_thresholds",
    "alert_webhook",
    "description",
)
COUNTING_FIELDS = ("scope", "target", "period", "rolling", "timezone")  # a change starts a new counter
assert set(PERIODS) == {"daily", "weekly", "monthly", "quarterly", "total"}


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit_usd: Decimal | None = Field(None, ge=0, description="Spend limit in USD per period")
    limit_tokens: int | None = Field(None, ge=0, description="Token limit (input and output) per period")
    rolling: bool | None = Field(None, description="A rolling window instead of calendar periods")
    timezone: str | None = Field(None, max_length=64, description="Where calendar periods start (IANA name)")
    fallback_model: str | None = Field(
        None, max_length=256, description="Serve requests over this budget with this model instead"
    )
    status: Literal[402, 429] | None = Field(None, description="Status of a refusal (default budgets.status)")
    cut_off_streams: bool | None = Field(None, description="End a stream that reaches the limit")
    alert_thresholds: list[Annotated[int, Field(ge=1, le=1000)]] | None = Field(
        None, max_length=20, description="Percentages of the limit that raise an alert"
    )
    alert_webhook: str | None = Field(None, max_length=2048, description="POSTed each alert as JSON")
    description: str | None = Field(None, max_length=1000)


class BudgetCreate(_Fields):
    name: str = Field(min_length=1, max_length=128, pattern=NAME)
    scope: Scope
    target: str | int | None = Field(
        None, description="User id or e-mail, group id or name, token id, model name or tag; none for global"
    )
    period: Period = "monthly"


class BudgetUpdate(_Fields):
    name: str | None = Field(None, min_length=1, max_length=128, pattern=NAME)
    scope: Scope | None = None
    target: str | int | None = None
    period: Period | None = None


class BudgetReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_usage: bool = Field(
        False,
        description="Recount the period's spend from the audit log (true) or start again from zero now (false)",
    )


class BudgetUsage(BaseModel):
    window_start: datetime | None
    resets_at: datetime | None
    spent_usd: float
    reserved_usd: float
    remaining_usd: float | None
    spent_tokens: int
    reserved_tokens: int
    remaining_tokens: int | None


class BudgetOut(BaseModel):
    id: int
    name: str
    scope: str
    target: str | None  # as stored: a user, group or token id, a model name or a tag
    target_name: str  # e.g. "user alice@example.com"
    limit_usd: float | None
    limit_tokens: int | None
    period: str
    rolling: bool
    timezone: str
    fallback_model: str | None
    status: int
    cut_off_streams: bool
    alert_thresholds: list[int]
    alert_webhook: str | None
    description: str
    counted_from: datetime | None  # set by a reset that discarded the recorded usage
    created_at: datetime
    updated_at: datetime
    usage: BudgetUsage | None  # null when budgets are off or the state backend does not answer


class BudgetList(BaseModel):
    data: list[BudgetOut]


def _settings(container: Container) -> BudgetSettings:
    return container.settings.budgets


async def _live(container: Container, record: BudgetRecord) -> LiveBudget:
    """The record resolved as the stage sees it, its target named for people."""
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
    return live_budget(record, _settings(container), groups, users)


async def _out(container: Container, records: list[BudgetRecord]) -> list[BudgetOut]:
    live = [await _live(container, r) for r in records]
    now = time.time()
    usages: list[BudgetUsage | None] = [None] * len(live)
    book = container.budgets
    if book is not None and live:
        try:
            tallies = await book.tallies(live, now)
        except Exception:
            tallies = []  # the state backend does not answer: definitions only
        for i, (budget, tally) in enumerate(zip(live, tallies, strict=False)):
            usages[i] = BudgetUsage.model_validate(view(budget, tally, now))
    return [_one(b, u) for b, u in zip(live, usages, strict=True)]


def _one(budget: LiveBudget, usage: BudgetUsage | None) -> BudgetOut:
    rec = budget.record
    cfg = rec.config
    return BudgetOut(
        id=rec.id,
        name=rec.name,
        scope=rec.scope,
        target=rec.target,
        target_name=budget.label,
        limit_usd=None if rec.limit_micros is None else rec.limit_micros / MICROS_PER_USD,
        limit_tokens=rec.limit_tokens,
        period=rec.period,
        rolling=rec.rolling,
        timezone=rec.timezone,
        fallback_model=budget.fallback,
        status=budget.status,
        cut_off_streams=budget.cut_off,
        alert_thresholds=list(budget.thresholds),
        alert_webhook=cfg.get("alert_webhook"),
        description=cfg.get("description") or "",
        counted_from=rec.counted_from,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        usage=usage,
    )


async def _find(container: Container, ref: str) -> BudgetRecord:
    text = ref.strip()
    store = container.store.budgets
    record = await store.get(int(text)) if text.isdigit() else await store.by_name(text)
    if record is None:
        raise NotFound(f"budget '{text}' does not exist")
    return record


def _micros(limit_usd: Decimal | None) -> int | None:
    if limit_usd is None:
        return None
    if not limit_usd.is_finite() or limit_usd > Decimal(10) ** 9:
        raise BadRequest("limit_usd: at most 1,000,000,000 USD", param="limit_usd")
    return int((limit_usd * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


async def _target(container: Container, scope: str, target: str | int | None) -> str | None:
    """The target as stored: a user, group or token id, a model name, a tag; None for global."""
    if scope == "global":
        if target not in (None, ""):
            raise BadRequest(
                "target: a global budget applies to everyone and takes no target", param="target"
            )
        return None
    if target is None or str(target).strip() == "":
        raise BadRequest(f"target: a {scope} budget needs a target", param="target")
    text = str(target).strip()
    if scope == "user":
        return str((await find_user(container, text)).id)
    if scope == "group":
        return str((await find_group(container, text)).id)
    if scope == "token":
        if not text.isdigit() or await container.store.tokens.get(int(text)) is None:
            raise NotFound(f"token '{text}' does not exist (give its numeric id)")
        return text
    if scope == "model":
        _check_model(container, text, "target")
        return text
    if len(text) > 128 or not _TAG.match(text):
        raise BadRequest(
            f"target: {text[:40]!r} is not a tag (letters, digits and _ . : / @ + -, at most 128)",
            param="target",
        )
    return text


def _check_model(container: Container, name: str, field: str) -> None:
    try:
        container.router.registry.resolve(name)
    except GatewayError:
        raise BadRequest(f"{field}: there is no model named {name!r}", param=field) from None


def _config(container: Container, body: _Fields, current: dict[str, Any]) -> dict[str, Any]:
    config = dict(current)
    for name in CONFIG_FIELDS:
        if name in body.model_fields_set:
            config[name] = getattr(body, name)
    if config.get("fallback_model"):
        _check_model(container, config["fallback_model"], "fallback_model")
    if config.get("alert_webhook"):
        container.policy.check_url(config["alert_webhook"], field="alert_webhook")
    if config.get("alert_thresholds") is not None:
        config["alert_thresholds"] = sorted(set(config["alert_thresholds"]))
    return config


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise BadRequest(
            f"timezone: unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)", param="timezone"
        ) from None
    return name


def _check_period(period: str, rolling: bool) -> None:
    try:
        check_period(period, rolling)
    except ValueError as exc:
        raise BadRequest(f"period: {exc}", param="period") from None


async def _reload(container: Container) -> None:
    """Apply a change in this gateway now (others within ``budgets.refresh_interval``)."""
    if container.budgets is not None:
        await container.budgets.load()


@router.get("/admin/budgets", response_model=BudgetList, summary="List budgets and what each has spent")
async def list_budgets(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("budget.view"))]
) -> BudgetList:
    return BudgetList(data=await _out(container, await container.store.budgets.list()))


@router.get("/admin/budgets/{budget}", response_model=BudgetOut, summary="Show a budget")
async def get_budget(
    budget: BudgetRef, container: ContainerDep, _: Annotated[Principal, Depends(requires("budget.view"))]
) -> BudgetOut:
    return (await _out(container, [await _find(container, budget)]))[0]


@router.post("/admin/budgets", status_code=201, response_model=BudgetOut, summary="Create a budget")
async def create_budget(
    body: BudgetCreate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("budget.create"))],
    trail: TrailDep,
) -> BudgetOut:
    if body.limit_usd is None and body.limit_tokens is None:
        raise BadRequest("give limit_usd, limit_tokens or both", param="limit_usd")
    rolling = bool(body.rolling)
    _check_period(body.period, rolling)
    timezone = _check_timezone(body.timezone or "UTC")
    target = await _target(container, body.scope, body.target)
    config = _config(container, body, {})
    record = await container.store.budgets.create(
        name=body.name,
        scope=body.scope,
        target=target,
        limit_micros=_micros(body.limit_usd),
        limit_tokens=body.limit_tokens,
        period=body.period,
        rolling=rolling,
        timezone=timezone,
        config=config,
    )
    await _reload(container)
    out = (await _out(container, [record]))[0]
    await trail.record("budget.create", "budget", record.id, after=_snapshot(out))
    return out


@router.patch("/admin/budgets/{budget}", response_model=BudgetOut, summary="Change a budget")
async def update_budget(
    budget: BudgetRef,
    body: BudgetUpdate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("budget.modify"))],
    trail: TrailDep,
) -> BudgetOut:
    current = await _find(container, budget)
    sent = body.model_fields_set
    for name in ("name", "scope", "period", "rolling", "timezone"):
        if name in sent and getattr(body, name) is None:
            raise BadRequest(f"{name}: cannot be null", param=name)
    changes: dict[str, Any] = {}
    if body.name is not None and body.name != current.name:
        changes["name"] = body.name
    scope = body.scope or current.scope
    period = body.period or current.period
    rolling = current.rolling if body.rolling is None else body.rolling
    _check_period(period, rolling)
    if "scope" in sent or "target" in sent:
        target = await _target(container, scope, body.target if "target" in sent else current.target)
        changes.update(scope=scope, target=target)
    changes.update(period=period, rolling=rolling)
    if body.timezone is not None:
        changes["timezone"] = _check_timezone(body.timezone)
    if "limit_usd" in sent:
        changes["limit_micros"] = _micros(body.limit_usd)
    if "limit_tokens" in sent:
        changes["limit_tokens"] = body.limit_tokens
    limit_micros = changes.get("limit_micros", current.limit_micros)
    limit_tokens = changes.get("limit_tokens", current.limit_tokens)
    if limit_micros is None and limit_tokens is None:
        raise BadRequest("a budget needs limit_usd, limit_tokens or both", param="limit_usd")
    changes["config"] = _config(container, body, current.config)
    recount = any(name in changes and changes[name] != getattr(current, name) for name in COUNTING_FIELDS)
    before = (await _out(container, [current]))[0]
    record = await container.store.budgets.update(current.id, changes, recount=recount)
    await _reload(container)
    out = (await _out(container, [record]))[0]
    await trail.record("budget.update", "budget", record.id, before=_snapshot(before), after=_snapshot(out))
    return out


@router.post(
    "/admin/budgets/{budget}/reset", response_model=BudgetOut, summary="Reset what a budget has spent"
)
async def reset_budget(
    budget: BudgetRef,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("budget.modify"))],
    trail: TrailDep,
    body: BudgetReset | None = None,
) -> BudgetOut:
    """Starts the budget's counter again: from zero now, or (``keep_usage``) from the spend the
    audit log recorded in the current period; reservations held by requests in flight are
    dropped either way (their spend is counted when they finish)."""
    keep = body.keep_usage if body is not None else False
    current = await _find(container, budget)
    before = (await _out(container, [current]))[0]
    record = await container.store.budgets.reset(current.id, keep_usage=keep)
    await _reload(container)
    out = (await _out(container, [record]))[0]
    action = "budget.reset" if not keep else "budget.recount"
    await trail.record(action, "budget", record.id, before=_snapshot(before), after=_snapshot(out))
    return out


@router.delete("/admin/budgets/{budget}", status_code=204, summary="Delete a budget")
async def delete_budget(
    budget: BudgetRef,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("budget.delete"))],
    trail: TrailDep,
) -> Response:
    current = await _find(container, budget)
    before = (await _out(container, [current]))[0]
    await container.store.budgets.delete(current.id)
    await _reload(container)
    await trail.record("budget.delete", "budget", current.id, before=_snapshot(before))
    return Response(status_code=204)


def _snapshot(out: BudgetOut) -> dict[str, Any]:
    """A budget as the trail records it: its definition, not its moving spend."""
    return out.model_dump(mode="json", exclude={"usage", "updated_at"})
