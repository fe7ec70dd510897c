"""Health checks and the model list."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Awaitable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from waypost import __version__
from waypost.api.errors import error_response
from waypost.api.formats import ANTHROPIC, OPENAI
from waypost.api.state import Container
from waypost.core.errors import GatewayError
from waypost.routing.health import DeploymentState


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def health(request: Request) -> Response:
    container: Container = request.app.state.container
    return _json(
        {
            "status": "ok" if container.ready else "starting",
            "version": __version__,
            "event_loop": container.loop_lag.snapshot(),
            # Models that cannot be called (credentials missing), each with why: names only.
            "disabled_models": container.router.registry.disabled(),
            # Every deployment: healthy, cooling_down, ejected or missing_credentials (no I/O).
            "deployments": [_deployment(d) for d in container.router.deployment_states()],
        }
    )


def _deployment(state: DeploymentState) -> dict[str, object]:
    return {k: v for k, v in dataclasses.asdict(state).items() if v is not None}


async def live(request: Request) -> Response:
    return _json({"status": "alive"})


async def ready(request: Request) -> Response:
    """503 until started and from the stop signal on; reports whether the database and Redis
    answer, without turning 503 for them: requests are served without either (the audit log
    spools, budgets and limits follow ``when_state_unavailable``), and a shared database or Redis
    down would otherwise take every replica out of the load balancer at once."""
    container: Container = request.app.state.container
    checks = await _dependencies(container)
    if not container.ready or container.drain.stopping:
        reason = "draining" if container.drain.stopping else container.not_ready_reason
        return _json({"status": "not ready", **({"reason": reason} if reason else {}), "checks": checks}, 503)
    return _json({"status": "ready", "models": len(container.router.registry.models), "checks": checks})


CHECK_TIMEOUT = 2.0  # seconds per dependency: a probe answers well within its own timeout


async def _dependencies(container: Container) -> dict[str, str]:
    """Each dependency: "ok", or "unreachable" (its error named, never its address)."""

    async def check(probe: Awaitable[object]) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                answer = await probe
        except Exception as exc:
            return f"unreachable ({type(exc).__name__})"
        return "unreachable" if answer is False else "ok"

    probes: dict[str, Awaitable[object]] = {"database": container.store.ping()}
    if container.settings.state.backend == "redis":
        probes["redis"] = container.router.health.store.ping()
    results = await asyncio.gather(*(check(p) for p in probes.values()))
    return dict(zip(probes, results, strict=True))


async def list_models(request: Request) -> Response:
    """OpenAI's list shape; Anthropic's when the caller speaks Anthropic (``anthropic-version``)."""
    container: Container = request.app.state.container
    anthropic = "anthropic-version" in request.headers
    try:
        principal = await container.authenticator.authenticate(request.headers)
    except GatewayError as err:
        return error_response(ANTHROPIC if anthropic else OPENAI, err)
    models = [m for m in container.router.registry.models if principal.may_use(m.name)]
    created = container.started_at
    if anthropic:
        stamp = datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat().replace("+00:00", "Z")
        data = [
            {
                "type": "model",
                "id": m.name,
                "display_name": m.name,
                "created_at": stamp,
                "lifecycle": "active",
            }
            for m in models
        ]
        return _json(
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )
    return _json(
        {
            "object": "list",
            "data": [
                {"id": m.name, "object": "model", "created": created, "owned_by": m.provider} for m in models
            ],
        }
    )
