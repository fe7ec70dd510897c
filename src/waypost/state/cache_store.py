"""Where the response cache keeps its answers: the protocol, and the store in this process's
memory (``state/cache_redis.py`` is the one in Redis, for workers and replicas).

An entry is opaque bytes under a key (a hash of the request and its tenant: ``pipeline/
cache_key.py``), with a time to live and tags (``model:<name>``, ``user:<id>``, ``group:<name>``)
by which entries are invalidated together. Both stores bound each entry and their total size
(the bytes of the answers and their keys); past the total, the least recently used entries go
first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from waypost.settings import CacheSettings, StateSettings


@dataclass(frozen=True, slots=True)
class CacheStats:
    entries: int
    bytes: int
    max_bytes: int


class CacheStore(Protocol):
    """A cache backend. Every method may raise when the backend does not answer (Redis); the
    cache stage then serves without it."""

    max_entry_bytes: int
    max_total_bytes: int

    async def get(self, key: str) -> bytes | None:
        """The entry, or None (absent or expired); a hit counts as a use (for LRU)."""
        ...

    async def put(self, key: str, data: bytes, *, ttl: float, tags: Sequence[str]) -> bool:
        """Store ``data`` for ``ttl`` seconds, replacing what ``key`` held; False when it is
        bigger than ``max_entry_bytes`` (nothing stored)."""
        ...

    async def remove(self, key: str) -> int:
        """Forget one entry; how many were removed (0 or 1)."""
        ...

    async def remove_tagged(self, tag: str) -> int:
        """Forget every entry with ``tag``; how many were removed."""
        ...

    async def clear(self) -> int:
        """Forget every entry; how many were removed."""
        ...

    async def stats(self) -> CacheStats: ...

    async def close(self) -> None: ...


def entry_size(key: str, data: bytes) -> int:
    """What an entry counts towards the caps."""
    return len(data) + len(key)


class _Item:
    __slots__ = ("data", "expires", "size", "tags")

    def __init__(self, data: bytes, expires: float, size: int, tags: tuple[str, ...]) -> None:
        self.data = data
        self.expires = expires
        self.size = size
        self.tags = tags


class MemoryCacheStore:
    """Entries in this process (one worker's own cache): an LRU dictionary with TTLs, a byte
    total, and a key set per tag."""

    def __init__(
        self, max_entry_bytes: int, max_total_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entry_bytes = max_entry_bytes
        self.max_total_bytes = max_total_bytes
        self._clock = clock
        self._items: OrderedDict[str, _Item] = OrderedDict()  # least recently used first
        self._tagged: dict[str, set[str]] = {}
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        """``get``, answered at once (the cache stage's hits need no coroutine)."""
        item = self._items.get(key)
        if item is None:
            return None
        if item.expires <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item.data

    async def put(self, key: str, data: bytes, *, ttl: float, tags: Sequence[str]) -> bool:
        size = entry_size(key, data)
        if size > self.max_entry_bytes:
            return False
        self._drop(key)
        now = self._clock()
        items = self._items
        # Expired entries at the old end go first, then the least recently used until it fits.
        while items:
            oldest, item = next(iter(items.items()))
            if item.expires > now and self._bytes + size <= self.max_total_bytes:
                break
            self._drop(oldest)
        items[key] = _Item(data, now + ttl, size, tuple(tags))
        self._bytes += size
        for tag in tags:
            self._tagged.setdefault(tag, set()).add(key)
        return True

    async def remove(self, key: str) -> int:
        return self._drop(key)

    async def remove_tagged(self, tag: str) -> int:
        keys = self._tagged.pop(tag, set())
        return sum(self._drop(key) for key in keys)

    async def clear(self) -> int:
        count = len(self._items)
        self._items.clear()
        self._tagged.clear()
        self._bytes = 0
        return count

    async def stats(self) -> CacheStats:
        return CacheStats(len(self._items), self._bytes, self.max_total_bytes)

    async def close(self) -> None:
        return None

    def _drop(self, key: str) -> int:
        item = self._items.pop(key, None)
        if item is None:
            return 0
        self._bytes -= item.size
        for tag in item.tags:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]
        return 1


def build_cache_store(cache: CacheSettings, state: StateSettings) -> CacheStore:
    """The configured backend's store (``state.backend``); nothing connects until the first use."""
    if state.backend == "redis":
        from waypost.state.cache_redis import RedisCacheStore

        return RedisCacheStore(
            state.redis_url,
            prefix=state.key_prefix,
            socket_timeout=state.socket_timeout,
            max_entry_bytes=cache.max_entry_bytes,
            max_total_bytes=cache.max_total_bytes,
        )
    return MemoryCacheStore(cache.max_entry_bytes, cache.max_total_bytes)
