"""Rate-limit counters in Redis, shared by every worker and replica: ``acquire`` and ``settle``
are one Lua script each, so the check and the increment are one atomic step (state/rate.py).

A window is a hash: ``r<bucket>`` / ``t<bucket>`` / ``i<bucket>`` / ``o<bucket>`` per bucket,
``R`` / ``T`` / ``I`` / ``O`` their running totals, ``lo`` (no bucket below it holds anything)
and ``hi`` (the newest bucket written); it expires a period after its last write. A limit's
slots are a sorted set of request ids by the time each frees itself. Every key carries the hash
tag ``{ratelimits}``, so a Redis Cluster keeps one request's keys in one slot.

Calls fail fast when Redis does not answer: short socket timeouts, no retries with backoff
(redis-py would otherwise retry a dead connection for seconds); the stage decides what then.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from waypost.state.rate import NONE, Correction, Level, Line, SlotLine, Verdict, WindowLine
from waypost.state.redis_client import redis_client

_COMMON = """
local D = {'r', 't', 'i', 'o'}
local T = {'R', 'T', 'I', 'O'}
local function int(x) return string.format('%d', x) end
local function advance(k, first, span)
  local lo = tonumber(redis.call('HGET', k, 'lo'))
  if lo == nil or lo >= first then return end
  if first - lo >= span then
    redis.call('DEL', k)
    return
  end
  for b = lo, first - 1 do
    local s = int(b)
    local cells = redis.call('HMGET', k, 'r' .. s, 't' .. s, 'i' .. s, 'o' .. s)
    for j = 1, 4 do
      if cells[j] then
        redis.call('HINCRBY', k, T[j], -tonumber(cells[j]))
        redis.call('HDEL', k, D[j] .. s)
      end
    end
  end
  redis.call('HSET', k, 'lo', int(first))
end
local function level(k, first)
  local v = redis.call('HMGET', k, 'R', 'T', 'I', 'O', 'hi')
  local hi = tonumber(v[5] or '-1')
  if hi < first then hi = -1 end
  return {tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0'), tonumber(v[4] or '0'), hi}
end
local function raise_hi(k, b)
  local hi = tonumber(redis.call('HGET', k, 'hi') or '-1')
  if b > hi then redis.call('HSET', k, 'hi', int(b)) end
end
"""

# KEYS: one per line. ARGV: rid, now, then per line either
#   'w', bucket, first, ttl, 4 amounts, 4 limits (-1: none)       (a window)
#   's', limit, frees-itself-at, ttl                                (a slot)
# Returns: refused line (1-based, 0: admitted), dimension (0-based), frees-at bucket, then per
# line: 4 counts and the newest bucket.
ACQUIRE = (
    _COMMON
    + """
local rid, now = ARGV[1], tonumber(ARGV[2])
local lines, levels = {}, {}
local p = 3
for n = 1, #KEYS do
  local k, kind = KEYS[n], ARGV[p]
  if kind == 'w' then
    local line = {kind = 'w', bucket = tonumber(ARGV[p + 1]), first = tonumber(ARGV[p + 2]),
      ttl = ARGV[p + 3], a = {}, l = {}}
    for j = 1, 4 do
      line.a[j] = tonumber(ARGV[p + 3 + j])
      line.l[j] = tonumber(ARGV[p + 7 + j])
    end
    p = p + 12
    advance(k, line.first, line.bucket - line.first + 1)
    lines[n], levels[n] = line, level(k, line.first)
  else
    local line = {kind = 's', limit = tonumber(ARGV[p + 1]), until_ = ARGV[p + 2], ttl = ARGV[p + 3]}
    p = p + 4
    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
    lines[n], levels[n] = line, {redis.call('ZCARD', k), 0, 0, 0, -1}
  end
end
local refused, dim = 0, -1
for n = 1, #KEYS do
  local line, lv = lines[n], levels[n]
  if line.kind == 'w' then
    for j = 1, 4 do
      if line.l[j] >= 0 and lv[j] + line.a[j] > line.l[j] then
        refused, dim = n, j - 1
        break
      end
    end
  elseif lv[1] + 1 > line.limit then
    refused, dim = n, 4
  end
  if refused > 0 then break end
end
local out = {refused, dim, -1}
if refused > 0 then
  local line, k = lines[refused], KEYS[refused]
  if line.kind == 'w' then
    local j = dim + 1
    local need = levels[refused][j] + line.a[j] - line.l[j]
    local freed = 0
    for b = line.first, math.max(levels[refused][5], line.first) do
      freed = freed + tonumber(redis.call('HGET', k, D[j] .. int(b)) or '0')
      if freed >= need then
        out[3] = b
        break
      end
    end
  end
else
  for n = 1, #KEYS do
    local line, lv, k = lines[n], levels[n], KEYS[n]
    if line.kind == 'w' then
      local s = int(line.bucket)
      for j = 1, 4 do
        if line.a[j] ~= 0 then
          redis.call('HINCRBY', k, D[j] .. s, int(line.a[j]))
          redis.call('HINCRBY', k, T[j], int(line.a[j]))
          lv[j] = lv[j] + line.a[j]
        end
      end
      redis.call('HSETNX', k, 'lo', int(line.first))
      raise_hi(k, line.bucket)
      redis.call('EXPIRE', k, line.ttl)
      lv[5] = line.bucket
    else
      redis.call('ZADD', k, line.until_, rid)
      redis.call('EXPIRE', k, line.ttl)
      lv[1] = lv[1] + 1
    end
  end
end
for n = 1, #KEYS do
  for j = 1, 5 do table.insert(out, int(levels[n][j])) end
end
return out
"""
)

# KEYS: one per correction, then the slot keys. ARGV: rid, number of corrections, then per
# correction: bucket, first, current, ttl, 4 deltas.
SETTLE = (
    _COMMON
    + """
local rid, count = ARGV[1], tonumber(ARGV[2])
for n = 1, count do
  local k, p = KEYS[n], 3 + 8 * (n - 1)
  local bucket, first, current = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
  advance(k, first, current - first + 1)
  local target = bucket
  if bucket < first then target = current end
  local touched = false
  for j = 1, 4 do
    local d = tonumber(ARGV[p + 3 + j])
    if d ~= 0 and not (d < 0 and target ~= bucket) then
      local f = D[j] .. int(target)
      local v = tonumber(redis.call('HGET', k, f) or '0')
      local nv = v + d
      if nv < 0 then nv = 0 end
      if nv ~= v then
        if nv == 0 then redis.call('HDEL', k, f) else redis.call('HSET', k, f, int(nv)) end
        redis.call('HINCRBY', k, T[j], int(nv - v))
        touched = true
      end
    end
  end
  if touched then
    redis.call('HSETNX', k, 'lo', int(first))
    raise_hi(k, target)
    redis.call('EXPIRE', k, ARGV[p + 3])
  end
end
for n = count + 1, #KEYS do
  redis.call('ZREM', KEYS[n], rid)
end
return 1
"""
)

# KEYS: one per line. ARGV: now, then per line: 'w', first, span | 's', 0, 0.
PEEK = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local out = {}
for n = 1, #KEYS do
  local k, p = KEYS[n], 2 + 3 * (n - 1)
  local lv
  if ARGV[p] == 'w' then
    local first = tonumber(ARGV[p + 1])
    advance(k, first, tonumber(ARGV[p + 2]))
    lv = level(k, first)
  else
    lv = {redis.call('ZCOUNT', k, '(' .. ARGV[1], '+inf'), 0, 0, 0, -1}
  end
  for j = 1, 5 do table.insert(out, int(lv[j])) end
end
return out
"""
)


