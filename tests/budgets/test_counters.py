"""The state backends' budget counters, memory and Redis alike: one atomic reservation over
several counters, settlement, windows, expiry of abandoned holds, seeding."""

from __future__ import annotations

import asyncio

from waypost.state.counters import NO_BUCKET, Counters, Line, Tally, Window

NOW = 1_800_000_000.0
TTL = 60.0


def window(key: str = "budget:1:0", bucket: int = 10, first: int = 10) -> Window:
    return Window(key, bucket, first)


def line(
    micros: int,
    tokens: int = 0,
    *,
    limit: int | None = 100,
    tokens_limit: int | None = None,
    w: Window | None = None,
) -> Line:
    return Line(w or window(), micros, tokens, limit, tokens_limit)


async def test_a_reservation_within_the_limit_is_held(counters: Counters) -> None:
    assert await counters.reserve("r1", [line(60)], now=NOW, ttl=TTL) is None

    assert await counters.tally([window()], now=NOW) == [Tally(0, 0, 60, 0, NO_BUCKET)]


async def test_a_reservation_past_the_limit_is_refused_with_how_the_counter_stood(counters: Counters) -> None:
    await counters.reserve("r1", [line(60)], now=NOW, ttl=TTL)

    refused = await counters.reserve("r2", [line(41)], now=NOW, ttl=TTL)

    assert refused is not None and refused.index == 0
    assert refused.tally == Tally(0, 0, 60, 0, NO_BUCKET)
    assert await counters.reserve("r3", [line(40)], now=NOW, ttl=TTL) is None  # exactly to the limit


async def test_a_reservation_over_several_counters_is_all_or_nothing(counters: Counters) -> None:
    user, team = window("budget:1:0"), window("budget:2:0")
    await counters.reserve("r1", [line(90, w=team)], now=NOW, ttl=TTL)

    refused = await counters.reserve("r2", [line(20, w=user), line(20, w=team)], now=NOW, ttl=TTL)

    assert refused is not None and refused.index == 1
    assert [t.held_micros for t in await counters.tally([user, team], now=NOW)] == [0, 90]


async def test_a_token_limit_is_checked_as_well(counters: Counters) -> None:
    assert (
        await counters.reserve("r1", [line(1, 900, limit=None, tokens_limit=1000)], now=NOW, ttl=TTL) is None
    )

    refused = await counters.reserve("r2", [line(1, 101, limit=None, tokens_limit=1000)], now=NOW, ttl=TTL)

    assert refused is not None and refused.tally.held_tokens == 900


async def test_settling_releases_the_hold_and_adds_what_was_spent(counters: Counters) -> None:
    await counters.reserve("r1", [line(60, 600)], now=NOW, ttl=TTL)

    before = await counters.settle("r1", [line(25, 250)], now=NOW)

    assert before == [Tally(0, 0, 0, 0, NO_BUCKET)]
    assert await counters.tally([window()], now=NOW) == [Tally(25, 250, 0, 0, 10)]
    assert await counters.reserve("r2", [line(75)], now=NOW, ttl=TTL) is None
    assert await counters.reserve("r3", [line(1)], now=NOW, ttl=TTL) is not None


async def test_holding_more_under_the_same_id_adds_to_its_hold(counters: Counters) -> None:
    await counters.reserve("r1", [line(30)], now=NOW, ttl=TTL)
    await counters.reserve("r1", [line(30)], now=NOW, ttl=TTL)

    await counters.settle("r1", [line(10)], now=NOW)

    assert await counters.tally([window()], now=NOW) == [Tally(10, 0, 0, 0, 10)]


async def test_an_unchecked_hold_may_pass_the_limit(counters: Counters) -> None:
    await counters.reserve("r1", [line(90)], now=NOW, ttl=TTL)

    assert await counters.reserve("r1", [line(50)], now=NOW, ttl=TTL, strict=False) is None

    assert (await counters.tally([window()], now=NOW))[0].held_micros == 140


