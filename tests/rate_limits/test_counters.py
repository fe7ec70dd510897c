"""The rate counters (state/rate.py, state/rate_redis.py), on both backends: every line taken or
none, a refusal consumes nothing, windows roll, reservations settle, slots come back. Times are
given (``now``), never waited for."""

from __future__ import annotations

import asyncio
import uuid

from tests.rate_limits.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from waypost.state.rate import (
    BUCKETS,
    CONCURRENCY,
    NONE,
    REQUESTS,
    TOKENS,
    Correction,
    MemoryRateCounters,
    RateCounters,
    SlotLine,
    WindowLine,
)

T0 = 1_800_000_000.0  # a minute window counts by the second: bucket = int(now)


def minute(
    key: str, now: float, amounts: tuple[int, int, int, int] = (1, 0, 0, 0), **limits: int
) -> WindowLine:
    bucket = int(now)
    values = tuple(limits.get(d, NONE) for d in ("requests", "tokens", "input_tokens", "output_tokens"))
    masked = tuple(a if v != NONE else 0 for a, v in zip(amounts, values, strict=True))
    return WindowLine(key, bucket, bucket - BUCKETS + 1, 61, masked, values)  # type: ignore[arg-type]


def rid() -> str:
    return uuid.uuid4().hex[:16]


async def test_requests_are_admitted_up_to_the_limit_and_the_refused_consume_nothing(
    counters: RateCounters,
) -> None:
    outcomes = [
        await counters.acquire(rid(), [minute("a", T0 + i / 10, requests=3)], now=T0) for i in range(5)
    ]

    assert [v.admitted for v in outcomes] == [True, True, True, False, False]
    assert [v.levels[0].used[REQUESTS] for v in outcomes] == [1, 2, 3, 3, 3]
    assert outcomes[3].refused == 0 and outcomes[3].dimension == REQUESTS
    assert outcomes[3].frees_at == int(T0)  # the first request's bucket: room when it leaves


async def test_one_step_takes_every_line_or_none(counters: RateCounters) -> None:
    roomy, tight = minute("roomy", T0, requests=10), minute("tight", T0, requests=1)
    assert (await counters.acquire(rid(), [roomy, tight], now=T0)).admitted

    refused = await counters.acquire(rid(), [roomy, tight], now=T0)

    assert (refused.refused, refused.dimension) == (1, REQUESTS)
    [roomy_level, tight_level] = await counters.peek([roomy, tight], now=T0)
    assert roomy_level.used[REQUESTS] == 1  # the refused request took nothing from the roomy line
    assert tight_level.used[REQUESTS] == 1


async def test_a_window_rolls_a_bucket_at_a_time(counters: RateCounters) -> None:
    for offset in (0, 10, 20):
        assert (
            await counters.acquire(rid(), [minute("w", T0 + offset, requests=3)], now=T0 + offset)
        ).admitted
    full = await counters.acquire(rid(), [minute("w", T0 + 59, requests=3)], now=T0 + 59)
    assert not full.admitted and full.frees_at == int(T0)

    later = await counters.acquire(rid(), [minute("w", T0 + 60, requests=3)], now=T0 + 60)

    assert later.admitted  # the request of T0 has left the window
    assert later.levels[0].used[REQUESTS] == 3
    [idle] = await counters.peek([minute("w", T0 + 500, requests=3)], now=T0 + 500)
    assert idle.used == (0, 0, 0, 0) and idle.newest == NONE


async def test_a_request_too_big_for_the_window_never_gets_a_free_bucket(counters: RateCounters) -> None:
    verdict = await counters.acquire(rid(), [minute("t", T0, (1, 500, 400, 100), tokens=300)], now=T0)

    assert (verdict.admitted, verdict.dimension, verdict.frees_at) == (False, TOKENS, NONE)


async def test_tokens_reserved_settle_to_what_was_used(counters: RateCounters) -> None:
    line = minute("tok", T0, (1, 1000, 200, 800), tokens=1500)
    first, second = rid(), rid()
    assert (await counters.acquire(first, [line], now=T0)).admitted
    assert not (await counters.acquire(second, [line], now=T0)).admitted  # 1000 + 1000 > 1500

    await counters.settle(
        first,
        [Correction("tok", int(T0), int(T0) - 59, int(T0) + 5, 61, (0, 250 - 1000, 0, 0))],
        [],
        now=T0 + 5,
    )

    assert (
        await counters.acquire(second, [minute("tok", T0 + 5, (1, 1000, 200, 800), tokens=1500)], now=T0 + 5)
    ).admitted
    [level] = await counters.peek([minute("tok", T0 + 6, tokens=1500)], now=T0 + 6)
    assert level.used[TOKENS] == 1250


