"""How the web UI's admin lists (users, tokens) fare with 100,000 users and 100,000 tokens.

    PYTHONPATH=. .venv/bin/python -m bench.ui_scale [--users N]

Fills a fresh SQLite database through the gateway's own tables, then times the API calls the
Users and All tokens pages make (a first page, a search, a deep page), each the median of 20,
through a running gateway on loopback. The pages ask for 50 rows at a time and search on the
server, so no call reads more than a page.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

import httpx
from tests.harness import GATEWAY_KEY, running, settings

from waypost.store.tables import api_tokens, users

CALLS = 20


async def fill(engine: object, count: int) -> None:
    now = datetime.now(UTC)
    people = [
        {"email": f"user{i}@example.com", "display_name": f"User {i}", "role": "user", "active": True,
         "created_at": now, "updated_at": now}
        for i in range(count)
    ]  # fmt: skip
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        for start in range(0, count, 5000):
            await conn.execute(users.insert(), people[start : start + 5000])
        first = (await conn.execute(users.select().where(users.c.email == "user0@example.com"))).first()
        tokens = [
            {"user_id": first.id + i, "name": f"token-{i}", "token_hash": f"{i:064x}", "prefix": f"wp-{i:07d}",
             "created_at": now}
            for i in range(count)
        ]  # fmt: skip
        for start in range(0, count, 5000):
            await conn.execute(api_tokens.insert(), tokens[start : start + 5000])


async def median_ms(http: httpx.AsyncClient, path: str, params: dict[str, object]) -> float:
    took = []
    for _ in range(CALLS):
        start = time.perf_counter()
        answer = await http.get(path, params=params)
        took.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
    return statistics.median(took)


async def main(count: int) -> None:
    async with running(settings()) as gateway:
        started = time.perf_counter()
        await fill(gateway.container.store.engine, count)
        print(f"filled {count:,} users and {count:,} tokens in {time.perf_counter() - started:.1f} s")
        headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=60) as http:
            deep = count - 100
            cases = [
                ("users, first page", "/admin/users", {"limit": 50}),
                ("users, search", "/admin/users", {"limit": 50, "search": "user9999"}),
                ("users, deep page", "/admin/users", {"limit": 50, "after": deep}),
                ("tokens, first page", "/admin/tokens", {"limit": 50}),
                ("tokens, search", "/admin/tokens", {"limit": 50, "search": "token-9999"}),
                ("tokens, deep page", "/admin/tokens", {"limit": 50, "after": deep}),
            ]
            print("| call | median ms |\n|---|---|")
            for name, path, params in cases:
                print(f"| {name} (`GET {path}`) | {await median_ms(http, path, params):.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().users))
