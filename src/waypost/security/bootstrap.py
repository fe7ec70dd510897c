"""Every start: the administrator account on the first one, stored secrets moved off the old
development key, and a canary that tells whether the encryption keys still read what is stored."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from waypost.core.errors import Conflict
from waypost.security.key_rotation import CANARY_KEY, CANARY_TEXT, migrate_from_legacy_dev_key
from waypost.security.passwords import weak_password_reason

if TYPE_CHECKING:
    from waypost.api.state import Container

log = logging.getLogger("waypost.bootstrap")

# Accepted only in loopback-only mode, and reported by GET /admin/status until changed.
DEFAULT_ADMIN_PASSWORD = "waypost-admin"


class StartupError(Exception):
    """The gateway cannot start as configured; the message says what to change."""


async def start_container(container: Container) -> None:
    """Migrate (unless turned off), create the administrator on first start, move stored secrets off
    the legacy development key, load database models."""
    if container.settings.database.auto_migrate:
        await container.store.upgrade()
    await bootstrap(container)
    await container.catalog.reload()


async def bootstrap(container: Container) -> None:
    await _ensure_admin(container)
    store = container.store
    await migrate_from_legacy_dev_key(store, container.secrets)
    if await store.kv.get(CANARY_KEY) is None:
        await store.kv.set(CANARY_KEY, container.secrets.encrypt(CANARY_TEXT))


async def _ensure_admin(container: Container) -> None:
    settings, store = container.settings, container.store
    if await store.users.count() > 0:
        return
    email = settings.auth.admin_email
    password = settings.auth.admin_password
    if password is None:
        if not settings.loopback_only:
            raise StartupError(
                f"first start: set WAYPOST_ADMIN_PASSWORD to the password for {email} "
                "(a default password is only allowed when server.host is a loopback address)"
            )
        password = DEFAULT_ADMIN_PASSWORD
    else:
        reason = weak_password_reason(password, email)
        if reason is not None and not settings.loopback_only:
            raise StartupError(f"WAYPOST_ADMIN_PASSWORD is too weak: {reason}")
    digest = await asyncio.to_thread(container.passwords.hash, password)
    try:
        await store.users.create(email, "Administrator", password_hash=digest, role="admin")
    except Conflict:
        return  # another worker created it first
    default = password == DEFAULT_ADMIN_PASSWORD
    log.warning(
        "created the administrator %s%s; change the password with `waypost login` then `waypost me password`",
        email,
        f" with the default password {DEFAULT_ADMIN_PASSWORD!r} (loopback only)" if default else "",
    )
