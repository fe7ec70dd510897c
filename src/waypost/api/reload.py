"""Reload on SIGHUP: the config file is read and validated again; when it is valid, what can change
while serving is swapped in, and a setting that changed but needs a restart is named in the log
(its running value stays). A file that is not valid is refused with one log line naming the problem,
and the running configuration stays whole.

What reloads (docs/operations.md, "Reload"): ``models``, ``limits``, ``routing``,
``logging.level`` and ``logging.access_log``, the config file's ``rules.rules`` and
``rate_limits.limits``. The database's
models, rules, limits, budgets and tokens are reloaded on their own already (every ``cache_ttl``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from waypost.api.state import Container
from waypost.pipeline.bounds import RequestBounds
from waypost.pipeline.rules import RuleBook
from waypost.routing.registry import ModelRegistry
from waypost.security.urlguard import OutboundPolicy
from waypost.settings import ConfigError, Settings, load_settings

log = logging.getLogger("waypost.reload")

# What a reload swaps in: whole sections, and single keys of others.
RELOADED_SECTIONS = ("models", "limits", "routing")
RELOADED_KEYS = (
    ("logging", "level"),
    ("logging", "access_log"),
    ("rules", "rules"),
    ("rate_limits", "limits"),
)
# The checks of the settings a start makes beyond validation (app.check_config_urls).
Check = Callable[[Settings, OutboundPolicy], None]


class Reloader:
    """Reloads one app's container from ``path`` (None: the defaults and the environment),
    refusing what ``check`` refuses as a start would."""

    def __init__(self, container: Container, path: str | Path | None, check: Check) -> None:
        self.container = container
        self.path = path
        self.check = check
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Future[bool] | None = None

    def install(self) -> None:
        """Reload on SIGHUP (from the lifespan, on the main thread's loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGHUP, self._signalled)

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGHUP)
            self._loop = None

    def _signalled(self) -> None:
        self._task = asyncio.ensure_future(self.reload())  # kept: a task only referenced weakly may vanish

    async def reload(self) -> bool:
        """Read, check and swap in; whether the file was taken."""
        async with self._lock:
            try:
                new = await asyncio.to_thread(read_checked, self.path, self.container, self.check)
            except ConfigError as exc:
                log.error(
                    "reload refused, the running configuration stays: %s", "; ".join(str(exc).splitlines())
                )
                return False
            try:
                await self._swap(new)
            except Exception:  # a bug, not the file: said, and the next SIGHUP tries again
                log.exception("reload failed while swapping in %s", self.path or "the settings")
                return False
            return True

    async def _swap(self, new: Settings) -> None:
        container = self.container
        old = container.settings
        merged = merged_settings(old, new)
        restart = needs_restart(old, new)
        # The file's models with the database's, first: the registry is swapped in at the end of
        # this await, and everything below is swapped in the same step (no await in between), so
        # no request sees the new bounds or routing with the old models. When the database does
        # not answer, the catalog's refresh builds the registry with the new models once it does.
        await _quietly(container.catalog.use_settings(merged), "models")
        container.settings = merged
        level = merged.logging.level
        for name in ("waypost", "uvicorn.error"):  # as at start (observability/logging.py)
            logging.getLogger(name).setLevel(level.upper())
        container.access_log.enabled = merged.logging.access_log and level in ("debug", "info")
        router = container.router
        router.bounds = RequestBounds.from_settings(merged)
        # ``routing``: ejection and the retry budget are read from these on every failure.
        router.health.settings = merged.routing.ejection
        router.retry_budget.settings = merged.routing.retry_budget
        rules = container.rules
        rules.settings = merged.rules
        rules.configured = RuleBook(container.store, merged.rules, rules.counters).configured
        if container.rate_limits is not None:
            container.rate_limits.settings = merged.rate_limits
        await _quietly(rules.load(), "rules")
        if container.rate_limits is not None:
            await _quietly(container.rate_limits.load(), "rate limits")
        log.info(
            "reloaded %s: %d model(s)%s",
            self.path or "the defaults and the environment",
            len(merged.models),
            f"; changed but kept until a restart: {', '.join(restart)}" if restart else "",
        )


async def _quietly(load: Awaitable[object], what: str) -> None:
    """The database part of a reload: when the database does not answer, its refresh loop
    loads it later (as at start)."""
    try:
        await load
    except Exception as exc:
        log.error(
            "%s not reloaded from the database (%s: %s); retried by the refresh",
            what,
            type(exc).__name__,
            exc,
        )


def read_checked(path: str | Path | None, container: Container, check: Check) -> Settings:
    """The settings of ``path``, checked as a start would check them (``ConfigError``)."""
    new = load_settings(path)
    check(new, container.policy)
    merged = merged_settings(container.settings, new)
    registry = ModelRegistry(merged.models, prices=container.prices.prices_of)
    problems = RuleBook(container.store, merged.rules, container.rules.counters).unknown_targets(registry)
    if problems:
        raise ConfigError("\n".join(problems))
    return new


def merged_settings(old: Settings, new: Settings) -> Settings:
    """``old`` with what reloads taken from ``new``."""
    update: dict[str, Any] = {name: getattr(new, name) for name in RELOADED_SECTIONS}
    for section, key in RELOADED_KEYS:
        current = update.get(section, getattr(old, section))
        update[section] = current.model_copy(update={key: getattr(getattr(new, section), key)})
    return old.model_copy(update=update)


def needs_restart(old: Settings, new: Settings) -> list[str]:
    """The keys that differ between ``old`` and ``new`` and are not reloaded."""
    before, after = old.model_dump(by_alias=True), new.model_dump(by_alias=True)  # the file's names
    changed: list[str] = []
    for section in sorted(set(before) | set(after)):
        if section in RELOADED_SECTIONS:
            continue
        was, now = before.get(section), after.get(section)
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            keys = sorted(set(was) | set(now))
            changed += [
                f"{section}.{key}"
                for key in keys
                if was.get(key) != now.get(key) and (section, key) not in RELOADED_KEYS
            ]
        elif was != now:
            changed.append(section)
    return changed
