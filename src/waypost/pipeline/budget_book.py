"""The budgets a gateway enforces, held in memory and refreshed in the background: the budget
stage finds the ones that apply to a request with dictionary lookups, never a database read.

``load`` reads the definitions (at start, every ``budgets.refresh_interval`` seconds, and at once
after a change through this gateway's API). A counter met for the first time, in this process or
after Redis lost it, is seeded from the audit log: the spend recorded in its window before the
moment it started counting live, so a restart neither forgets the period's spend nor counts a
request twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from waypost.pipeline.budget_periods import Span, period_words, span
from waypost.security.principal import Principal
from waypost.settings import BudgetSettings
from waypost.state.counters import Counters, Line, Tally, Window
from waypost.store import Store
from waypost.store.budgets import BudgetRecord

log = logging.getLogger("waypost.budgets")

MICROS_PER_USD = 1_000_000


@dataclass(slots=True, eq=False)
class LiveBudget:
    """A budget as the stage uses it: its definition, resolved once."""

    record: BudgetRecord
    match: str | int | None  # what requests carry: a user/token id, a group name, a model, a tag
    label: str  # e.g. "user alice@example.com"
    tz: ZoneInfo
    status: int  # 429 or 402
    fallback: str | None
    cut_off: bool
    thresholds: tuple[int, ...]
    webhook: str | None
    key: str
    _span: Span | None = field(default=None, repr=False)
    _window: Window | None = field(default=None, repr=False)  # of ``_span``

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    def span(self, now: float) -> Span:
        current = self._span
        if current is None or now >= current.valid_until:
            rec = self.record
            current = self._span = span(rec.period, rec.rolling, self.tz, now)
            self._window = Window(self.key, current.bucket, current.first, current.expires_at)
        return current

    def window(self, now: float) -> Window:
        """The counter's window at ``now``: one object for as long as its span holds (``span``
        makes it with each new span)."""
        self.span(now)
        assert self._window is not None
        return self._window

    def line(self, now: float, micros: int, tokens: int) -> Line:
        current = self._span
        if current is None or now >= current.valid_until:
            self.span(now)  # a new span: its window with it
        rec = self.record
        assert self._window is not None
        return Line(self._window, micros, tokens, rec.limit_micros, rec.limit_tokens)

    def describe(self) -> str:
        """``'team-a' (group team-a, $50.00 per month)``."""
        rec = self.record
        limits = []
        if rec.limit_micros is not None:
            limits.append(usd_text(rec.limit_micros))
        if rec.limit_tokens is not None:
            limits.append(f"{rec.limit_tokens:,} tokens")
        return f"{rec.name!r} ({self.label}, {' and '.join(limits)} {period_words(rec.period, rec.rolling)})"


def usd_text(micros: int) -> str:
    """``$50.00``, ``$0.128``, ``$0.000042``: cents at least, every micro-dollar there is."""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    digits = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{'-' if micros < 0 else ''}${whole:,}.{digits}"


def live_budget(
    record: BudgetRecord,
    settings: BudgetSettings,
    groups: Mapping[int, str],
    users: Mapping[int, str] | None = None,
) -> LiveBudget:
    """``record`` resolved: a group's current name, the settings' defaults."""
    cfg = record.config
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
    elif scope == "global":
        match, label = None, "everyone"
    thresholds = cfg.get("alert_thresholds")
    cut_off = cfg.get("cut_off_streams")
    return LiveBudget(
        record=record,
        match=match,
        label=label,
        tz=_zone(record),
        status=int(cfg.get("status") or settings.status),
        fallback=cfg.get("fallback_model") or None,
        cut_off=settings.cut_off_streams if cut_off is None else bool(cut_off),
        thresholds=tuple(sorted(settings.alert_thresholds if thresholds is None else thresholds)),
        webhook=cfg.get("alert_webhook") or settings.alert_webhook,
        key=f"budget:{record.id}:{record.generation}",
    )


def _zone(record: BudgetRecord) -> ZoneInfo:
    try:
        return ZoneInfo(record.timezone)
    except (ValueError, ZoneInfoNotFoundError):  # the API refuses these; a row written by hand
        log.warning("budget %r: unknown time zone %r, counted in UTC", record.name, record.timezone)
        return ZoneInfo("UTC")


def view(budget: LiveBudget, tally: Tally, now: float) -> dict[str, Any]:
    """A budget and where it stands, as the API shows it (``GET /me/usage``, ``/admin/budgets``)."""
    rec = budget.record
    s = budget.span(now)
    out: dict[str, Any] = {
        "id": rec.id,
        "name": rec.name,
        "scope": rec.scope,
        "target": budget.label,
        "period": rec.period,
        "rolling": rec.rolling,
        "timezone": rec.timezone,
        "window_start": s.start,
        "resets_at": s.resets_at,
        "limit_usd": None,
        "spent_usd": tally.spent_micros / MICROS_PER_USD,
        "reserved_usd": tally.held_micros / MICROS_PER_USD,
        "remaining_usd": None,
        "limit_tokens": rec.limit_tokens,
        "spent_tokens": tally.spent_tokens,
        "reserved_tokens": tally.held_tokens,
        "remaining_tokens": None,
    }
    if rec.limit_micros is not None:
        out["limit_usd"] = rec.limit_micros / MICROS_PER_USD
        left = rec.limit_micros - tally.spent_micros - tally.held_micros
        out["remaining_usd"] = max(0, left) / MICROS_PER_USD
    if rec.limit_tokens is not None:
        out["remaining_tokens"] = max(0, rec.limit_tokens - tally.spent_tokens - tally.held_tokens)
    return out


def clipped(
    ranges: Mapping[int, tuple[datetime | None, datetime | None]],
    counted_from: datetime | None,
    since: datetime,
) -> dict[int, tuple[datetime | None, datetime | None]]:
    """The ranges cut to [counted_from, since): what the audit log has that the live counter has not."""
    out: dict[int, tuple[datetime | None, datetime | None]] = {}
    for bucket, (start, end) in ranges.items():
        if counted_from is not None and (start is None or start < counted_from):
            start = counted_from
        end = since if end is None or end > since else end
        if start is None or start < end:
            out[bucket] = (start, end)
    return out


class BudgetBook:
    def __init__(self, store: Store, counters: Counters, settings: BudgetSettings) -> None:
        self.store = store
        self.counters = counters
        self.settings = settings
        self.budgets: dict[int, LiveBudget] = {}
        self._index: dict[tuple[str, Any], list[LiveBudget]] = {}
        self.scopes: frozenset[str] = frozenset()  # the scopes that have a budget
        self._lock = asyncio.Lock()

    def __bool__(self) -> bool:
        return bool(self._index)

    def applicable(
        self, principal: Principal | None, tags: Iterable[str] = (), models: Iterable[str] = ()
    ) -> list[LiveBudget]:
        """The budgets that apply to a request by ``principal`` with ``tags``, for ``models``
        (the name asked for and the model it resolves to), each once."""
        index = self._index
        found: list[LiveBudget] = list(index.get(("global", None), ()))
        if principal is not None:
            found += index.get(("user", principal.user_id), ())
            if principal.token_id is not None:
                found += index.get(("token", principal.token_id), ())
            for group in principal.groups:
                found += index.get(("group", group), ())
        for tag in tags:
            found += index.get(("tag", tag), ())
        for name in models:
            found += index.get(("model", name), ())
        if len(found) < 2:
            return found
        return list({b.id: b for b in found}.values())

    async def load(self) -> None:
        """Read the budgets, seed counters met for the first time, then publish them."""
        async with self._lock:
            records = await self.store.budgets.list()
            groups: dict[int, str] = {}
            if any(r.scope == "group" for r in records):
                groups = {g.id: g.name for g in await self.store.groups.list()}
            live = [live_budget(r, self.settings, groups) for r in records]
            await self._seed(live)
            index: dict[tuple[str, Any], list[LiveBudget]] = {}
            for budget in live:
                index.setdefault((budget.record.scope, budget.match), []).append(budget)
            gone = {b.key for b in self.budgets.values()} - {b.key for b in live}
            self._index = index
            self.budgets = {b.id: b for b in live}
            self.scopes = frozenset(scope for scope, _ in index)
            if gone:
                await self.counters.drop(sorted(gone))

    async def _seed(self, budgets: Sequence[LiveBudget]) -> None:
        if not budgets:
            return
        now = time.time()
        starts = await self.counters.start([b.window(now) for b in budgets], now=now)
        for budget, start in zip(budgets, starts, strict=True):
            if start.seeded:
                continue
            rec = budget.record
            since = datetime.fromtimestamp(start.since, UTC)
            ranges = clipped(budget.span(now).ranges(), rec.counted_from, since)
            spend = await self.store.budgets.recorded_spend(rec.scope, budget.match, ranges) if ranges else {}
            if await self.counters.seed(budget.window(now), spend):
                total = sum(m for m, _ in spend.values())
                log.info(
                    "budget %r: %s recorded in its window reloaded from the audit log",
                    rec.name,
                    usd_text(total),
                    extra={"budget": rec.name, "budget_id": rec.id},
                )

    async def run_refresher(self) -> None:
        """Reload every ``refresh_interval`` seconds (budgets changed through another worker)."""
        while True:
            await asyncio.sleep(self.settings.refresh_interval)
            try:
                await self.load()
            except Exception as exc:
                log.warning("budgets not refreshed: %s: %s", type(exc).__name__, exc)

    async def tallies(self, budgets: Sequence[LiveBudget], now: float) -> list[Tally]:
        return await self.counters.tally([b.window(now) for b in budgets], now=now)

    async def remaining(self, principal: Principal) -> list[dict[str, Any]]:
        """The budgets on ``principal`` (its user, its groups, the calling token, everyone) and
        what remains of each: for ``GET /me/usage``."""
        budgets = self.applicable(principal)
        if not budgets:
            return []
        now = time.time()
        tallies = await self.tallies(budgets, now)
        return [view(b, t, now) for b, t in zip(budgets, tallies, strict=True)]
