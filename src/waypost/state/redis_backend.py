"""Counters in Redis, shared by every worker and replica; each operation is one Lua script, so
it is atomic (no check-then-increment race between gateways).

Per counter, three keys with one hash tag (so a Redis Cluster keeps a budget's keys together):
a hash (``b<bucket>m`` / ``b<bucket>t`` spend per bucket, ``hm`` / ``ht`` held, ``since``,
``seeded``), a sorted set of reservation ids by expiry, and a hash of what each id holds.
Every call has the configured socket timeout: an unreachable Redis fails fast, never hangs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from waypost.state.counters import NO_BUCKET, Line, Refused, Start, Tally, Window
from waypost.state.redis_client import redis_client

_COMMON = """
local function int(x) return string.format('%d', x) end
local function purge(h, z, a, now)
  local dead = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, r in ipairs(dead) do
    local held = redis.call('HGET', a, r)
    if held then
      local m, t = string.match(held, '^(%-?%d+) (%-?%d+)$')
      redis.call('HINCRBY', h, 'hm', int(-tonumber(m)))
      redis.call('HINCRBY', h, 'ht', int(-tonumber(t)))
      redis.call('HDEL', a, r)
    end
    redis.call('ZREM', z, r)
  end
end
local function spent(h, first)
  local all = redis.call('HGETALL', h)
  local m, t, oldest = 0, 0, -1
  for i = 1, #all, 2 do
    local b, unit = string.match(all[i], '^b(%-?%d+)([mt])$')
    if b then
      b = tonumber(b)
      if b < first then
        redis.call('HDEL', h, all[i])
      else
        local v = tonumber(all[i + 1])
        if unit == 'm' then m = m + v else t = t + v end
        if v ~= 0 and (oldest == -1 or b < oldest) then oldest = b end
      end
    end
  end
  return m, t, oldest
end
local function held(h)
  return tonumber(redis.call('HGET', h, 'hm') or '0'), tonumber(redis.call('HGET', h, 'ht') or '0')
end
local function expire(h, z, a, at)
  if at > 0 then
    redis.call('EXPIREAT', h, at)
    redis.call('EXPIREAT', z, at)
    redis.call('EXPIREAT', a, at)
  end
end
"""

# KEYS: (hash, zset, holds) per line. ARGV: rid, now, hold-until, strict, then per line:
# first, micros, tokens, limit micros (-1: none), limit tokens (-1: none), expire-at.
RESERVE = (
    _COMMON
    + """
local rid, now, hold_until, strict = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local n = #KEYS / 3
for i = 1, n do
  local h, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  purge(h, z, a, now)
  if strict then
    local base = 4 + 6 * (i - 1)
    local first, m, t = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
    local lm, lt = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
    local sm, st, oldest = spent(h, first)
    local hm, ht = held(h)
    if (lm >= 0 and sm + hm + m > lm) or (lt >= 0 and st + ht + t > lt) then
      return {i, int(sm), int(st), int(hm), int(ht), int(oldest)}
    end
  end
end
for i = 1, n do
  local h, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local base = 4 + 6 * (i - 1)
  local m, t = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  redis.call('HINCRBY', h, 'hm', int(m))
  redis.call('HINCRBY', h, 'ht', int(t))
  local cur = redis.call('HGET', a, rid)
  if cur then
    local m0, t0 = string.match(cur, '^(%-?%d+) (%-?%d+)$')
    m, t = m + tonumber(m0), t + tonumber(t0)
  end
  redis.call('HSET', a, rid, int(m) .. ' ' .. int(t))
  redis.call('ZADD', z, hold_until, rid)
  redis.call('HSETNX', h, 'since', ARGV[2])
  expire(h, z, a, tonumber(ARGV[base + 6]))
end
return {0}
"""
)

# KEYS as RESERVE. ARGV: rid, now, then per line: first, bucket, micros, tokens, expire-at.
SETTLE = (
    _COMMON
    + """
local rid, now = ARGV[1], tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS / 3 do
  local h, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local base = 2 + 5 * (i - 1)
  local first, bucket = tonumber(ARGV[base + 1]), ARGV[base + 2]
  local m, t = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local cur = redis.call('HGET', a, rid)
  if cur then
    local m0, t0 = string.match(cur, '^(%-?%d+) (%-?%d+)$')
    redis.call('HINCRBY', h, 'hm', int(-tonumber(m0)))
    redis.call('HINCRBY', h, 'ht', int(-tonumber(t0)))
    redis.call('HDEL', a, rid)
    redis.call('ZREM', z, rid)
  end
  purge(h, z, a, now)
  local sm, st, oldest = spent(h, first)
  local hm, ht = held(h)
  for _, v in ipairs({int(sm), int(st), int(hm), int(ht), int(oldest)}) do table.insert(out, v) end
  if m ~= 0 then redis.call('HINCRBY', h, 'b' .. bucket .. 'm', int(m)) end
  if t ~= 0 then redis.call('HINCRBY', h, 'b' .. bucket .. 't', int(t)) end
  redis.call('HSETNX', h, 'since', ARGV[2])
  expire(h, z, a, tonumber(ARGV[base + 5]))
