"""Readiness waits for the schema this version of Waypost expects (``HEAD_REVISION``).

At start, with ``database.auto_migrate`` the gateway migrates, unless another replica holds the
migration lock: then, as when ``auto_migrate`` is off and the database is behind, it starts
serving with readiness 503 and the reason, checks again every ``POLL`` seconds, and once the schema
is at head finishes its start (administrator, models, rules, limits, budgets) and turns ready.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from waypost.api.state import Container
from waypost.store.migrate import HEAD_REVISION, MigrationBusy, known_revision

log = logging.getLogger("waypost.migrate")

POLL = 1.0  # seconds between two looks at the schema while waiting for it


async def schema_wait_reason(container: Container) -> str | None:
    """Migrate when configured to (without waiting for another replica's lock); None when the
    schema is at head, else why readiness must wait. Errors of the database itself propagate."""
    store = container.store
    if container.settings.database.auto_migrate:
        try:
            await store.migrate_to_head(wait=False)
            return None
        except MigrationBusy:
            return f"waiting for the database schema {HEAD_REVISION}: another replica is migrating it"
    revision = await store.revision()
    if revision == HEAD_REVISION:
        return None
    if revision is not None and not known_revision(revision):
        return (
            f"the database is at revision {revision}, which this version of Waypost does not know"
            f" (its newest is {HEAD_REVISION}): a newer Waypost migrated it"
        )
    found = f"at revision {revision}" if revision else "empty"
    return (
        f"waiting for the database schema {HEAD_REVISION}: the database is {found}"
        " (database.auto_migrate is off: run `waypost db upgrade`)"
    )


async def wait_for_schema(container: Container, finish_start: Callable[[], Awaitable[None]]) -> None:
    """Look again every ``POLL`` s until the schema is at head, then ``finish_start`` and turn
    ready (unless the stop signal came meanwhile). ``container.not_ready_reason`` says why not yet."""
    while True:
        await asyncio.sleep(POLL)
        try:
            reason = await schema_wait_reason(container)
        except Exception as exc:  # the database does not answer, or a migration failed: said, retried
            reason = f"waiting for the database schema {HEAD_REVISION}: {type(exc).__name__}: {exc}"
        if reason is None:
            break
        if reason != container.not_ready_reason:
            log.warning("not ready: %s", reason)
            container.not_ready_reason = reason
    await finish_start()
    container.not_ready_reason = None
    log.info("the database schema is at %s: ready", HEAD_REVISION)
    if not container.drain.stopping:
        container.ready = True
