"""Where deployments are out of rotation (outlier ejection, 429 cool-downs): docs/operations.md,
"Deployment health".

An ``Outage`` says until when a deployment is out and why, and how many times it has been
ejected (the next ejection lasts longer). ``eject`` is one atomic step: it takes the deployment
out unless its model already has ``max_out`` deployments ejected, so replicas ejecting at the same
moment never take out more than the share allowed. An outage is remembered for ``memory`` seconds
after it ends, so that a deployment that fails again soon is ejected for longer; then it is
forgotten and its count starts over.

``memory`` keeps them in the process; ``health_redis`` in one Redis hash, shared by every worker
and replica. Callers read a snapshot (``outages``) now and then, never per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from waypost.settings import StateSettings

OutageKind = Literal["ejected", "cooling_down"]


@dataclass(frozen=True, slots=True)
class Outage:
    model: str
    until: float  # wall-clock seconds (time.time()): replicas compare them
    kind: OutageKind
    ejections: int  # times ejected within ``memory`` seconds of each other


class HealthStore(Protocol):
    async def eject(
        self, key: str, model: str, *, max_out: int, base: float, cap: float, now: float
    ) -> Outage | None:
        """Take ``key`` out for ``base`` times its ejections (at most ``cap`` seconds), unless
        ``max_out`` deployments of ``model`` are ejected already (None). A deployment already
        ejected keeps its outage."""
        ...

    async def cool_down(self, key: str, model: str, *, until: float, memory: float, now: float) -> Outage:
        """Take ``key`` out until ``until`` (a 429's Retry-After); a longer outage stays."""
        ...

    async def outages(self, now: float) -> dict[str, Outage]:
        """Every outage still remembered, by deployment key (some may have ended)."""
        ...

    async def ping(self) -> None:
        """Raises when the store does not answer (``/health/ready`` reports it)."""
        ...

    async def close(self) -> None: ...


def next_ejection(previous: Outage | None, model: str, *, base: float, cap: float, now: float) -> Outage:
    """The outage an ejection starts: one more than the last, unless that is forgotten."""
    count = previous.ejections + 1 if previous is not None and previous.until + cap >= now else 1
    return Outage(model, now + min(base * count, cap), "ejected", count)


class MemoryHealthStore:
    """Outages in this process: for one worker, and a Redis store's fallback while Redis does not
    answer."""

    def __init__(self) -> None:
        self._outages: dict[str, Outage] = {}

    async def eject(
        self, key: str, model: str, *, max_out: int, base: float, cap: float, now: float
    ) -> Outage | None:
        mine = self._outages.get(key)
        if mine is not None and mine.kind == "ejected" and mine.until > now:
            return mine
        self._forget(cap, now)
        out = sum(
            1 for k, o in self._outages.items() if o.model == model and o.kind == "ejected" and o.until > now
        )
        if out >= max_out:
            return None
        outage = next_ejection(mine, model, base=base, cap=cap, now=now)
        self._outages[key] = outage
        return outage

    async def cool_down(self, key: str, model: str, *, until: float, memory: float, now: float) -> Outage:
        mine = self._outages.get(key)
        if mine is not None and mine.until >= until:
            return mine
        outage = Outage(model, until, "cooling_down", mine.ejections if mine is not None else 0)
        self._outages[key] = outage
        return outage

    async def outages(self, now: float) -> dict[str, Outage]:
        return dict(self._outages)

    def _forget(self, memory: float, now: float) -> None:
        for key in [k for k, o in self._outages.items() if o.until + memory < now]:
            del self._outages[key]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def build_health_store(settings: StateSettings) -> HealthStore:
    """The configured backend's store; nothing connects until the first use."""
    if settings.backend == "redis":
        from waypost.state.health_redis import RedisHealthStore

        return RedisHealthStore(
            settings.redis_url, prefix=settings.key_prefix, socket_timeout=settings.socket_timeout
        )
    return MemoryHealthStore()
