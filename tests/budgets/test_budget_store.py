"""Budgets in the database, and the spend the audit log recorded for each kind of budget (what
a restarted gateway reloads into its counters)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.usage_rows import insert, request_row
from waypost.core.errors import Conflict
from waypost.store import Store

DAY = datetime(2026, 3, 2, tzinfo=UTC)
NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)
EVENING = datetime(2026, 3, 2, 20, tzinfo=UTC)
DAY_BEFORE = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def seed_log(store: Store) -> None:
    await insert(
        store,
        [
            request_row(
                created_at=NOON, user_id=1, token_id=7, cost_micros=1000, input_tokens=10, output_tokens=5
            ),
            request_row(
                created_at=EVENING, user_id=2, groups=["team-a"], tags=["x"], model="big", cost_micros=300
            ),
            request_row(
                created_at=EVENING, user_id=1, requested_model="alias", model="small", cost_micros=20
            ),
            request_row(created_at=DAY_BEFORE, user_id=1, cost_micros=5000),
        ],
    )


async def test_a_budget_is_created_found_changed_and_deleted(store: Store) -> None:
    budget = await store.budgets.create(
        name="alice", scope="user", target="1", limit_micros=50_000_000, limit_tokens=None, period="monthly"
    )
    assert (await store.budgets.by_name("alice")) == budget == (await store.budgets.get(budget.id))
    assert budget.generation == 0

    changed = await store.budgets.update(budget.id, {"limit_micros": 60_000_000})
    recounted = await store.budgets.update(budget.id, {"period": "weekly"}, recount=True)

    assert (changed.limit_micros, changed.generation) == (60_000_000, 0)
    assert (recounted.period, recounted.generation) == ("weekly", 1)
    assert await store.budgets.delete(budget.id) and await store.budgets.get(budget.id) is None


async def test_budget_names_are_unique(store: Store) -> None:
    await store.budgets.create(
        name="b", scope="global", target=None, limit_micros=1, limit_tokens=None, period="total"
    )

    with pytest.raises(Conflict, match="'b' already exists"):
        await store.budgets.create(
            name="b", scope="global", target=None, limit_micros=1, limit_tokens=None, period="total"
        )


async def test_a_reset_starts_a_new_count_from_now_or_from_the_recorded_usage(store: Store) -> None:
    budget = await store.budgets.create(
        name="b", scope="global", target=None, limit_micros=1, limit_tokens=None, period="daily"
    )

    kept = await store.budgets.reset(budget.id, keep_usage=True)
    zeroed = await store.budgets.reset(budget.id, keep_usage=False)

    assert (kept.generation, kept.counted_from) == (1, None)
    assert zeroed.generation == 2 and zeroed.counted_from is not None


@pytest.mark.parametrize(
    ("scope", "match", "micros", "tokens"),
    [
        ("global", None, 1320, 15 + 2 * 120),
        ("user", 1, 1020, 15 + 120),
        ("token", 7, 1000, 15),
        ("group", "team-a", 300, 120),
        ("tag", "x", 300, 120),
        ("model", "big", 300, 120),
        ("model", "alias", 20, 120),  # the name asked for counts, as the model that served does
    ],
)
async def test_the_recorded_spend_of_each_kind_of_budget(
    store: Store, scope: str, match: str | int | None, micros: int, tokens: int
) -> None:
    await seed_log(store)

    spend = await store.budgets.recorded_spend(scope, match, {5: (DAY, None)})

    assert spend == {5: (micros, tokens)}


async def test_recorded_spend_is_summed_per_range(store: Store) -> None:
    await seed_log(store)

    spend = await store.budgets.recorded_spend(
        "user", 1, {1: (DAY_BEFORE, DAY), 2: (DAY, EVENING), 3: (EVENING, None)}
    )

    assert spend == {1: (5000, 120), 2: (1000, 15), 3: (20, 120)}
