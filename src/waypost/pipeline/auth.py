"""Caller authentication: API tokens on the data plane, JWT access tokens (or API tokens) on the
control plane.

The data plane does no database round trip for a known token: each token hash maps to its
principal (the user's permissions and usable models) for ``auth.cache_ttl`` seconds, so a revoked
token, a removed assignment or a deactivated user stops working within that time on every worker.
A principal is read again in the background once half its time has passed, so a token in use never
waits for the database; and a token read by several requests at once is read once (they all wait
for that one read), so the requests in flight when a cache entry ends do not each query the
database. Last-used times are collected in memory and written in one statement per flush.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from waypost.core.errors import Unauthorized
from waypost.security.api_tokens import TOKEN_PREFIX, hash_api_token, presented_token
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

# A cached token: (deadline (monotonic), principal or None when unknown, token expiry (epoch),
# when to read it again in the background (monotonic)).
_Entry = tuple[float, Principal | None, float | None, float]


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
        self._open_as = open_as  # open mode: calls without a Waypost token act as this user (the admin)
        self._tokens: dict[str, _Entry] = {}  # by token hash
        self._loading: dict[str, asyncio.Task[_Entry]] = {}  # reads in flight, by token hash
        self._generation = 0  # bumped by ``forget``: a read begun before it is not cached
        self._open: tuple[float, Principal] | None = None
        self._touched: set[int] = set()

    # -- data plane ---------------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller of a data-plane request, from its API token (cached)."""
        key = presented_token(headers)
        if self._open_as is not None and (key is None or not key.startswith(TOKEN_PREFIX)):
            # Open mode: a key that cannot be a Waypost token (every one starts ``wp-``) is no key
            # at all, so SDKs that insist on one work with any placeholder, and the placeholder
            # costs no database read. A ``wp-`` key must be valid: a revoked or expired token, or
            # one whose user is deactivated, is refused as in any mode.
            return await self._open_principal()
        if key is None:
            raise Unauthorized(MISSING)
        return await self._by_token(key)

    async def _by_token(self, key: str) -> Principal:
        digest = hash_api_token(key)
        now = time.monotonic()
        entry = self._tokens.get(digest)
        if entry is None or entry[0] <= now:
            entry = await asyncio.shield(self._read(digest))  # one caller's cancellation stops no one's read
        elif entry[3] <= now and digest not in self._loading:
            self._read(digest)  # in the background: this request goes on with the cached principal
        _, principal, expires, _ = entry
        if principal is None:
            raise Unauthorized("Invalid API key.")
        if expires is not None and expires <= time.time():
            raise Unauthorized("This API key has expired.")
        assert principal.token_id is not None
        self._touched.add(principal.token_id)
        return principal

    def _read(self, digest: str) -> asyncio.Task[_Entry]:
        """The read of ``digest``'s principal in flight, started if there is none."""
        task = self._loading.get(digest)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._read_and_cache(digest))
            self._loading[digest] = task
            task.add_done_callback(self._read_done)
        return task

    async def _read_and_cache(self, digest: str) -> _Entry:
        generation = self._generation
        try:
            principal, expires = await self._load(digest)
        finally:
            del self._loading[digest]
        now = time.monotonic()
        entry = (now + self._ttl, principal, expires, now + self._ttl / 2)
        if generation == self._generation:  # not a read from before a change ``forget`` was told of
            if len(self._tokens) >= MAX_CACHED and digest not in self._tokens:
                self._tokens.clear()
            self._tokens[digest] = entry
        return entry

    def _read_done(self, task: asyncio.Task[_Entry]) -> None:
        if not task.cancelled() and (err := task.exception()) is not None:
            # The callers waiting for it get the error; a background refresh has none, and the
            # cached principal serves until its deadline (then a caller's read tries again).
            log.warning("could not read an API token's principal", exc_info=err)

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
            models = await self._store.assignments.models_for_user(user.id)
        return Principal(
            user_id=user.id,
            email=user.email,
            role=user.role,
            permissions=effective_permissions(user.role, grants),
            models=models,
            token_id=token.id if token is not None else None,
            token_models=frozenset(token.models) if token is not None and token.models is not None else None,
            public=self._catalog.public_names(),
            groups=user.groups,
        )

    def forget(self, user_id: int | None = None) -> None:
        """Drop cached principals after a change in this worker (others catch up within the TTL)."""
        self._generation += 1
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
