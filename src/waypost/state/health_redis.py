"""Deployment outages in Redis, shared by every worker and replica (state/health.py).

One hash, ``{prefix}{health}:outages``: a field per deployment key, its value the outage as JSON
(``m`` model, ``u`` until, ``k`` kind, ``n`` ejections). ``eject`` and ``cool_down`` are one Lua
script each, so the share check and the write are one atomic step; the hash expires once every
outage in it is forgotten. Written only when a deployment fails, read by each process about once
a second: no request waits for Redis.
"""

from __future__ import annotations

import json
from typing import Any

from waypost.state.health import Outage
from waypost.state.redis_client import redis_client

# KEYS: the hash. ARGV: field, model, now, base, cap, max_out. Returns the outage (JSON) or nil.
EJECT = """
local h, field, model = KEYS[1], ARGV[1], ARGV[2]
local now, base, cap, max_out = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local all = redis.call('HGETALL', h)
local out, mine = 0, nil
for i = 1, #all, 2 do
  local o = cjson.decode(all[i + 1])
  if all[i] == field then
    mine = o
  elseif o.u + cap < now then
    redis.call('HDEL', h, all[i])
  elseif o.m == model and o.k == 'ejected' and o.u > now then
    out = out + 1
  end
end
if mine and mine.k == 'ejected' and mine.u > now then return cjson.encode(mine) end
if out >= max_out then return nil end
local n = 1
if mine and mine.u + cap >= now then n = mine.n + 1 end
local o = {m = model, u = now + math.min(base * n, cap), k = 'ejected', n = n}
redis.call('HSET', h, field, cjson.encode(o))
local ttl = math.ceil(o.u - now + cap)
if redis.call('TTL', h) < ttl then redis.call('EXPIRE', h, ttl) end
return cjson.encode(o)
"""

# KEYS: the hash. ARGV: field, model, until, memory, now. Returns the outage (JSON).
COOL_DOWN = """
local h, field, model = KEYS[1], ARGV[1], ARGV[2]
local untl, memory, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cur = redis.call('HGET', h, field)
local n = 0
if cur then
  local o = cjson.decode(cur)
  if o.u >= untl then return cur end
  n = o.n
end
local o = {m = model, u = untl, k = 'cooling_down', n = n}
redis.call('HSET', h, field, cjson.encode(o))
local ttl = math.ceil(untl - now + memory)
if redis.call('TTL', h) < ttl then redis.call('EXPIRE', h, ttl) end
return cjson.encode(o)
"""


def _outage(raw: Any) -> Outage:
    o = json.loads(raw)
    return Outage(
        str(o["m"]), float(o["u"]), "ejected" if o["k"] == "ejected" else "cooling_down", int(o["n"])
    )


class RedisHealthStore:
    def __init__(self, url: str, *, prefix: str = "waypost:", socket_timeout: float = 1.0) -> None:
        self._redis: Any = redis_client(url, socket_timeout)  # bounded calls (state/redis_client.py)
        self._key = f"{prefix}{{health}}:outages"
        self._eject = self._redis.register_script(EJECT)
        self._cool_down = self._redis.register_script(COOL_DOWN)

    async def eject(
        self, key: str, model: str, *, max_out: int, base: float, cap: float, now: float
    ) -> Outage | None:
        raw = await self._eject(keys=[self._key], args=[key, model, repr(now), base, cap, max_out])
        return None if raw is None else _outage(raw)

    async def cool_down(self, key: str, model: str, *, until: float, memory: float, now: float) -> Outage:
        raw = await self._cool_down(keys=[self._key], args=[key, model, repr(until), memory, repr(now)])
        return _outage(raw)

    async def outages(self, now: float) -> dict[str, Outage]:
        found = await self._redis.hgetall(self._key)
        return {k.decode() if isinstance(k, bytes) else k: _outage(v) for k, v in found.items()}

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> None:
        """Raises when Redis does not answer (readiness reports it)."""
        await self._redis.ping()
