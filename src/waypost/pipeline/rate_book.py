"""The rate limits a gateway enforces, held in memory: those of the config file and those of the
database, reloaded every ``rate_limits.cache_ttl`` seconds (and at once after a change through
this gateway's API). The stage finds the ones that apply to a request with dictionary lookups,
never a database read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from waypost.security.principal import Principal
from waypost.settings import RateLimitDefinition, RateLimitSettings, RateLimitWindow
from waypost.state.rate import BUCKETS, NONE, Amounts, SlotLine, WindowLine
from waypost.store import Store
from waypost.store.rate_limits import RateLimitRecord

log = logging.getLogger("waypost.rate_limits")

PERIOD_WORDS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


def period_words(seconds: int) -> str:
    """``minute``, ``day``, ``90 seconds``."""
    return PERIOD_WORDS.get(seconds) or f"{seconds} seconds"


@dataclass(frozen=True, slots=True)
class LiveWindow:
    """One window of a limit, resolved once: its counter's key suffix and bucket width."""

    seconds: int
    step: float  # a bucket: a 60th of the period
    limits: Amounts  # requests, tokens, input tokens, output tokens (NONE: not limited)
    ttl: int
    source: RateLimitWindow
    suffix: str  # of its counter's key: ":<seconds>"
    keep: Amounts  # 1 where the window limits the dimension: what it counts of a request

    @property
    def counts_tokens(self) -> bool:
        return any(limit != NONE for limit in self.limits[1:])

    def bucket(self, now: float) -> int:
        return int(now // self.step)

    def line(self, key: str, now: float, amounts: Amounts) -> WindowLine:
        bucket = int(now // self.step)
        k = self.keep
        masked = (amounts[0] * k[0], amounts[1] * k[1], amounts[2] * k[2], amounts[3] * k[3])
        return WindowLine(key + self.suffix, bucket, bucket - BUCKETS + 1, self.ttl, masked, self.limits)

    def resets_at(self, newest: int) -> float:
        """When everything counted up to bucket ``newest`` has left the window."""
        return (newest + BUCKETS) * self.step

    def describe(self) -> str:
        parts = []
        for value, what in zip(
            self.limits, ("requests", "tokens", "input tokens", "output tokens"), strict=True
        ):
            if value != NONE:
                parts.append(f"{value:,} {what}")
        return f"{' and '.join(parts)} per {period_words(self.seconds)}"


def live_window(window: RateLimitWindow) -> LiveWindow:
    seconds = window.seconds
    step = seconds / BUCKETS
    values = (window.requests, window.tokens, window.input_tokens, window.output_tokens)
    limits: Amounts = (*(NONE if v is None else v for v in values),)  # type: ignore[assignment]
    keep: Amounts = (*(0 if v is None else 1 for v in values),)  # type: ignore[assignment]
    return LiveWindow(seconds, step, limits, math.ceil(seconds + step), window, f":{seconds}", keep)


@dataclass(frozen=True, slots=True, eq=False)
class LiveLimit:
    """A limit as the stage uses it: its definition, resolved once."""

    name: str
    scope: str  # token, user, group, model, default
    target: str | None  # as defined: an id, a group or model name, an e-mail (config)
    match: str | int | None  # what requests carry: a user/token id, a group name, a model name
    label: str  # e.g. "user alice@example.com"
    windows: tuple[LiveWindow, ...]
    concurrency: int | None
    description: str
    key: str  # its counters' key: "rl:<id or c:name>:<scope and target>"
    record: RateLimitRecord | None  # None: declared in the config file
    counts_tokens: bool  # a window limits tokens: requests need a token estimate

    @property
    def id(self) -> int | None:
        return self.record.id if self.record is not None else None

    def describe(self) -> str:
        """``'team-a' (group team-a: 100 requests per minute, 5 at once)``."""
        parts = [w.describe() for w in self.windows]
        if self.concurrency is not None:
            parts.append(f"{self.concurrency:,} at once")
        return f"{self.name!r} ({self.label}: {', '.join(parts)})"

    def counter_key(self, principal: Principal | None) -> str:
        """A default limit counts each user apart; the others count everyone they apply to together."""
        if self.scope != "default":
            return self.key
        return f"{self.key}:u{principal.user_id}" if principal is not None else f"{self.key}:anonymous"

    def lines(self, key: str, now: float, amounts: Amounts, slot_ttl: float) -> list[WindowLine | SlotLine]:
        out: list[WindowLine | SlotLine] = [w.line(key, now, amounts) for w in self.windows]
        if self.concurrency is not None:
            out.append(SlotLine(f"{key}:c", self.concurrency, slot_ttl))
        return out


def counter_base(ident: str, scope: str, target: str | None) -> str:
    """Counters follow a limit's identity and what it applies to: a change of its numbers keeps
    what was counted, a new target starts afresh."""
    applies = zlib.crc32(f"{scope}\0{target or ''}".encode())
    return f"rl:{ident}:{applies:08x}"


def live_limit(
    *,
    name: str,
    scope: str,
    target: str | None,
    config: Mapping[str, Any],
    match: str | int | None,
    label: str,
    ident: str,
    record: RateLimitRecord | None = None,
) -> LiveLimit:
    windows = tuple(live_window(RateLimitWindow.model_validate(w)) for w in config.get("windows") or ())
    return LiveLimit(
        name=name,
        scope=scope,
        target=target,
        match=match,
        label=label,
        windows=windows,
        concurrency=config.get("concurrency"),
        description=config.get("description") or "",
        key=counter_base(ident, scope, target),
        record=record,
        counts_tokens=any(w.counts_tokens for w in windows),
    )


def record_limit(
    record: RateLimitRecord, groups: Mapping[int, str], users: Mapping[int, str] | None = None
) -> LiveLimit:
    """A database limit resolved: a group's current name, a user's e-mail for its label."""
    scope, target = record.scope, record.target
    match: str | int | None = target
    label = f"{scope} {target}"
    if scope in ("user", "token"):
        match = int(target or 0)
        label = f"{scope} #{match}"
        if scope == "user" and users is not None and match in users:
            label = f"user {users[match]}"
    elif scope == "group":
        match = groups.get(int(target or 0))
        label = f"group {match}" if match is not None else f"group #{target} (deleted)"
    elif scope == "default":
        match, label = None, "each user"
    return live_limit(
        name=record.name,
        scope=scope,
        target=target,
        config=record.config,
        match=match,
        label=label,
        ident=str(record.id),
        record=record,
    )


async def config_limit(definition: RateLimitDefinition, store: Store, *, quiet: bool = False) -> LiveLimit:
    """A config-file limit resolved: a user named by e-mail to its id. A user that does not exist
    leaves it matching nobody (logged unless ``quiet``: enforced once the user exists)."""
    scope = definition.scope
    target = None if definition.target is None else str(definition.target).strip()
    match: str | int | None = target
    label = f"{scope} {target}"
    if scope == "user":
        assert target is not None
        user = await (store.users.get(int(target)) if target.isdigit() else store.users.by_email(target))
        if user is None:
            if not quiet:
                log.warning("rate limit %r: user %r does not exist; not enforced", definition.name, target)
            match, label = None, f"user {target} (does not exist)"
        else:
            match, label = user.id, f"user {user.email}"
    elif scope == "token":
        match, label = int(target or 0), f"token #{target}"
    elif scope == "group":
        label = f"group {target}"
    elif scope == "default":
        match, label = None, "each user"
    config = definition.model_dump(include={"windows", "concurrency", "description"})
    return live_limit(
        name=definition.name,
        scope=scope,
        target=target,
        config=config,
        match=match,
        label=label,
        ident=f"c:{definition.name}",
    )


class RateLimitBook:
    def __init__(self, store: Store, settings: RateLimitSettings) -> None:
        self.store = store
        self.settings = settings
        self.limits: dict[str, LiveLimit] = {}  # by name, config limits first
        self._index: dict[tuple[str, Any], list[LiveLimit]] = {}
        self._defaults: tuple[LiveLimit, ...] = ()
        self.scopes: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()
        self._loaded = False

    def __bool__(self) -> bool:
        return bool(self.limits)

    def applicable(self, principal: Principal | None, models: Iterable[str] = ()) -> list[LiveLimit]:
        """The limits on a request by ``principal`` for ``models`` (the name asked for and the
        model it resolves to), each once. A default applies to a user with no limit of its own."""
        index = self._index
        found: list[LiveLimit] = []
        own: list[LiveLimit] = []
        if principal is not None:
            own = index.get(("user", principal.user_id), [])
            found += own
            if principal.token_id is not None:
                found += index.get(("token", principal.token_id), ())
            for group in principal.groups:
                found += index.get(("group", group), ())
        if not own:
            found += self._defaults
        for name in models:
            found += index.get(("model", name), ())
        if len(found) < 2:
            return found
        return list({id(limit): limit for limit in found}.values())

    async def load(self) -> None:
        """Read the database's limits, resolve the config file's, then publish them."""
        async with self._lock:
            records = [r for r in await self.store.rate_limits.list() if r.config.get("enabled", True)]
            groups: dict[int, str] = {}
            if any(r.scope == "group" for r in records):
                groups = {g.id: g.name for g in await self.store.groups.list()}
            quiet = self._loaded  # a config limit's missing user is logged at the first load
            live = [await config_limit(d, self.store, quiet=quiet) for d in self.settings.limits]
            live += [record_limit(r, groups) for r in records]
            index: dict[tuple[str, Any], list[LiveLimit]] = {}
            defaults: list[LiveLimit] = []
            for limit in live:
                if limit.scope == "default":
                    defaults.append(limit)
                elif limit.match is not None:
                    index.setdefault((limit.scope, limit.match), []).append(limit)
            self._index = index
            self._defaults = tuple(defaults)
            self.limits = {limit.name: limit for limit in live}
            self.scopes = frozenset(limit.scope for limit in live)
            self._loaded = True

    async def run_refresher(self) -> None:
        """Reload every ``cache_ttl`` seconds (limits changed through another worker)."""
        while True:
            await asyncio.sleep(self.settings.cache_ttl)
            try:
                await self.load()
            except Exception as exc:
                log.warning("rate limits not refreshed: %s: %s", type(exc).__name__, exc)
