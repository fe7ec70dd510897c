"""The rules a gateway enforces, compiled and held in memory: the stage walks a tuple, never reads
the database. ``load`` reads the database's rules (at start, every ``rules.cache_ttl`` seconds, and
at once after a change through this gateway's API), adds the config file's, and publishes the
set in one assignment; rows that did not change since the last load are not compiled again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from pydantic import ValidationError

from waypost.core.errors import GatewayError
from waypost.pipeline.rules.compile import CompiledRule, compile_rule, ordered
from waypost.pipeline.rules.quota import Quotas, QuotaSpec
from waypost.routing.registry import ModelRegistry
from waypost.settings import RuleSpec, RulesSettings
from waypost.state.counters import Counters
from waypost.store import Store
from waypost.store.rules import RuleRecord

log = logging.getLogger("waypost.rules")

Resolve = Callable[[str], str | None]


class RuleSet:
    """Rules in the order they are evaluated, and the quota counters they read."""

    __slots__ = ("active", "all", "quotas")

    def __init__(
        self, rules: Iterable[CompiledRule], counters: Counters, expiries: dict[str, int] | None = None
    ) -> None:
        self.all = ordered(list(rules))
        self.active = tuple(r for r in self.all if r.mode != "off")
        specs: set[QuotaSpec] = set()
        for rule in self.active:
            specs |= rule.quotas
        self.quotas = Quotas(counters, specs, expiries) if specs else None

    def find(self, name: str) -> CompiledRule | None:
        return next((r for r in self.all if r.name == name), None)


class RuleBook:
    def __init__(self, store: Store, settings: RulesSettings, counters: Counters) -> None:
        self.store = store
        self.settings = settings
        self.counters = counters
        self.configured = [compile_rule(spec, "config") for spec in settings.rules]
        self._expiries: dict[str, int] = {}  # quota counters in memory, kept across reloads
        self.current = RuleSet(self.configured, counters, self._expiries)
        self.errors: dict[str, str] = {}  # database rules that could not be compiled: why
        self._compiled: dict[int, tuple[datetime, CompiledRule]] = {}
        self._lock = asyncio.Lock()

    @property
    def active(self) -> tuple[CompiledRule, ...]:
        return self.current.active

    def unknown_targets(self, registry: ModelRegistry) -> list[str]:
        """The config file's rules that reroute to a model the gateway does not have, each as a
        line naming the rule and the model (refused at load, not with a 404 on every request)."""
        problems = []
        for rule in self.configured:
            target = getattr(rule.action, "model", None)
            if rule.action.type != "reroute" or not target:
                continue
            try:
                registry.resolve(target)
            except GatewayError:
                problems.append(
                    f"rules: rule {rule.name!r} reroutes to model {target!r}, which does not exist"
                )
        return problems

    def is_configured(self, name: str) -> bool:
        return any(r.name == name for r in self.configured)

    async def load(self) -> None:
        """Read the database's rules and publish them with the config file's."""
        async with self._lock:
            records = await self.store.rules.list()
            self._publish(records)

    def _publish(self, records: list[RuleRecord]) -> None:
        configured = {r.name for r in self.configured}
        compiled: dict[int, tuple[datetime, CompiledRule]] = {}
        errors: dict[str, str] = {}
        rules = list(self.configured)
        for record in records:
            known = self._compiled.get(record.id)
            if known is not None and known[0] == record.updated_at:
                rule = known[1]
            else:
                try:
                    rule = compile_record(record)
                except ValueError as exc:
                    errors[record.name] = str(exc)
                    if record.name not in self.errors:
                        log.error("rule %r in the database is not valid and is ignored: %s", record.name, exc)
                    continue
            compiled[record.id] = (record.updated_at, rule)
            if record.name in configured:
                errors[record.name] = "a rule of the config file has this name; the config file's applies"
                continue
            rules.append(rule)
        self._compiled, self.errors = compiled, errors
        if self._changed(rules):
            self.current = RuleSet(rules, self.counters, self._expiries)

    def _changed(self, rules: list[CompiledRule]) -> bool:
        before = {id(r) for r in self.current.all}
        return len(before) != len(rules) or any(id(r) not in before for r in rules)

    async def run_refresher(self) -> None:
        """Reload every ``cache_ttl`` seconds (rules changed through another worker)."""
        while True:
            await asyncio.sleep(self.settings.cache_ttl)
            try:
                await self.load()
            except Exception as exc:
                log.warning("rules not refreshed: %s: %s", type(exc).__name__, exc)

    async def close(self) -> None:
        await self.counters.close()


def compile_record(record: RuleRecord) -> CompiledRule:
    """A database row compiled; ``ValueError`` naming what is wrong with a row written by hand."""
    try:
        spec = RuleSpec.model_validate(record.spec())
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None
    return compile_rule(spec, "database", record.id)


def describe(exc: ValidationError) -> str:
    """A validation error as one line per problem, each naming its field."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)