end
return out
"""
)

# KEYS as RESERVE. ARGV: now, then per window: first.
TALLY = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS / 3 do
  local h, z, a = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  purge(h, z, a, now)
  local sm, st, oldest = spent(h, tonumber(ARGV[1 + i]))
  local hm, ht = held(h)
  for _, v in ipairs({int(sm), int(st), int(hm), int(ht), int(oldest)}) do table.insert(out, v) end
end
return out
"""
)

# KEYS: one hash per window. ARGV: now, then per window: expire-at.
START = """
local out = {}
for i = 1, #KEYS do
  redis.call('HSETNX', KEYS[i], 'since', ARGV[1])
  local at = tonumber(ARGV[1 + i])
  if at > 0 then redis.call('EXPIREAT', KEYS[i], at) end
  table.insert(out, redis.call('HGET', KEYS[i], 'since'))
  table.insert(out, redis.call('HEXISTS', KEYS[i], 'seeded'))
end
return out
"""

# KEYS: the hash. ARGV: bucket, micros, tokens, ... (triples).
SEED = """
if redis.call('HEXISTS', KEYS[1], 'seeded') == 1 then return 0 end
for i = 1, #ARGV, 3 do
  if ARGV[i + 1] ~= '0' then redis.call('HINCRBY', KEYS[1], 'b' .. ARGV[i] .. 'm', ARGV[i + 1]) end
  if ARGV[i + 2] ~= '0' then redis.call('HINCRBY', KEYS[1], 'b' .. ARGV[i] .. 't', ARGV[i + 2]) end
end
redis.call('HSET', KEYS[1], 'seeded', '1')
return 1
"""


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _tallies(flat: Sequence[Any]) -> list[Tally]:
    values = [int(v) for v in flat]
    return [Tally(*values[i : i + 5]) for i in range(0, len(values), 5)]


class RedisCounters:
    immediate = False

    def __init__(self, url: str, *, prefix: str = "waypost:", socket_timeout: float = 1.0) -> None:
        self._redis: Any = redis_client(url, socket_timeout)  # bounded calls (state/redis_client.py)
        self._prefix = f"{prefix}{{budgets}}:"
        self._reserve = self._redis.register_script(RESERVE)
        self._settle = self._redis.register_script(SETTLE)
        self._tally = self._redis.register_script(TALLY)
        self._start = self._redis.register_script(START)
        self._seed = self._redis.register_script(SEED)

    def _keys(self, key: str) -> list[str]:
        base = self._prefix + key
        return [base, base + ":z", base + ":a"]

    async def reserve(
        self, rid: str, lines: Sequence[Line], *, now: float, ttl: float, strict: bool = True
    ) -> Refused | None:
        keys: list[str] = []
        args: list[Any] = [rid, repr(now), repr(now + ttl), "1" if strict else "0"]
        for line in lines:
            keys += self._keys(line.window.key)
            args += [
                line.window.first,
                line.micros,
                line.tokens,
                _limit(line.limit_micros),
                _limit(line.limit_tokens),
                line.window.expires_at,
            ]
        answer = await self._reserve(keys=keys, args=args)
        if int(answer[0]) == 0:
            return None
        index, *values = (int(v) for v in answer)
        return Refused(index - 1, Tally(*values))

    async def settle(self, rid: str, lines: Sequence[Line], *, now: float) -> list[Tally]:
        if not lines:
            return []
        keys: list[str] = []
        args: list[Any] = [rid, repr(now)]
        for line in lines:
            window = line.window
            keys += self._keys(window.key)
            args += [window.first, window.bucket, line.micros, line.tokens, window.expires_at]
        return _tallies(await self._settle(keys=keys, args=args))

    async def tally(self, windows: Sequence[Window], *, now: float) -> list[Tally]:
        if not windows:
            return []
        keys = [k for w in windows for k in self._keys(w.key)]
        return _tallies(await self._tally(keys=keys, args=[repr(now), *(w.first for w in windows)]))

    async def start(self, windows: Sequence[Window], *, now: float) -> list[Start]:
        if not windows:
            return []
        keys = [self._prefix + w.key for w in windows]
        flat = await self._start(keys=keys, args=[repr(now), *(w.expires_at for w in windows)])
        return [Start(float(flat[i]), int(flat[i + 1]) == 1) for i in range(0, len(flat), 2)]

    async def seed(self, window: Window, buckets: Mapping[int, tuple[int, int]]) -> bool:
        args: list[Any] = []
        for bucket, (micros, tokens) in buckets.items():
            args += [bucket, micros, tokens]
        return int(await self._seed(keys=[self._prefix + window.key], args=args)) == 1

    async def drop(self, keys: Sequence[str]) -> None:
        names = [k for key in keys for k in self._keys(key)]
        if names:
            await self._redis.delete(*names)

    async def close(self) -> None:
        await self._redis.aclose()


assert NO_BUCKET == -1  # the scripts return -1 for "no bucket with spend"
