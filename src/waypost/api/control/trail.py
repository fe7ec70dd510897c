"""Recording control-plane changes in the admin audit trail (store/admin_trail.py).

An endpoint that creates, changes or deletes something takes ``trail: TrailDep`` and, once the
change is made, says what it did in one line::

    await trail.record("budget.update", "budget", budget.id, before=old, after=new)

The actor (the authenticated caller) and the client's address come from the request; the
snapshots are the API's own views of the target (credentials are scrubbed out again by the store).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel

from waypost.api.control.dependencies import current_principal, get_container
from waypost.api.state import Container
from waypost.security.principal import Principal
from waypost.store.admin_trail import TrailChange, scrub

log = logging.getLogger("waypost.control")

Snapshot = Mapping[str, Any] | BaseModel | None


class Trail:
    """The audit trail as one control-plane request writes to it: who acts, and from where."""

    def __init__(
        self, container: Container, actor_id: int | None, actor_email: str | None, client_ip: str | None
    ) -> None:
        self.container = container
        self.actor_id = actor_id
        self.actor_email = actor_email
        self.client_ip = client_ip

    async def record(
        self,
        action: str,
        target_type: str,
        target_id: str | int | None,
        *,
        before: Snapshot = None,
        after: Snapshot = None,
    ) -> None:
        """Append ``action`` (``<target_type>.<verb>``) on the target, with its state before and
        after (a dict or an API model). Never raises: the change is already made."""
        await record_change(
            self.container,
            TrailChange(
                action=action,
                target_type=target_type,
                target_id=None if target_id is None else str(target_id),
                actor_id=self.actor_id,
                actor_email=self.actor_email,
                client_ip=self.client_ip,
                before=snapshot(before),
                after=snapshot(after),
            ),
        )


async def request_trail(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Trail:
    """The dependency: the caller is authenticated once per request whatever else asks for it."""
    client = request.client
    return Trail(get_container(request), principal.user_id, principal.email, client.host if client else None)


TrailDep = Annotated[Trail, Depends(request_trail)]


def snapshot(value: Snapshot) -> dict[str, Any] | None:
    """An API model or a mapping as JSON data."""
    if value is None:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return dict(value)


async def record_change(container: Container, change: TrailChange) -> None:
    """Append ``change``; when the database refuses, the entry goes to the log (at ERROR, with
    its credentials scrubbed) rather than failing a request whose change is already made."""
    try:
        await container.store.admin_trail.append(change)
    except Exception as exc:
        entry = {
            "action": change.action,
            "target_type": change.target_type,
            "target_id": change.target_id,
            "actor_id": change.actor_id,
            "actor_email": change.actor_email,
            "client_ip": change.client_ip,
            "before": scrub(change.before),
            "after": scrub(change.after),
        }
        log.error(
            "admin change not recorded in the audit trail (%s): %s",
            type(exc).__name__,
            json.dumps(entry, sort_keys=True, default=str),
        )