def _levels(flat: Sequence[Any]) -> tuple[Level, ...]:
    values = [int(v) for v in flat]
    return tuple(
        Level((values[i], values[i + 1], values[i + 2], values[i + 3]), values[i + 4])
        for i in range(0, len(values), 5)
    )


class RedisRateCounters:
    def __init__(self, url: str, *, prefix: str = "waypost:", socket_timeout: float = 1.0) -> None:
        self._redis: Any = redis_client(url, socket_timeout)  # bounded calls (state/redis_client.py)
        self._prefix = f"{prefix}{{ratelimits}}:"
        self._acquire = self._redis.register_script(ACQUIRE)
        self._settle = self._redis.register_script(SETTLE)
        self._peek = self._redis.register_script(PEEK)

    async def acquire(self, rid: str, lines: Sequence[Line], *, now: float) -> Verdict:
        keys: list[str] = []
        args: list[Any] = [rid, repr(now)]
        for line in lines:
            keys.append(self._prefix + line.key)
            if isinstance(line, WindowLine):
                args += ["w", line.bucket, line.first, line.ttl, *line.amounts, *line.limits]
            else:
                args += ["s", line.limit, repr(now + line.ttl), max(1, int(line.ttl) + 1)]
        flat = await self._acquire(keys=keys, args=args)
        refused, dimension, frees = int(flat[0]), int(flat[1]), int(flat[2])
        levels = _levels(flat[3:])
        if refused == 0:
            return Verdict(levels)
        return Verdict(levels, refused - 1, dimension, frees)

    async def settle(
        self, rid: str, corrections: Sequence[Correction], slots: Sequence[str], *, now: float
    ) -> None:
        if not corrections and not slots:
            return
        keys = [self._prefix + c.key for c in corrections] + [self._prefix + key for key in slots]
        args: list[Any] = [rid, len(corrections)]
        for c in corrections:
            args += [c.bucket, c.first, c.current, c.ttl, *c.deltas]
        await self._settle(keys=keys, args=args)

    async def peek(self, lines: Sequence[Line], *, now: float) -> list[Level]:
        if not lines:
            return []
        keys = [self._prefix + line.key for line in lines]
        args: list[Any] = [repr(now)]
        for line in lines:
            if isinstance(line, SlotLine):
                args += ["s", 0, 0]
            else:
                args += ["w", line.first, line.span]
        return list(_levels(await self._peek(keys=keys, args=args)))

    async def close(self) -> None:
        await self._redis.aclose()


assert NONE == -1  # the scripts answer -1 for "none"
