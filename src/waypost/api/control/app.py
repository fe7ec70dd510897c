"""The control plane: a FastAPI app for /auth, /me and /admin, with errors in the OpenAI shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waypost import __version__
from waypost.api.control import (
    admin_groups,
    admin_models,
    admin_secrets,
    admin_tokens,
    admin_users,
    audit_export,
    audit_trail,
    auth,
    budgets,
    cache,
    limits,
    me,
    rules,
    status,
    usage,
    usage_export,
)
from waypost.api.control.dependencies import current_principal
from waypost.api.control.schemas import ErrorBody
from waypost.api.errors import error_response
from waypost.api.formats import OPENAI
from waypost.api.middleware import RequestIdMiddleware
from waypost.api.state import Container
from waypost.core.errors import BadRequest, GatewayError, NotFound, PayloadTooLarge

log = logging.getLogger("waypost.control")

# Control-plane bodies are small (a model's settings, a 64 KiB secret at most); anything bigger is
# refused before it is buffered, since /auth/login takes bodies from anyone.
MAX_BODY_BYTES = 1024 * 1024
TOO_LARGE = f"The request body is larger than the control plane accepts ({MAX_BODY_BYTES} bytes)."
OPENAPI_URL = "/admin/openapi.json"
DOCS_URL = "/admin/docs"

TAGS = [
    {"name": "auth", "description": "Log in with a password or single sign-on; refresh and log out."},
    {"name": "me", "description": "The caller's own account, models and API tokens."},
    {"name": "users", "description": "User accounts (user.* permissions)."},
    {"name": "groups", "description": "Groups and their members (group.* permissions)."},
    {"name": "permissions", "description": "Permission grants to users and groups."},
    {"name": "models", "description": "Models and who may use them (model.* permissions)."},
    {"name": "tokens", "description": "API tokens of every user (token.* permissions)."},
    {"name": "secrets", "description": "Encrypted secrets; values are never returned (secret.*)."},
    {"name": "status", "description": "Whether the gateway is configured safely."},
    {"name": "budgets", "description": "Spend limits and what each has spent (budget.* permissions)."},
    {"name": "rate limits", "description": "Requests, tokens and concurrency (limit.* permissions)."},
    {"name": "cache", "description": "The response cache: its size, and invalidation (cache.* permissions)."},
    {"name": "rules", "description": "Policy rules; try them on a sample or the audit log (rule.*)."},
    {"name": "usage", "description": "Requests, tokens and spend from the audit log (usage.view)."},
    {"name": "audit", "description": "The audit log: every request and its upstream attempts (audit.view)."},
    {"name": "audit trail", "description": "Admin changes, hash-chained and verifiable (audit.view)."},
]


ERROR = {"model": ErrorBody}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**ERROR, "description": "Missing, invalid or expired credentials"},
    403: {**ERROR, "description": "The caller lacks the permission the message names"},
}


def build_control_app(container: Container) -> FastAPI:
    app = FastAPI(
        title="Waypost control plane",
        version=__version__,
        description="Accounts, permissions, models, API tokens and secrets of a Waypost gateway.",
        openapi_url=None,  # served by _add_docs, behind authentication
        docs_url=None,
        redoc_url=None,
        openapi_tags=TAGS,
    )
    app.state.container = container
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(RequestIdMiddleware)
    for module in (auth, me, admin_users, admin_groups, admin_models, admin_tokens, admin_secrets, status):
        app.include_router(module.router, responses=ERRORS)
    app.include_router(usage.router, responses=ERRORS)
    app.include_router(audit_export.router, responses=ERRORS)
    app.include_router(usage_export.router, responses=ERRORS)
    app.include_router(audit_trail.router, responses=ERRORS)
    app.include_router(budgets.router, responses=ERRORS)
    app.include_router(rules.router, responses=ERRORS)
    app.include_router(cache.router, responses=ERRORS)
    app.include_router(limits.router, responses=ERRORS)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _add_docs(app, public=container.settings.server.public_api_docs)
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app


def _add_docs(app: FastAPI, *, public: bool) -> None:
    """The OpenAPI document and its Swagger page, for authenticated callers (any API token or access
    token) unless ``server.public_api_docs``: the document maps the whole admin surface."""
    dependencies = [] if public else [Depends(current_principal)]

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=dependencies)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(DOCS_URL, include_in_schema=False, dependencies=dependencies)
    async def swagger_page() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{app.title} - Swagger UI")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the 400 answers this app gives in place of its default 422."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        invalid = {
            "description": "Invalid request; the message names the field",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for operations in doc["paths"].values():
            for operation in operations.values():
                if operation["responses"].pop("422", None) is not None:
                    operation["responses"]["400"] = invalid
        for unused in ("HTTPValidationError", "ValidationError"):
            doc["components"]["schemas"].pop(unused, None)
        app.openapi_schema = doc
    return app.openapi_schema


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(OPENAI, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """400 naming each offending field, e.g. ``body.email: Field required``."""
    assert isinstance(exc, RequestValidationError)
    parts, first = [], None
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        first = first or where
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return error_response(OPENAI, BadRequest("; ".join(parts) or "Invalid request.", param=first))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    err: GatewayError
    if exc.status_code == 404:
        err = NotFound(f"No route for {request.method} {request.url.path}.")
    elif exc.status_code == 413:
        err = PayloadTooLarge(str(exc.detail))
    elif exc.status_code == 405:
        err = GatewayError(f"{request.method} is not allowed on {request.url.path}.")
        err.status = 405
    else:
        err = GatewayError(str(exc.detail))
        err.status = exc.status_code
    return error_response(OPENAI, err)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("control-plane request %s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(OPENAI, GatewayError("Internal error; the gateway log has the details."))


class BodyLimit:
    """413 for a body over ``limit`` bytes, by its Content-Length or as it streams in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await error_response(OPENAI, PayloadTooLarge(TOO_LARGE))(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # An HTTPException, because FastAPI turns other errors while reading into a 400.
                    raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited, send)
