"""The per-app container of state, built in the lifespan and reached through ``app.state``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from waypost.observability.access import AccessLog
from waypost.pipeline.auth import StaticKeyAuth
from waypost.providers.http import HttpClient
from waypost.routing.router import Router
from waypost.settings import Settings


@dataclass(slots=True)
class Container:
    settings: Settings
    http: HttpClient
    router: Router
    auth: StaticKeyAuth
    access_log: AccessLog
    started_at: int = field(default_factory=lambda: int(time.time()))
    ready: bool = False
