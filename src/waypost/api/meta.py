"""Health checks and the model list."""

from __future__ import annotations

import datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response

from waypost import __version__
from waypost.api.errors import error_response
from waypost.api.formats import ANTHROPIC, OPENAI
from waypost.api.state import Container
from waypost.core.errors import GatewayError


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
        }
    )


async def live(request: Request) -> Response:
    return _json({"status": "alive"})


async def ready(request: Request) -> Response:
    container: Container = request.app.state.container
    if not container.ready:
        return _json({"status": "not ready"}, 503)
    return _json({"status": "ready", "models": len(container.router.registry.models)})


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
