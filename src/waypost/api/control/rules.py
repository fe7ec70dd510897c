"""/admin/rules: policy rules (``rule.*`` permissions); docs/policy.md, "Rules". Rules declared in
the config file are listed and tested here, and read-only. ``POST /admin/rules/test`` tries draft
rules (or the active ones) on a sample request and, with ``replay``, over the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waypost.api.chat import with_default_model
from waypost.api.control.dependencies import ContainerDep, find_user, requires
from waypost.api.control.trail import TrailDep
from waypost.api.formats import ANTHROPIC, OPENAI
from waypost.api.state import Container
from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest, Conflict, GatewayError, NotFound
from waypost.pipeline.rules.book import RuleSet, compile_record, describe
from waypost.pipeline.rules.compile import CompiledRule, compile_rule
from waypost.pipeline.rules.replay import replay
from waypost.pipeline.rules.trial import trial
from waypost.security.permissions import require
from waypost.security.principal import Principal
from waypost.settings import RuleSpec
from waypost.store.rules import RuleRecord

router = APIRouter(tags=["rules"])

RuleRef = Annotated[str, Path(description="The rule's id or name")]
READ_ONLY = "rule {!r} is declared in the config file; read-only through the API"
MAX_DRAFTS = 200


class RuleOut(BaseModel):
    id: int | None  # None: declared in the config file
    name: str
    description: str
    weight: int
    mode: str  # enforce, shadow, off
    enabled: bool  # mode is not off
    source: Literal["config", "database"]
    conditions: dict[str, Any]
    action: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    error: str | None = None  # a database rule that is not valid (written by hand) and is ignored


class RuleList(BaseModel):
    data: list[RuleOut]


class RuleUpdate(BaseModel):
    """Fields to change; ``conditions`` and ``action`` replace the whole of theirs."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str | None = None
    weight: int | None = None
    mode: Literal["enforce", "shadow", "off"] | None = None
    enabled: bool | None = None
    conditions: dict[str, Any] | list[Any] | None = None
    action: dict[str, Any] | None = None


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Requests recorded from this time on (ISO 8601)")
    until: datetime | None = Field(None, description="... and before this one (default: now)")
    limit: int = Field(1000, ge=1, le=10_000, description="Requests replayed at most, oldest first")
    examples: int = Field(10, ge=0, le=100, description="Changed decisions shown at most")


class RuleTest(BaseModel):
    """A draft rule (``rule``: evaluated with the active rules, replacing the one of its name), a
    draft rule set (``rules``: instead of the active ones), or neither (the active rules), tried on
    a sample ``request`` (a chat body in ``format``, with ``headers``, as ``user``), on the audit
    log's requests (``replay``), or both. Nothing is sent upstream."""

    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any] | None = None
    rules: list[dict[str, Any]] | None = Field(None, max_length=MAX_DRAFTS)
    request: dict[str, Any] | None = None
    format: Literal["openai", "anthropic"] = "openai"
    headers: dict[str, str] = Field(default_factory=dict)
    user: str | int | None = Field(None, description="Evaluate as this user (id or e-mail); default: you")
    replay: Replay | None = None


def _out(rule: CompiledRule, record: RuleRecord | None = None) -> RuleOut:
    spec = rule.spec
    return RuleOut(
        id=rule.id,
        name=spec.name,
        description=spec.description,
        weight=spec.weight,
        mode=spec.effective_mode,
        enabled=spec.effective_mode != "off",
        source="config" if rule.source == "config" else "database",
        conditions=spec.stored_conditions(),
        action=spec.action.model_dump(mode="json"),
        created_at=record.created_at if record is not None else None,
        updated_at=record.updated_at if record is not None else None,
    )


def _invalid(record: RuleRecord, error: str) -> RuleOut:
    return RuleOut(
        id=record.id,
        name=record.name,
        description=record.description,
        weight=record.weight,
        mode=record.mode,
        enabled=record.mode != "off",
        source="database",
        conditions=record.conditions,
        action=record.action,
        created_at=record.created_at,
        updated_at=record.updated_at,
        error=error,
    )


def _record_out(record: RuleRecord) -> RuleOut:
    try:
        return _out(compile_record(record), record)
    except ValueError as exc:
        return _invalid(record, str(exc))


