"""``create_app(settings)``: builds the container in the lifespan and mounts routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waypost.api import chat, meta
from waypost.api.formats import ANTHROPIC, OPENAI
from waypost.api.middleware import RequestIdMiddleware
from waypost.api.state import Container
from waypost.core.errors import GatewayError, NotFound
from waypost.observability.logging import configure_logging
from waypost.pipeline.auth import StaticKeyAuth
from waypost.providers.anthropic import AnthropicProvider
from waypost.providers.base import Provider
from waypost.providers.http import HttpClient
from waypost.providers.mock import MockProvider
from waypost.providers.openai import OpenAIProvider
from waypost.routing.registry import ModelRegistry
from waypost.routing.router import Router
from waypost.settings import Settings


def build_container(settings: Settings) -> Container:
    http = HttpClient()
    providers: dict[str, Provider] = {
        "openai": OpenAIProvider(http),
        "anthropic": AnthropicProvider(http),
        "mock": MockProvider(),
    }
    router = Router(ModelRegistry(settings.models), providers)
    return Container(settings=settings, http=http, router=router, auth=StaticKeyAuth(settings.auth.api_keys))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    fmt = ANTHROPIC if request.url.path.startswith("/v1/messages") else OPENAI
    err: GatewayError = NotFound(f"No route for {request.method} {request.url.path}.")
    if exc.status_code != 404:
        err = GatewayError(str(exc.detail))
        err.status = exc.status_code
    status, body = fmt.encode_error(err)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def create_app(settings: Settings, *, configure_logs: bool = True) -> Starlette:
    if configure_logs:
        configure_logging(settings.logging.level, settings.logging.json_format)
    container = build_container(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        container.ready = True
        try:
            yield
        finally:
            container.ready = False
            await container.http.close()

    routes = [
        Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/chat/completions", chat.chat_completions, methods=["POST"]),
        Route("/v1/messages", chat.messages, methods=["POST"]),
        Route("/v1/models", meta.list_models, methods=["GET"]),
        Route("/models", meta.list_models, methods=["GET"]),
        Route("/health", meta.health, methods=["GET"]),
        Route("/health/live", meta.live, methods=["GET"]),
        Route("/health/ready", meta.ready, methods=["GET"]),
    ]
    middleware = [Middleware(RequestIdMiddleware)]
    if settings.server.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.server.cors_origins,
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["x-request-id", "x-waypost-provider", "x-waypost-deployment"],
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.container = container
    return app


def app_from_env() -> Starlette:
    """Factory for multi-worker servers: each worker loads the config named by $WAYPOST_CONFIG."""
    import os

    from waypost.settings import load_settings

    path = os.environ.get("WAYPOST_CONFIG")
    return create_app(load_settings(path))