async def test_usage_past_a_reservation_that_left_the_window_counts_now(counters: RateCounters) -> None:
    assert (
        await counters.acquire(rid(), [minute("long", T0, (1, 100, 50, 50), tokens=10_000)], now=T0)
    ).admitted
    later = T0 + 90  # a long stream: its reservation's bucket has left the window

    await counters.settle(
        "x", [Correction("long", int(T0), int(later) - 59, int(later), 61, (0, 400, 0, 0))], [], now=later
    )

    [level] = await counters.peek([minute("long", later, tokens=10_000)], now=later)
    assert level.used[TOKENS] == 400 and level.newest == int(later)


async def test_a_refund_never_takes_a_count_below_zero(counters: RateCounters) -> None:
    await counters.settle(
        "gone", [Correction("fresh", int(T0), int(T0) - 59, int(T0), 61, (-1, -50, 0, 0))], [], now=T0
    )

    [level] = await counters.peek([minute("fresh", T0, requests=5, tokens=5)], now=T0)
    assert level.used == (0, 0, 0, 0)


async def test_concurrency_slots_are_taken_and_freed(counters: RateCounters) -> None:
    slot = SlotLine("conc", 2, 600.0)
    a, b, c = rid(), rid(), rid()
    assert (await counters.acquire(a, [slot], now=T0)).admitted
    assert (await counters.acquire(b, [slot], now=T0)).admitted

    refused = await counters.acquire(c, [slot], now=T0)

    assert (refused.admitted, refused.dimension, refused.levels[0].used[0]) == (False, CONCURRENCY, 2)
    await counters.settle(a, [], ["conc"], now=T0)
    assert (await counters.acquire(c, [slot], now=T0)).admitted


async def test_a_slot_never_freed_frees_itself_after_its_time_to_live(counters: RateCounters) -> None:
    slot = SlotLine("lost", 1, 30.0)
    assert (await counters.acquire(rid(), [slot], now=T0)).admitted
    assert not (await counters.acquire(rid(), [slot], now=T0 + 29)).admitted

    assert (await counters.acquire(rid(), [slot], now=T0 + 31)).admitted


async def test_a_refused_slot_takes_nothing_from_the_windows_beside_it(counters: RateCounters) -> None:
    window, slot = minute("beside", T0, requests=10), SlotLine("beside:c", 1, 600.0)
    assert (await counters.acquire(rid(), [window, slot], now=T0)).admitted

    refused = await counters.acquire(rid(), [window, slot], now=T0)

    assert refused.refused == 1
    [level, _] = await counters.peek([window, slot], now=T0)
    assert level.used[REQUESTS] == 1


async def test_concurrent_acquisitions_admit_exactly_the_limit(counters: RateCounters) -> None:
    lines = [minute("race", T0, requests=100), SlotLine("race:c", 1000, 600.0)]

    verdicts = await asyncio.gather(*(counters.acquire(rid(), lines, now=T0) for _ in range(500)))

    assert sum(v.admitted for v in verdicts) == 100
    [level, slots] = await counters.peek(lines, now=T0)
    assert level.used[REQUESTS] == 100 and slots.used[0] == 100


async def test_the_memory_backend_forgets_windows_idle_past_their_period() -> None:
    """Per-user default limits make a window per user: idle ones must not pile up."""
    counters = MemoryRateCounters()
    for user in range(100):
        counters.acquire_now(rid(), [minute(f"user-{user}", T0, requests=5)], now=T0)

    counters.acquire_now(rid(), [minute("late", T0 + 3600, requests=5)], now=T0 + 3600)

    assert set(counters._windows) == {"late"}


async def test_every_redis_key_expires() -> None:
    need_redis()
    import redis.asyncio as aioredis

    from waypost.state.rate_redis import RedisRateCounters

    prefix = unique_prefix()
    counters = RedisRateCounters(REDIS_URL, prefix=prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        lines = [minute("w", T0, (1, 10, 5, 5), requests=1, tokens=100), SlotLine("s", 1, 30.0)]
        assert (await counters.acquire(rid(), lines, now=T0)).admitted
        assert not (
            await counters.acquire(rid(), [minute("refused-only", T0, (1, 500, 0, 0), tokens=100)], now=T0)
        ).admitted
        await counters.settle(
            "x", [Correction("never-taken", int(T0), int(T0) - 59, int(T0), 61, (-1, 0, 0, 0))], [], now=T0
        )

        keys = sorted([k.decode() async for k in client.scan_iter(match=f"{prefix}*")])
        assert keys == [f"{prefix}{{ratelimits}}:s", f"{prefix}{{ratelimits}}:w"]  # nothing made by a refusal
        assert all(0 < ttl <= 61 for ttl in [await client.ttl(key) for key in keys])
    finally:
        await counters.close()
        await client.aclose()
        await forget_prefix(prefix)