def _configured(container: Container, name: str) -> CompiledRule | None:
    return next((r for r in container.rules.configured if r.name == name), None)


async def _find(container: Container, ref: str) -> RuleRecord | CompiledRule:
    """A database rule by id or name, or a config file's by name."""
    text = ref.strip()
    store = container.store.rules
    record = await store.get(int(text)) if text.isdigit() else await store.by_name(text)
    if record is not None and _configured(container, record.name) is None:
        return record
    configured = _configured(container, text)
    if configured is not None:
        return configured
    raise NotFound(f"rule '{text}' does not exist")


async def _stored(container: Container, ref: str) -> RuleRecord:
    found = await _find(container, ref)
    if isinstance(found, CompiledRule):
        raise Conflict(READ_ONLY.format(found.name))
    return found


def _spec(data: dict[str, Any], where: str = "") -> RuleSpec:
    """``data`` validated as a rule; a 400 naming each wrong field."""
    try:
        return RuleSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        param = where + ".".join(str(p) for p in first) if first else where.rstrip(".") or None
        message = describe(exc)
        if where:
            message = "; ".join(f"{where}{part}" for part in message.split("; "))
        raise BadRequest(message, param=param) from None


def _check_targets(container: Container, spec: RuleSpec, where: str = "") -> None:
    """A reroute names a model the gateway has."""
    target = getattr(spec.action, "model", None)
    if spec.action.type == "reroute" and target:
        try:
            container.router.registry.resolve(target)
        except GatewayError:
            raise BadRequest(
                f"{where}action.model: there is no model named {target!r}", param=f"{where}action.model"
            ) from None


def _columns(spec: RuleSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "description": spec.description,
        "weight": spec.weight,
        "mode": spec.effective_mode,
        "conditions": spec.stored_conditions(),
        "action": spec.action.model_dump(mode="json"),
    }


async def _reload(container: Container) -> None:
    """Apply a change in this gateway now (others within ``rules.cache_ttl``)."""
    await container.rules.load()


@router.get("/admin/rules", response_model=RuleList, summary="List rules, highest weight first")
async def list_rules(
    container: ContainerDep, _: Annotated[Principal, Depends(requires("rule.view"))]
) -> RuleList:
    records = await container.store.rules.list()
    rules = [_record_out(r) for r in records if _configured(container, r.name) is None]
    rules += [_out(r) for r in container.rules.configured]
    rules.sort(key=lambda r: (-r.weight, r.name, r.source != "config"))
    return RuleList(data=rules)


@router.get("/admin/rules/{rule}", response_model=RuleOut, summary="Show a rule")
async def get_rule(
    rule: RuleRef, container: ContainerDep, _: Annotated[Principal, Depends(requires("rule.view"))]
) -> RuleOut:
    found = await _find(container, rule)
    return _out(found) if isinstance(found, CompiledRule) else _record_out(found)


@router.post("/admin/rules", status_code=201, response_model=RuleOut, summary="Create a rule")
async def create_rule(
    body: RuleSpec,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("rule.create"))],
    trail: TrailDep,
) -> RuleOut:
    if container.rules.is_configured(body.name):
        raise Conflict(f"a rule named {body.name!r} is declared in the config file")
    _check_targets(container, body)
    record = await container.store.rules.create(**_columns(body))
    await _reload(container)
    out = _record_out(record)
    await trail.record("rule.create", "rule", record.id, after=out)
    return out


@router.patch("/admin/rules/{rule}", response_model=RuleOut, summary="Change a rule")
async def update_rule(
    rule: RuleRef,
    body: RuleUpdate,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("rule.modify"))],
    trail: TrailDep,
) -> RuleOut:
    current = await _stored(container, rule)
    sent = body.model_dump(exclude_unset=True)
    for name in ("name", "weight", "mode", "enabled", "action", "description"):
        if name in sent and sent[name] is None:
            raise BadRequest(f"{name}: cannot be null", param=name)
    merged = current.spec() | {k: v for k, v in sent.items() if k != "enabled"}
    if "enabled" in sent:
        if not sent["enabled"]:
            merged["mode"] = "off"
        elif merged["mode"] == "off":
            merged["mode"] = "enforce"
    spec = _spec(merged)
    if spec.name != current.name and container.rules.is_configured(spec.name):
        raise Conflict(f"a rule named {spec.name!r} is declared in the config file")
    _check_targets(container, spec)
    before = _record_out(current)
    record = await container.store.rules.update(current.id, _columns(spec))
    await _reload(container)
    out = _record_out(record)
    await trail.record("rule.update", "rule", record.id, before=before, after=out)
    return out


