"""The response cache in Redis, shared by every worker and replica (``state.backend: redis``).

Keys, all under one hash tag (``{cache}``, so a Redis Cluster keeps them in one slot, which the
scripts need):

* ``e:<key>``: the entry, with Redis's own expiry (``PX``);
* ``meta``: a hash of each entry's size and tags (``<size>\\n<tag>\\n<tag>...``);
* ``lru`` / ``exp``: sorted sets of each entry's last use and expiry, in milliseconds;
* ``bytes``: the total size of the entries;
* ``t:<tag>``: the set of keys with that tag.

Storing is one Lua script: it drops entries past their expiry (a bounded number per call), the
key's previous entry, then the least recently used until the new one fits the total, all
atomically, so several gateways storing at once keep the total. A read is one script too (the
entry, and its use noted). Every call has the state backend's socket timeout. Entries that
Redis itself evicts (``maxmemory``) are simply misses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from waypost.state.cache_store import CacheStats, entry_size
from waypost.state.redis_client import redis_client

_COMMON = """
local P = ARGV[1]
local function drop(k)
  local meta = redis.call('HGET', P .. 'meta', k)
  redis.call('DEL', P .. 'e:' .. k)
  if not meta then return 0 end
  local first = true
  for part in string.gmatch(meta, '[^\\n]+') do
    if first then
      redis.call('DECRBY', P .. 'bytes', tonumber(part))
      first = false
    else
      redis.call('SREM', P .. 't:' .. part, k)
    end
  end
  redis.call('HDEL', P .. 'meta', k)
  redis.call('ZREM', P .. 'lru', k)
  redis.call('ZREM', P .. 'exp', k)
  return 1
end
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now, 'LIMIT', 0, 64)
  for _, k in ipairs(dead) do drop(k) end
end
"""

# ARGV: prefix, key, data, ttl ms, now ms, max total bytes, size, tags joined by newlines.
PUT = (
    _COMMON
    + """
local key, data, ttl, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local cap, size, tags = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
purge(now)
drop(key)
local total = tonumber(redis.call('GET', P .. 'bytes') or '0')
while total + size > cap do
  local oldest = redis.call('ZRANGE', P .. 'lru', 0, 0)
  if #oldest == 0 then break end
  drop(oldest[1])
  total = tonumber(redis.call('GET', P .. 'bytes') or '0')
end
redis.call('SET', P .. 'e:' .. key, data, 'PX', ttl)
redis.call('HSET', P .. 'meta', key, size .. '\\n' .. tags)
redis.call('ZADD', P .. 'lru', now, key)
redis.call('ZADD', P .. 'exp', now + ttl, key)
redis.call('INCRBY', P .. 'bytes', size)
for tag in string.gmatch(tags, '[^\\n]+') do redis.call('SADD', P .. 't:' .. tag, key) end
return 1
"""
)

# ARGV: prefix, key, now ms.
GET = """
local P = ARGV[1]
local value = redis.call('GET', P .. 'e:' .. ARGV[2])
if value then redis.call('ZADD', P .. 'lru', 'XX', tonumber(ARGV[3]), ARGV[2]) end
return value
"""

# ARGV: prefix, key.
REMOVE = (
    _COMMON
    + """
return drop(ARGV[2])
"""
)

# Invalidations drop at most BATCH entries per script call, called until none is left: one call
# over a whole cache would block Redis (every worker's requests) for as long as it runs.
BATCH = 500

# ARGV: prefix, tag, batch. Returns {dropped, left with the tag}.
REMOVE_TAGGED = (
    _COMMON
    + """
local set = P .. 't:' .. ARGV[2]
local keys = redis.call('SRANDMEMBER', set, tonumber(ARGV[3]))
local n = 0
for _, k in ipairs(keys) do
  n = n + drop(k)
  redis.call('SREM', set, k)  -- drop leaves it when the entry had no meta
end
return {n, redis.call('SCARD', set)}
"""
)

# ARGV: prefix, batch. Returns {dropped, left}. Every entry is in ``lru``.
CLEAR = (
    _COMMON
    + """
local keys = redis.call('ZRANGE', P .. 'lru', 0, tonumber(ARGV[2]) - 1)
local n = 0
for _, k in ipairs(keys) do
  n = n + drop(k)
  redis.call('ZREM', P .. 'lru', k)  -- drop leaves it when the entry had no meta
end
return {n, redis.call('ZCARD', P .. 'lru')}
"""
)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisCacheStore:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "waypost:",
        socket_timeout: float = 1.0,
        max_entry_bytes: int,
        max_total_bytes: int,
        batch: int = BATCH,
    ) -> None:
        self._batch = batch  # entries an invalidation drops per script call
        self.max_entry_bytes = max_entry_bytes
        self.max_total_bytes = max_total_bytes
        self._redis: Any = redis_client(url, socket_timeout)  # bounded calls (state/redis_client.py)
        self._prefix = f"{prefix}{{cache}}:"
        # Each script names one of its keys, so that a Redis Cluster runs it on the node of the
        # ``{cache}`` slot; the scripts build the others from the prefix.
        self._keys = [self._prefix + "meta"]
        self._put = self._redis.register_script(PUT)
        self._get = self._redis.register_script(GET)
        self._remove = self._redis.register_script(REMOVE)
        self._remove_tagged = self._redis.register_script(REMOVE_TAGGED)
        self._clear = self._redis.register_script(CLEAR)

    async def get(self, key: str) -> bytes | None:
        value = await self._get(keys=self._keys, args=[self._prefix, key, _ms(time.time())])
        return bytes(value) if value is not None else None

    async def put(self, key: str, data: bytes, *, ttl: float, tags: Sequence[str]) -> bool:
        size = entry_size(key, data)
        if size > self.max_entry_bytes:
            return False
        args: list[bytes | str | int] = [
            self._prefix,
            key,
            data,
            _ms(ttl),
            _ms(time.time()),
            self.max_total_bytes,
            size,
            "\n".join(tags),
        ]
        await self._put(keys=self._keys, args=args)
        return True

    async def remove(self, key: str) -> int:
        return int(await self._remove(keys=self._keys, args=[self._prefix, key]))

    async def remove_tagged(self, tag: str) -> int:
        removed = 0
        while True:
            n, left = await self._remove_tagged(keys=self._keys, args=[self._prefix, tag, self._batch])
            removed += int(n)
            if not int(left):
                return removed

    async def clear(self) -> int:
        removed = 0
        while True:
            n, left = await self._clear(keys=self._keys, args=[self._prefix, self._batch])
            removed += int(n)
            if not int(left):
                return removed

    async def stats(self) -> CacheStats:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hlen(self._prefix + "meta")
            pipe.get(self._prefix + "bytes")
            entries, total = await pipe.execute()
        return CacheStats(int(entries), int(total or 0), self.max_total_bytes)

    async def close(self) -> None:
        await self._redis.aclose()
