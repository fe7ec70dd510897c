"""The one way the state backends connect to Redis (budgets' counters, rate limits, the rules'
quotas, the response cache).

Nothing connects until the first call. Every call is bounded by ``socket_timeout``: one retry,
at once (a pooled connection that Redis closed, on a restart, is replaced), never redis-py's
default of several retries with backoff, which stalls a request for seconds while Redis is down.
The pool blocks: past ``MAX_CONNECTIONS`` calls in flight a call waits for a connection (within
the timeout) instead of failing, as redis-py's default pool does past its cap.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

MAX_CONNECTIONS = 64  # per client and process: each call holds one for well under a millisecond


def redis_client(url: str, socket_timeout: float) -> Any:
    """A client of the Redis at ``url``; closing it closes its pool."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)