async def test_spend_outside_the_window_no_longer_counts(counters: Counters) -> None:
    await counters.settle("r1", [line(70, w=window(bucket=10, first=8))], now=NOW)
    await counters.settle("r2", [line(20, w=window(bucket=11, first=9))], now=NOW)

    assert (await counters.tally([window(bucket=12, first=10)], now=NOW))[0].spent_micros == 90
    assert await counters.tally([window(bucket=12, first=11)], now=NOW) == [Tally(20, 0, 0, 0, 11)]
    assert await counters.reserve("r3", [line(80, w=window(bucket=12, first=11))], now=NOW, ttl=TTL) is None


async def test_an_abandoned_hold_is_dropped_after_its_time_to_live(counters: Counters) -> None:
    await counters.reserve("dead", [line(100)], now=NOW, ttl=TTL)
    assert await counters.reserve("r2", [line(1)], now=NOW + TTL - 1, ttl=TTL) is not None

    assert await counters.reserve("r3", [line(100)], now=NOW + TTL + 1, ttl=TTL) is None


async def test_settling_an_expired_hold_still_counts_the_spend(counters: Counters) -> None:
    await counters.reserve("slow", [line(50)], now=NOW, ttl=TTL)

    await counters.settle("slow", [line(30)], now=NOW + TTL + 1)

    assert await counters.tally([window()], now=NOW + TTL + 1) == [Tally(30, 0, 0, 0, 10)]


async def test_a_counter_is_seeded_once_and_starts_when_first_met(counters: Counters) -> None:
    w = window()
    [start] = await counters.start([w], now=NOW)
    assert (start.since, start.seeded) == (NOW, False)

    assert await counters.seed(w, {10: (40, 400), 9: (5, 5)}) is True
    assert await counters.seed(w, {10: (40, 400)}) is False

    [again] = await counters.start([w], now=NOW + 5)
    assert (again.since, again.seeded) == (NOW, True)
    assert await counters.tally([w], now=NOW) == [Tally(40, 400, 0, 0, 10)]


async def test_a_dropped_counter_starts_empty(counters: Counters) -> None:
    await counters.settle("r1", [line(70)], now=NOW)

    await counters.drop([window().key])

    assert await counters.tally([window()], now=NOW) == [Tally()]


async def test_concurrent_reservations_never_hold_more_than_the_limit(counters: Counters) -> None:
    results = await asyncio.gather(
        *(counters.reserve(f"r{i}", [line(7, limit=100)], now=NOW, ttl=TTL) for i in range(50))
    )

    assert sum(r is None for r in results) == 14  # 14 * 7 = 98; a 15th would make 105
    assert (await counters.tally([window()], now=NOW))[0].held_micros == 98


async def test_more_reservations_at_once_than_the_redis_pool_has_connections_all_get_an_answer(
    counters: Counters,
) -> None:
    """300 at once against a pool of 64: each waits for a connection instead of failing
    (redis-py's default pool raises past its cap, which served such requests unbudgeted)."""
    results = await asyncio.gather(
        *(counters.reserve(f"r{i}", [line(1, limit=250)], now=NOW, ttl=TTL) for i in range(300))
    )

    assert sum(r is None for r in results) == 250
    assert all(r is None or r.index == 0 for r in results)


async def test_settled_holds_do_not_pile_up_in_memory() -> None:
    """Settled reservations leave nothing behind that grows with the request rate: the expiry heap
    stays in proportion to the holds in flight, however long ``reservation_ttl`` is."""
    from waypost.state.counters import Line, Window
    from waypost.state.memory import COMPACT_AFTER, MemoryCounters

    counters = MemoryCounters()
    window = Window("budget:1", 0, 0, None)
    for i in range(20_000):
        rid = f"r{i}"
        assert await counters.reserve(rid, [Line(window, 10, 1, 10**12, None)], now=1.0, ttl=3600) is None
        await counters.settle(rid, [Line(window, 5, 1, 10**12, None)], now=1.0)
    [counter] = counters._counters.values()
    assert not counter.holds
    assert len(counter.expiries) <= COMPACT_AFTER + 1
    [tally] = await counters.tally([window], now=1.0)
    assert tally.spent_micros == 100_000 and tally.held_micros == 0
