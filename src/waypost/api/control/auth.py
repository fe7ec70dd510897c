"""Logging in: e-mail and password, refresh-token rotation, logout, and OpenID Connect single
sign-on (authorization code with PKCE; the flow lives in the database so any worker finishes it)."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from waypost.api.control.dependencies import ContainerDep
from waypost.api.control.schemas import (
    IdentityProviderList,
    IdentityProviderOut,
    LoginRequest,
    RefreshRequest,
    TokenPair,
)
from waypost.api.control.trail import Trail
from waypost.api.control.views import user_out
from waypost.api.state import Container
from waypost.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from waypost.security import oidc
from waypost.security.jwt_tokens import hash_refresh_token, new_refresh_token
from waypost.settings import OidcProviderSettings
from waypost.store.records import FlowRecord, UserRecord

router = APIRouter(tags=["auth"])

INVALID_LOGIN = "Invalid e-mail or password."
GATEWAY_LOGIN = "gateway-only accounts cannot log in"
FLOW_TTL = datetime.timedelta(minutes=10)
NO_STORE = "no-store"  # answers carrying tokens must not be cached (RFC 6749 section 5.1)
# Binds a login flow to the browser that started it, so a stranger's callback link (login CSRF)
# cannot sign the victim into the stranger's account.
FLOW_COOKIE = "waypost_oidc_state"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def issue_tokens(container: Container, user: UserRecord, *, login: bool = True) -> TokenPair:
    """A new access token and refresh token for ``user``; a login (not a refresh) records its time."""
    auth = container.settings.auth
    refresh, digest = new_refresh_token()
    now = _now()
    await container.store.refresh.create(
        user.id, token_hash=digest, expires_at=now + datetime.timedelta(seconds=auth.refresh_token_ttl)
    )
    if login:
        user = await container.store.users.update(user.id, last_login_at=now)
    return TokenPair(
        access_token=container.jwt.issue(user.id, user.email, user.role),
        expires_in=auth.access_token_ttl,
        refresh_token=refresh,
        user=user_out(user),
    )


def _may_log_in(user: UserRecord) -> None:
    if not user.active:
        raise Unauthorized("This account is deactivated.")
    if user.role == "gateway":
        raise Forbidden(GATEWAY_LOGIN)


@router.post("/auth/login", response_model=TokenPair, summary="Log in with e-mail and password")
async def login(body: LoginRequest, container: ContainerDep, response: Response) -> TokenPair:
    response.headers["cache-control"] = NO_STORE
    passwords = container.passwords
    user = await container.store.users.by_email(body.email)
    if user is None or user.password_hash is None:
        # The same work as a real check, so the answer time does not tell which e-mails exist.
        await asyncio.to_thread(passwords.dummy_verify)
        raise Unauthorized(INVALID_LOGIN)
    if not await asyncio.to_thread(passwords.verify, user.password_hash, body.password):
        raise Unauthorized(INVALID_LOGIN)
    _may_log_in(user)
    if passwords.needs_rehash(user.password_hash):
        digest = await asyncio.to_thread(passwords.hash, body.password)
        user = await container.store.users.update(user.id, password_hash=digest)
    return await issue_tokens(container, user)


@router.post("/auth/refresh", response_model=TokenPair, summary="Trade a refresh token for new tokens")
async def refresh(body: RefreshRequest, container: ContainerDep, response: Response) -> TokenPair:
    """The refresh token is single use: the answer carries its replacement."""
    response.headers["cache-control"] = NO_STORE
    user_id = await container.store.refresh.consume(hash_refresh_token(body.refresh_token))
    user = await container.store.users.get(user_id) if user_id is not None else None
    if user is None:
        raise Unauthorized("Invalid or expired refresh token; log in again.")
    _may_log_in(user)
    return await issue_tokens(container, user, login=False)


@router.post("/auth/logout", status_code=204, summary="Revoke a refresh token")
async def logout(body: RefreshRequest, container: ContainerDep) -> Response:
    await container.store.refresh.consume(hash_refresh_token(body.refresh_token))
    return Response(status_code=204)


# -- single sign-on -------------------------------------------------------------------------------


def _provider(container: Container, name: str) -> OidcProviderSettings:
    for provider in container.settings.auth.oidc:
        if provider.name == name:
            return provider
    raise NotFound(f"identity provider '{name}' is not configured")


def _redirect_uri(container: Container, provider: OidcProviderSettings, request: Request) -> str:
    if provider.redirect_uri:
        return provider.redirect_uri
    base = container.settings.server.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/auth/oidc/{provider.name}/callback"


def _callback_path(request: Request, name: str) -> str:
    """The callback's path as the browser sees it: behind ``server.root_path``'s prefix."""
    return f"{request.scope.get('root_path', '')}/auth/oidc/{name}/callback"


def _relative_path(value: str | None) -> str | None:
    """Only a path on this gateway: never another site (an open redirect would leak the tokens)."""
    if value is None:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value or any(c < " " for c in value):
        raise BadRequest("redirect_to: must be a path on this gateway, such as /ui/", param="redirect_to")
    return value


@router.get(
    "/auth/identity-providers",
    response_model=IdentityProviderList,
    summary="The single sign-on providers to offer",
)
async def identity_providers(container: ContainerDep) -> IdentityProviderList:
    return IdentityProviderList(
        data=[
            IdentityProviderOut(
                name=p.name,
                display_name=p.display_name or p.name,
                login_url=f"/auth/oidc/{p.name}/login",
            )
            for p in container.settings.auth.oidc
        ]
    )


@router.get(
    "/auth/oidc/{name}/login",
    status_code=302,
    response_class=RedirectResponse,
    summary="Start a single sign-on login (redirects to the identity provider)",
)
async def oidc_login(
    name: str,
    request: Request,
    container: ContainerDep,
    redirect_to: Annotated[str | None, Query(max_length=2000)] = None,
) -> RedirectResponse:
    provider = _provider(container, name)
    target = _relative_path(redirect_to)
    discovery = await oidc.discover(container.http, provider.issuer)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = oidc.pkce_pair()
    await container.store.flows.put(
        FlowRecord(
            state=state,
            provider=name,
            nonce=nonce,
            code_verifier=verifier,
            redirect_to=target,
            expires_at=_now() + FLOW_TTL,
        )
    )
    url = oidc.authorization_url(
        provider, discovery, _redirect_uri(container, provider, request), state, nonce, challenge
    )
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        FLOW_COOKIE,
        state,
        max_age=int(FLOW_TTL.total_seconds()),
        path=_callback_path(request, name),
        httponly=True,
        samesite="lax",  # the IdP sends the browser back with a top-level GET
        secure=request.url.scheme == "https",
    )
    return response


@router.get(
    "/auth/oidc/{name}/callback",
    response_model=TokenPair,
    responses={302: {"description": "To the flow's redirect_to, with the tokens in the fragment"}},
    summary="Finish a single sign-on login",
)
async def oidc_callback(
    name: str,
    request: Request,
    container: ContainerDep,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response | TokenPair:
    provider = _provider(container, name)
    if error:
        if state:
            await container.store.flows.take(state)  # this flow is over
        raise Unauthorized(f"The identity provider refused the login: {error_description or error}")
    if not code or not state:
        raise BadRequest("The callback needs the 'code' and 'state' parameters.", param="state")
    flow = await container.store.flows.take(state)
    if flow is None or flow.provider != name:
        raise BadRequest("Unknown, used or expired login state; start the login again.", param="state")
    if request.cookies.get(FLOW_COOKIE) != state:
        raise BadRequest("The login state does not match this browser's login; start again.", param="state")
    discovery = await oidc.discover(container.http, provider.issuer)
    tokens = await oidc.exchange_code(
        container.http,
        provider,
        discovery,
        code=code,
        redirect_uri=_redirect_uri(container, provider, request),
        code_verifier=flow.code_verifier,
    )
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise Unauthorized("The identity provider returned no ID token.")
    claims = await oidc.verify_id_token(container.http, id_token, discovery, provider.client_id, flow.nonce)
    user = await _sso_user(container, provider, claims, request.client.host if request.client else None)
    _may_log_in(user)
    pair = await issue_tokens(container, user)
    if flow.redirect_to is None:
        response: Response = Response(
            pair.model_dump_json().encode(),
            media_type="application/json",
            headers={"cache-control": NO_STORE},
        )
    else:
        fragment = urlencode(
            {
                "access_token": pair.access_token,
                "token_type": pair.token_type,
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
            }
        )
        response = RedirectResponse(f"{flow.redirect_to}#{fragment}", status_code=302)
    response.delete_cookie(FLOW_COOKIE, path=_callback_path(request, name))
    return response


async def _sso_user(
    container: Container, provider: OidcProviderSettings, claims: dict[str, Any], client_ip: str | None
) -> UserRecord:
    """The account for the ID token's e-mail, created on first login when the provider allows it
    (an entry in the audit trail whose actor is the new account)."""
    email = oidc.email_from_claims(provider, claims)
    user = await container.store.users.by_email(email)
    if user is not None:
        return user
    if not provider.auto_create_users:
        raise Forbidden(f"there is no account for {email}; ask an administrator to create one")
    name = claims.get("name")
    try:
        user = await container.store.users.create(
            email, name if isinstance(name, str) and name else email, role=provider.default_role
        )
    except Conflict:  # a parallel first login created it
        user = await container.store.users.by_email(email)
        if user is None:
            raise
        return user
    after = {**user_out(user).model_dump(mode="json"), "created_by": f"single sign-on ({provider.name})"}
    await Trail(container, user.id, user.email, client_ip).record("user.create", "user", user.id, after=after)
    return user
