"""Deployment health: outlier ejection and 429 cool-downs (docs/operations.md, "Deployment health").

A deployment failing ``consecutive_failures`` times in a row (connect errors, timeouts, 5xx) is
ejected through the state store, which refuses when its model already has its share of
deployments out; a 429 with ``Retry-After`` cools it down that long. Failures are counted in each
process (any success resets them); outages are shared through the store. The router asks
``is_out`` on every request: that reads a local snapshot, refreshed from the store every
``refresh_seconds`` by ``run_refresher`` and updated at once by this process's own decisions, so
no request waits for Redis. Only a failure writes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from waypost.core.errors import GatewayError, UpstreamError, UpstreamTimeout
from waypost.providers.base import Deployment
from waypost.settings import EjectionSettings, Settings
from waypost.state.health import HealthStore, MemoryHealthStore, Outage, build_health_store

log = logging.getLogger("waypost.health")
STORE_DOWN_SECONDS = 5.0  # after the shared store failed, it is skipped this long

State = Literal["healthy", "cooling_down", "ejected", "missing_credentials"]


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """One deployment as /health and the metrics show it."""

    model: str
    deployment: str  # its label ("" for a model of one deployment)
    provider: str
    state: State
    until: float | None = None  # wall-clock seconds it is back, when out
    ejections: int = 0
    reason: str | None = None  # why credentials are missing
    region: str | None = None


def is_outlier_failure(err: GatewayError) -> bool:
    """What counts towards an ejection: the deployment's own trouble (5xx, connect errors,
    timeouts), not a refused request nor a rate limit."""
    if err.upstream_status is not None:
        return err.upstream_status >= 500 or err.upstream_status == 408
    return isinstance(err, (UpstreamError, UpstreamTimeout))


class DeploymentHealth:
    def __init__(
        self,
        settings: EjectionSettings,
        store: HealthStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock
        self._failures: dict[str, int] = {}  # consecutive failures seen by this process
        self._out: dict[str, Outage] = {}  # the snapshot requests read
        # Outages decided while the store did not answer: kept here until it does again.
        self._local = MemoryHealthStore()
        # After the shared store failed, it is skipped until then (monotonic seconds): a request
        # whose attempt failed must not also wait for a Redis that does not answer.
        self._down_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DeploymentHealth:
        """In memory, or in Redis with ``state.backend: redis`` (shared by workers and replicas)."""
        return cls(settings.routing.ejection, build_health_store(settings.state))

    def now(self) -> float:
        """Wall-clock seconds, as outages are stamped (the clock given, for tests)."""
        return self._clock()

    def outage(self, dep: Deployment, now: float) -> Outage | None:
        """The deployment's current outage, or None when it is in rotation."""
        found = self._out.get(dep.key)
        return found if found is not None and found.until > now else None

    def is_out(self, dep: Deployment, now: float) -> bool:
        found = self._out.get(dep.key)
        return found is not None and found.until > now

    def succeeded(self, dep: Deployment) -> None:
        if self._failures:
            self._failures.pop(dep.key, None)

    async def failed(self, dep: Deployment, err: GatewayError) -> bool:
        """Count a failed attempt; True when the deployment is now out of rotation."""
        now = self._clock()
        if err.upstream_status == 429 and err.retry_after is not None:
            seconds = min(err.retry_after, self.settings.max_cooldown_seconds)
            if seconds <= 0:
                return False
            return await self._decide(dep, now, cool_until=now + seconds)
        if not self.settings.enabled or not is_outlier_failure(err):
            return False
        count = self._failures.get(dep.key, 0) + 1
        self._failures[dep.key] = count
        if count < self.settings.consecutive_failures or self.is_out(dep, now):
            return self.is_out(dep, now)
        return await self._decide(dep, now)

    async def _decide(self, dep: Deployment, now: float, cool_until: float | None = None) -> bool:
        s = self.settings
        max_out = math.floor(s.max_ejected_share * dep.pool + 1e-9)
        for store in (self.store, self._local):
            if store is self.store and time.monotonic() < self._down_until:
                continue
            try:
                if cool_until is not None:
                    outage: Outage | None = await store.cool_down(
                        dep.key, dep.name, until=cool_until, memory=s.max_seconds, now=now
                    )
                else:
                    if store is self._local:  # the ejections known from the shared store count too
                        max_out -= await self._known_elsewhere(dep, now)
                    outage = await store.eject(
                        dep.key, dep.name, max_out=max_out, base=s.base_seconds, cap=s.max_seconds, now=now
                    )
                break
            except Exception as exc:  # the shared store is down: decide in this process meanwhile
                self._shared_failed(exc)
        if outage is None:
            return False
        self._failures.pop(dep.key, None)
        if self._out.get(dep.key) != outage:
            log.warning(
                "deployment %s %s",
                dep.key,
                "ejected" if outage.kind == "ejected" else "cooling down (429 Retry-After)",
                extra={"model": dep.name, "until": outage.until, "ejections": outage.ejections},
            )
        self._out[dep.key] = outage
        return outage.until > now

    async def _known_elsewhere(self, dep: Deployment, now: float) -> int:
        """Deployments of ``dep``'s model ejected now in the snapshot (the shared store's last
        word) but not in this process's own fallback store, ``dep`` aside."""

        def ejected(o: Outage | None) -> bool:
            return o is not None and o.model == dep.name and o.kind == "ejected" and o.until > now

        local = await self._local.outages(now)  # counted by that store itself
        return sum(
            1 for key, o in self._out.items() if key != dep.key and ejected(o) and not ejected(local.get(key))
        )

    async def refresh(self) -> None:
        """Read the shared outages (and those decided here while the store was down)."""
        if not self.shared:
            return  # in memory the snapshot is all there is: this process decided all of it
        if time.monotonic() < self._down_until:
            return  # the snapshot stands (with what was decided here) until the store is tried again
        now = self._clock()
        try:
            shared = await self.store.outages(now)
        except Exception as exc:
            self._shared_failed(exc)
            raise
        fresh = {**await self._local.outages(now), **shared}
        # An outage this process decided while the read was under way may be missing from what
        # was read: kept. (An outage only ever grows until it ends, so the longer one is right.)
        for key, mine in self._out.items():
            found = fresh.get(key)
            if mine.until > now and (found is None or found.until < mine.until):
                fresh[key] = mine
        self._out = fresh

    def _shared_failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.warning(
                "deployment health store unavailable (%s: %s): deciding in this process for %gs",
                type(exc).__name__,
                exc,
                STORE_DOWN_SECONDS,
            )
        self._down_until = time.monotonic() + STORE_DOWN_SECONDS

    async def run_refresher(self) -> None:
        """The background loop of a shared store: pick up what other processes decided."""
        while True:  # read at once: a new replica starts knowing what the others ejected
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("could not read deployment health (%s: %s)", type(exc).__name__, exc)
            await asyncio.sleep(self.settings.refresh_seconds)

    @property
    def shared(self) -> bool:
        return not isinstance(self.store, MemoryHealthStore)

    def state_of(self, dep: Deployment, missing: str | None, now: float) -> DeploymentState:
        """What /health and the metrics say of ``dep`` (``missing``: why it has no credentials)."""
        where = (dep.name, dep.label, dep.provider)
        if missing is not None:
            return DeploymentState(*where, "missing_credentials", reason=missing, region=dep.region)
        outage = self.outage(dep, now)
        if outage is None:
            return DeploymentState(*where, "healthy", region=dep.region)
        return DeploymentState(*where, outage.kind, outage.until, outage.ejections, region=dep.region)

    async def close(self) -> None:
        await self.store.close()
