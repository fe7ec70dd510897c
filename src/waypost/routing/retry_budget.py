"""The retry budget (``routing.retry_budget``): retries in flight at once in one process are at
most ``ratio`` of the requests being routed there (waiting for an upstream's answer or a stream's
first events), or ``min_retries`` when that is more. During an outage every request fails and
would retry; the budget keeps the extra load on the upstreams to that share instead of a multiple.
A request the budget refuses a retry gets the error of its last attempt.

Each process keeps its own: behind a load balancer each sees its share of the traffic, so the
fleet as a whole keeps the same ratio without sharing a counter.
"""

from __future__ import annotations

import math

from waypost.settings import RetryBudgetSettings


class RetryBudget:
    def __init__(self, settings: RetryBudgetSettings) -> None:
        self.settings = settings
        self.active = 0  # requests being routed
        self.retrying = 0  # of their attempts, the retries in flight
        self.refused = 0  # retries refused so far (logs, metrics)

    def take(self) -> bool:
        """Room for one more retry: taken (``give_back`` when it ends), or False."""
        s = self.settings
        if self.retrying >= max(s.min_retries, math.floor(s.ratio * self.active)):
            self.refused += 1
            return False
        self.retrying += 1
        return True

    def give_back(self) -> None:
        self.retrying -= 1