@router.delete("/admin/rules/{rule}", status_code=204, summary="Delete a rule")
async def delete_rule(
    rule: RuleRef,
    container: ContainerDep,
    _: Annotated[Principal, Depends(requires("rule.delete"))],
    trail: TrailDep,
) -> Response:
    current = await _stored(container, rule)
    before = _record_out(current)
    await container.store.rules.delete(current.id)
    await _reload(container)
    await trail.record("rule.delete", "rule", current.id, before=before)
    return Response(status_code=204)


@router.post("/admin/rules/test", summary="Try rules on a sample request or on the audit log")
async def test_rules(
    body: RuleTest,
    container: ContainerDep,
    actor: Annotated[Principal, Depends(requires("rule.view"))],
) -> dict[str, Any]:
    """Each rule's conditions with what they read and answered, and what the first enforced rule
    that holds would do (``request``); with ``replay``, which decisions over the audit log's
    requests in a time range would change. Nothing is sent and nothing is counted."""
    if body.request is None and body.replay is None:
        raise BadRequest("give a sample 'request', a 'replay' time range, or both", param="request")
    if body.rule is not None and body.rules is not None:
        raise BadRequest("give a draft 'rule' or a draft set 'rules', not both", param="rule")
    rules = _drafts(container, body)
    answer: dict[str, Any] = {}
    if body.request is not None:
        ctx = await _sample(container, body, actor)
        answer["sample"] = await trial(rules, ctx, _resolver(container))
    if body.replay is not None:
        require(actor, "audit.view")  # the replay shows requests of the audit log
        span = body.replay
        until = span.until or datetime.now(UTC)
        since = _utc(span.since)
        until = _utc(until)
        if since >= until:
            raise BadRequest("replay.since must be before replay.until", param="replay.since")
        if until - since > timedelta(days=366):
            raise BadRequest("replay: at most 366 days at once", param="replay.until")
        answer["replay"] = await replay(
            container.store,
            rules,
            since,
            until,
            _resolver(container),
            limit=span.limit,
            examples=span.examples,
        )
    return answer


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _drafts(container: Container, body: RuleTest) -> RuleSet:
    book = container.rules
    if body.rules is not None:
        specs = [_spec(r, f"rules.{i}.") for i, r in enumerate(body.rules)]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise BadRequest("rules: two draft rules have the same name", param="rules")
        return RuleSet([compile_rule(s, "draft") for s in specs], book.counters)
    if body.rule is None:
        return book.current
    draft = compile_rule(_spec(body.rule, "rule."), "draft")
    kept = [r for r in book.current.all if r.name != draft.name]
    return RuleSet([*kept, draft], book.counters)


def _resolver(container: Container) -> Any:
    def resolve(model: str) -> str | None:
        try:
            return container.router.registry.resolve(model).name
        except GatewayError:
            return None

    return resolve


async def _sample(container: Container, body: RuleTest, actor: Principal) -> RequestContext:
    """The sample request as the data plane would see it, from ``body``."""
    fmt = ANTHROPIC if body.format == "anthropic" else OPENAI
    try:
        req = fmt.decode_request(with_default_model(body.request, container.settings.routing.default_model))
    except GatewayError as err:
        where = f"request.{err.param}" if err.param else "request"
        raise BadRequest(f"request: {err.message}", param=where) from None
    principal = actor
    if body.user is not None:
        ref = str(body.user).strip()
        if ref not in (str(actor.user_id), actor.email):
            # The trial shows that user's live quota counters: their usage, not only rules.
            # Checked before the lookup, so that the refusal does not tell who exists either.
            require(actor, "usage.view")
        user = await find_user(container, body.user)
        principal = await container.authenticator.principal_for(user, None)
    ctx = RequestContext(
        "rules-test",
        fmt.name,
        "messages" if fmt is ANTHROPIC else "chat",
        headers={k.lower(): v for k, v in body.headers.items()},
        principal=principal,
        body=body.request,
        req=req,
        stream=req.stream,
    )
    return ctx
