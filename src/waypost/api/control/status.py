"""GET /admin/status: is this gateway configured safely, and is its database there."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from waypost.api.control.dependencies import ContainerDep, human_principal
from waypost.api.control.schemas import Check, StatusOut
from waypost.api.state import Container
from waypost.core.errors import GatewayError
from waypost.security.bootstrap import DEFAULT_ADMIN_PASSWORD
from waypost.security.generated_secrets import secrets_file_path
from waypost.security.key_rotation import CANARY_KEY, CANARY_TEXT
from waypost.security.principal import Principal

router = APIRouter(tags=["status"])


async def _database(container: Container) -> Check:
    store = container.store
    if not await store.ping():
        return Check(name="database", ok=False, detail="the database does not answer")
    revision = await store.revision()
    if revision is None:
        return Check(name="database", ok=False, detail="reachable, but no migration has been applied")
    return Check(name="database", ok=True, detail=f"reachable, migration {revision}")


def _generated(container: Container) -> str:
    """How a generated secret is described: where it is kept, and that it may stay so on loopback only."""
    return f"generated at first start and kept in {secrets_file_path(container.settings)} (loopback only)"


async def _encryption_key(container: Container) -> Check:
    name = "encryption_key"
    settings = container.settings
    source = "configured" if settings.security.encryption_keys else _generated(container)
    canary = await container.store.kv.get(CANARY_KEY)
    if canary is None:
        return Check(name=name, ok=False, detail="no canary stored yet (the gateway writes one at start)")
    try:
        ok = container.secrets.decrypt(canary) == CANARY_TEXT
    except GatewayError:
        ok = False
    if not ok:
        return Check(name=name, ok=False, detail=f"{source}, but no key reads the stored secrets")
    if not settings.security.encryption_keys and not settings.loopback_only:
        return Check(name=name, ok=False, detail=f"{source}: set security.encryption_keys")
    return Check(name=name, ok=True, detail=f"{source}, and reads the stored secrets")


def _jwt_secret(container: Container) -> Check:
    settings = container.settings
    if settings.auth.jwt_secret is not None:
        return Check(name="jwt_secret", ok=True, detail="configured")
    return Check(name="jwt_secret", ok=settings.loopback_only, detail=_generated(container))


async def _admin_password(container: Container, verdicts: dict[str, bool]) -> Check:
    name, email = "admin_password", container.settings.auth.admin_email
    admin = await container.store.users.by_email(email)
    if admin is None or admin.password_hash is None:
        return Check(name=name, ok=True, detail=f"{email} has no password")
    default = verdicts.get(admin.password_hash)
    if default is None:  # a full Argon2 check: done once per password hash, not on every visit
        default = await asyncio.to_thread(
            container.passwords.verify, admin.password_hash, DEFAULT_ADMIN_PASSWORD
        )
        verdicts.clear()
        verdicts[admin.password_hash] = default
    if default:
        return Check(name=name, ok=False, detail=f"{email} still has the default password")
    return Check(name=name, ok=True, detail=f"{email} has its own password")


def _outbound_guard(container: Container) -> Check:
    security = container.settings.security
    if security.allow_private_targets:
        return Check(
            name="outbound_guard",
            ok=False,
            detail="security.allow_private_targets: models may call private and loopback addresses",
        )
    allowed = "the allowed_base_urls patterns" if security.allowed_base_urls else "public addresses only"
    return Check(name="outbound_guard", ok=True, detail=f"models may call {allowed}")


def _verdicts(request: Request) -> dict[str, bool]:
    """Whether the admin's password hash is of the default password, remembered per hash."""
    state = request.app.state
    if not hasattr(state, "default_password_verdicts"):
        state.default_password_verdicts = {}
    verdicts: dict[str, bool] = state.default_password_verdicts
    return verdicts


async def _safely(name: str, check: Awaitable[Check]) -> Check:
    """A check that cannot run (the database is down) reports that instead of failing the page."""
    try:
        return await check
    except Exception as exc:
        return Check(name=name, ok=False, detail=f"could not be checked: {type(exc).__name__}")


@router.get("/admin/status", response_model=StatusOut, summary="Safety and health checks")
async def status(
    request: Request, container: ContainerDep, _: Annotated[Principal, Depends(human_principal)]
) -> StatusOut:
    """Any signed-in person may read this; "degraded" names each check that failed."""
    checks = [
        await _safely("database", _database(container)),
        await _safely("encryption_key", _encryption_key(container)),
        _jwt_secret(container),
        await _safely("admin_password", _admin_password(container, _verdicts(request))),
        _outbound_guard(container),
    ]
    return StatusOut(status="ok" if all(c.ok for c in checks) else "degraded", checks=checks)
