"""Which deployment of a model a request tries first (docs/configuration.md, "Deployments").

A chain from the registry lists each model's usable deployments together, then its fallbacks'.
``order`` takes out the deployments that are out of rotation (ejected, cooling down) and orders
each model's remaining ones by its ``strategy``:

- ``weighted``: smooth weighted round robin (nginx's): over any run of requests each deployment
  is first in proportion to its weight, interleaved, the same in every run; the rest follow by
  weight.
- ``least-busy``: fewest attempts in flight in this process first (ties: configured order).
- ``lowest-latency``: lowest moving average of this process's recent successful attempts first
  (time to the answer, or to a stream's first events); a deployment not yet measured goes first,
  so each is measured; one whose last attempt failed goes last (else, never measured, it would
  stay first).
- ``ordered``: configured order; the next ones are spares.

When every deployment of the whole chain is out, the chain is tried as it is: an answer from a
deployment that may have recovered beats an error made up here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import groupby

from waypost.providers.base import Deployment

LATENCY_WEIGHT = 0.3  # of each new sample in the moving average


class Balancer:
    """Per-process bookkeeping of the strategies: attempts in flight, latencies, rotation."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.latency: dict[str, float] = {}  # seconds, moving average
        self.failing: set[str] = set()  # lowest-latency: those whose last attempt failed
        self._credit: dict[str, dict[str, float]] = {}  # weighted: per model, per deployment

    def order(self, chain: Sequence[Deployment], is_out: Callable[[Deployment], bool]) -> list[Deployment]:
        """``chain`` without the deployments out of rotation, each model's ordered by its strategy."""
        if all(d.pool == 1 for d in chain):
            healthy = [d for d in chain if not is_out(d)]
            return healthy or list(chain)
        out: list[Deployment] = []
        for _model, group in groupby(chain, key=lambda d: d.name):
            deps = [d for d in group if not is_out(d)]
            out.extend(self._by_strategy(deps) if len(deps) > 1 else deps)
        if out:
            return out
        return [d for _m, g in groupby(chain, key=lambda d: d.name) for d in self._by_strategy(list(g))]

    def _by_strategy(self, deps: list[Deployment]) -> list[Deployment]:
        strategy = deps[0].settings.strategy
        if strategy == "least-busy":
            return sorted(deps, key=lambda d: self.in_flight.get(d.key, 0))
        if strategy == "lowest-latency":
            failing = self.failing
            return sorted(deps, key=lambda d: (d.key in failing, self.latency.get(d.key, -1.0)))
        if strategy == "weighted":
            return self._weighted(deps)
        return deps

    def _weighted(self, deps: list[Deployment]) -> list[Deployment]:
        credit = self._credit.setdefault(deps[0].name, {})
        total = 0
        for d in deps:
            credit[d.key] = credit.get(d.key, 0.0) + d.weight
            total += d.weight
        first = max(deps, key=lambda d: credit[d.key])  # ties: the first listed
        credit[first.key] -= total
        rest = sorted((d for d in deps if d is not first), key=lambda d: -d.weight)
        return [first, *rest]

    def started(self, dep: Deployment) -> None:
        if dep.pool == 1:
            return  # nothing to choose between: nothing to keep
        self.in_flight[dep.key] = self.in_flight.get(dep.key, 0) + 1

    def ended(self, dep: Deployment, seconds: float | None, failed: bool = False) -> None:
        """An attempt ended: ``seconds`` it took when it succeeded (None otherwise), ``failed``
        when the deployment failed it (not when the caller went away or the request was invalid)."""
        if dep.pool == 1:
            return
        if failed:
            self.failing.add(dep.key)
        elif seconds is not None and self.failing:
            self.failing.discard(dep.key)
        left = self.in_flight.get(dep.key, 1) - 1
        if left:
            self.in_flight[dep.key] = left
        else:
            self.in_flight.pop(dep.key, None)
        if seconds is not None:
            before = self.latency.get(dep.key)
            self.latency[dep.key] = (
                seconds if before is None else before + LATENCY_WEIGHT * (seconds - before)
            )
