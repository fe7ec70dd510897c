"""``BudgetAlerts.check`` passes over the usual request with an integer comparison; it must alert
exactly where the percentages say a threshold was crossed, limits of every size included."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any, cast

from waypost.pipeline.budget_alerts import BudgetAlerts, percent
from waypost.pipeline.budget_book import live_budget
from waypost.settings import BudgetSettings
from waypost.state.counters import Tally
from waypost.store.budgets import BudgetRecord


class Recorded(BudgetAlerts):
    def __init__(self) -> None:
        super().__init__(cast(Any, None))
        self.sent: list[int] = []

    def alert(self, budget: Any, threshold: int, spent_micros: int, spent_tokens: int, now: float) -> None:
        self.sent.append(threshold)


def budget(limit_micros: int | None, limit_tokens: int | None, thresholds: list[int]) -> Any:
    now = datetime.now(UTC)
    record = BudgetRecord(
        1, "b", "global", None, limit_micros, limit_tokens, "monthly", False, "UTC", {}, None, now, now
    )
    return live_budget(record, BudgetSettings(alert_thresholds=thresholds), {})


def test_alerts_fire_exactly_where_the_percentages_cross_a_threshold() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        limits = [rng.choice([None, 0, 1, 7, 100, 999, 10**6, 10**15 + 3]) for _ in range(2)]
        thresholds = sorted(rng.sample([1, 2, 50, 80, 99, 100, 101, 150, 1000], rng.randint(1, 3)))
        b = budget(limits[0], limits[1], thresholds)
        scale = [limit or 100 for limit in limits]
        # Below zero too: spend recorded under its reservation can leave a tally negative.
        spent = [rng.randrange(-s, 2 * s + 2) for s in scale]
        add = [rng.randrange(0, max(2, s // 3)) for s in scale]
        alerts = Recorded()
        alerts.check(b, Tally(spent[0], spent[1], 0, 0, -1), add[0], add[1], 0.0)
        was = percent(spent[0], spent[1], b)
        now_at = percent(spent[0] + add[0], spent[1] + add[1], b)
        crossed = [t for t in thresholds if (add[0] > 0 or add[1] > 0) and was < t <= now_at]
        assert alerts.sent == crossed, (limits, thresholds, spent, add)


def test_a_zero_limit_is_left_to_the_percentages() -> None:
    """Against a zero limit any spend is 100 %, even a negative one (a refund below nothing)."""
    alerts = Recorded()
    alerts.check(budget(0, None, [50]), Tally(0, 0, 0, 0, -1), -5, 3, 0.0)
    assert alerts.sent == [50]
