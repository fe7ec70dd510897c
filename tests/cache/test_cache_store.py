"""Both cache stores, the same specification: entries by key with a time to live, a cap per
entry and in total (least recently used out first), removal by key, by tag and all. The
memory store runs on a clock the test moves; the Redis one on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from tests.budgets.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from waypost.state.cache_store import CacheStore, MemoryCacheStore, entry_size

ENTRY = 1024  # the per-entry cap the stores are built with
TOTAL = 4096
BATCH = 2  # entries a Redis invalidation drops per script call


@dataclass
class Store:
    store: CacheStore
    wait: Callable[[float], object]  # lets ``seconds`` pass for the store's clock


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        clock = Clock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield Store(MemoryCacheStore(ENTRY, TOTAL, clock), advance)
        return
    need_redis()
    from waypost.state.cache_redis import RedisCacheStore

    prefix = unique_prefix()
    store = RedisCacheStore(
        REDIS_URL,
        prefix=prefix,
        socket_timeout=2.0,
        max_entry_bytes=ENTRY,
        max_total_bytes=TOTAL,
        batch=BATCH,  # small: invalidations here take several script calls
    )
    try:
        yield Store(store, asyncio.sleep)
    finally:
        await store.close()
        await forget_prefix(prefix)


def key(n: int) -> str:
    return f"{n:040x}"


def data(size: int, fill: bytes = b"x") -> bytes:
    """Bytes that make an entry of ``size`` with its key."""
    return fill * (size - len(key(0)))


async def test_an_entry_is_found_until_its_ttl_runs_out(stores: Store) -> None:
    store = stores.store
    assert await store.put(key(1), b"answer", ttl=0.2, tags=("model:a",))
    assert await store.get(key(1)) == b"answer"

    await stores.wait(0.3)

    assert await store.get(key(1)) is None


async def test_an_entry_over_the_entry_cap_is_not_stored(stores: Store) -> None:
    store = stores.store

    assert not await store.put(key(1), data(ENTRY + 1), ttl=60, tags=())
    assert await store.put(key(2), data(ENTRY), ttl=60, tags=())

    assert await store.get(key(1)) is None
    assert (await store.stats()).bytes == ENTRY


async def test_the_least_recently_used_entries_go_first_to_keep_the_total(stores: Store) -> None:
    store = stores.store
    for n in range(4):  # 4 x 1000 bytes: full
        assert await store.put(key(n), data(1000, b"%d" % n), ttl=60, tags=())
        await stores.wait(0.002)  # distinct use times for Redis's millisecond clock
    assert await store.get(key(0)) is not None  # 0 used again: 1 is now the least recent
    await stores.wait(0.002)

    await store.put(key(9), data(1000), ttl=60, tags=())

    assert await store.get(key(1)) is None
    assert all([await store.get(key(n)) is not None for n in (0, 2, 3, 9)])
    stats = await store.stats()
    assert (stats.entries, stats.bytes, stats.max_bytes) == (4, 4000, TOTAL)


async def test_replacing_an_entry_counts_it_once(stores: Store) -> None:
    store = stores.store
    await store.put(key(1), b"first", ttl=60, tags=("model:a",))
    await store.put(key(1), b"second answer", ttl=60, tags=("model:b",))

    stats = await store.stats()

    assert (stats.entries, stats.bytes) == (1, entry_size(key(1), b"second answer"))
    assert await store.get(key(1)) == b"second answer"
    assert await store.remove_tagged("model:a") == 0  # the old entry's tags went with it
    assert await store.remove_tagged("model:b") == 1


async def test_entries_are_removed_by_key_by_tag_and_all(stores: Store) -> None:
    store = stores.store
    await store.put(key(1), b"a", ttl=60, tags=("user:1", "model:gpt"))
    await store.put(key(2), b"b", ttl=60, tags=("user:2", "model:gpt"))
    await store.put(key(3), b"c", ttl=60, tags=("user:2", "model:claude"))
    await store.put(key(4), b"d", ttl=60, tags=("user:3",))

    assert await store.remove(key(4)) == 1
    assert await store.remove(key(4)) == 0
    assert await store.remove_tagged("model:gpt") == 2
    assert await store.get(key(3)) == b"c"
    assert await store.remove_tagged("user:2") == 1  # key 2 went with the model already
    await store.put(key(5), b"e", ttl=60, tags=())

    assert await store.clear() == 1
    assert (await store.stats()).entries == 0 and (await store.stats()).bytes == 0


async def test_expired_entries_stop_counting_once_another_is_stored(stores: Store) -> None:
    store = stores.store
    await store.put(key(1), data(1000), ttl=0.1, tags=("model:a",))
    await stores.wait(0.2)

    await store.put(key(2), b"fresh", ttl=60, tags=())

    stats = await store.stats()
    assert (stats.entries, stats.bytes) == (1, entry_size(key(2), b"fresh"))
    assert await store.remove_tagged("model:a") == 0


async def test_an_invalidation_of_more_entries_than_a_batch_removes_them_all(stores: Store) -> None:
    store = stores.store
    for n in range(1, 8):
        await store.put(key(n), b"x", ttl=60, tags=("model:a",) if n <= 5 else ())

    assert await store.remove_tagged("model:a") == 5
    assert await store.get(key(5)) is None and await store.get(key(6)) == b"x"
    for n in range(8, 13):
        await store.put(key(n), b"y", ttl=60, tags=())
    assert await store.clear() == 7
    stats = await store.stats()
    assert (stats.entries, stats.bytes) == (0, 0)
