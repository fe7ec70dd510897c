"""Caller authentication: API tokens on the data plane, JWT access tokens (or API tokens) on the
control plane.

The data plane does no database round trip for a known token: each token hash maps to its
principal (the user's permissions and usable models) for ``auth.cache_ttl`` seconds, so a revoked
token, a removed assignment or a deactivated user stops working within that time on every worker.
Last-used times are collected in memory and written in one statement per flush.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from waypost.core.errors import Unauthorized
from waypost.security.api_tokens import hash_api_token, presented_token
from waypost.security.jwt_tokens import JwtCodec, looks_like_jwt
from waypost.security.permissions import effective_permissions
from waypost.security.principal import Principal

if TYPE_CHECKING:
    from waypost.routing.catalog import ModelCatalog
    from waypost.store import Store
    from waypost.store.records import TokenRecord, UserRecord

log = logging.getLogger("waypost.auth")

MISSING = "Missing API key: send it as 'Authorization: Bearer <key>' or in the 'x-api-key' header."
MAX_CACHED = 50_000  # token hashes (known and unknown) kept at once; the cache is cleared beyond that


class Authenticator:
    def __init__(
        self,
        store: Store,
        jwt: JwtCodec,
        catalog: ModelCatalog,
        *,
        ttl: float,
        open_as: str | None = None,
    ) -> None:
        self._store = store
        self._jwt = jwt
        self._catalog = catalog
        self._ttl = ttl
        self._open_as = open_as  # open mode: calls without a token act as this user (the admin)
        # token hash -> (cache deadline (monotonic), principal or None when unknown, token expiry (epoch))
        self._tokens: dict[str, tuple[float, Principal | None, float | None]] = {}
        self._open: tuple[float, Principal] | None = None
        self._touched: set[int] = set()

    # -- data plane ---------------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller of a data-plane request, from its API token (cached)."""
        key = presented_token(headers)
        if key is None:
            if self._open_as is not None:
                return await self._open_principal()
            raise Unauthorized(MISSING)
        return await self._by_token(key)

    async def _by_token(self, key: str) -> Principal:
        digest = hash_api_token(key)
        now = time.monotonic()
        entry = self._tokens.get(digest)
        if entry is None or entry[0] <= now:
            principal, expires = await self._load(digest)
            if len(self._tokens) >= MAX_CACHED:
                self._tokens.clear()
            entry = (now + self._ttl, principal, expires)
            self._tokens[digest] = entry
        _, principal, expires = entry
        if principal is None:
            raise Unauthorized("Invalid API key.")
        if expires is not None and expires <= time.time():
            raise Unauthorized("This API key has expired.")
        assert principal.token_id is not None
        self._touched.add(principal.token_id)
        return principal

    async def _load(self, digest: str) -> tuple[Principal | None, float | None]:
        token = await self._store.tokens.by_hash(digest)
        if token is None:
            return None, None
        user = await self._store.users.get(token.user_id)
        if user is None or not user.active:
            return None, None
        expires = token.expires_at.timestamp() if token.expires_at is not None else None
        return await self.principal_for(user, token), expires

    async def _open_principal(self) -> Principal:
        now = time.monotonic()
        if self._open is None or self._open[0] <= now:
            assert self._open_as is not None
            user = await self._store.users.by_email(self._open_as)
            if user is None or not user.active:
                raise Unauthorized(MISSING)
            self._open = (now + self._ttl, await self.principal_for(user, None))
        return self._open[1]

    # -- control plane ------------------------------------------------------------------------

    async def authenticate_control(self, headers: Mapping[str, str]) -> Principal:
        """The caller of an /admin or /me request: a JWT access token from a login, or an API
        token. Open mode does not apply here."""
        key = presented_token(headers)
        if key is None:
            raise Unauthorized("Missing credentials: send 'Authorization: Bearer <access token or API key>'.")
        if not looks_like_jwt(key):
            return await self._by_token(key)
        claims = self._jwt.decode(key)
        try:
            user_id = int(claims["sub"])
        except (KeyError, TypeError, ValueError):
            raise Unauthorized("The access token names no valid user.") from None
        user = await self._store.users.get(user_id)
        if user is None or not user.active:
            raise Unauthorized("The access token's user does not exist or is deactivated.")
        return await self.principal_for(user, None)

    # -- shared -------------------------------------------------------------------------------

    async def principal_for(self, user: UserRecord, token: TokenRecord | None) -> Principal:
        """What ``user`` may do and use, now (through ``token`` when given)."""
        grants = await self._store.grants.effective(user.id)
        models: frozenset[str] | None = None
        if user.role != "admin":
            assigned = await self._store.assignments.models_for_user(user.id)
            models = frozenset(assigned | self._catalog.public_names())
        return Principal(
            user_id=user.id,
            email=user.email,
            role=user.role,
            permissions=effective_permissions(user.role, grants),
            models=models,
            token_id=token.id if token is not None else None,
            token_models=frozenset(token.models) if token is not None and token.models is not None else None,
        )

    def forget(self, user_id: int | None = None) -> None:
        """Drop cached principals after a change in this worker (others catch up within the TTL)."""
        if user_id is None:
            self._tokens.clear()
        else:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] is None or v[1].user_id != user_id}
        self._open = None

    async def flush_last_used(self) -> None:
        """Write the last-used time of every token seen since the previous flush."""
        if not self._touched:
            return
        ids, self._touched = self._touched, set()
        try:
            await self._store.tokens.touch(ids, datetime.datetime.now(datetime.UTC))
        except Exception:  # a database hiccup must not break authentication; try again next time
            log.warning("could not record API token last-used times", exc_info=True)
            self._touched |= ids

    async def run_flusher(self, every: float) -> None:
        """The background loop the lifespan starts."""
        while True:
            await asyncio.sleep(every)
            await self.flush_last_used()
