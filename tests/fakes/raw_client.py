"""Raw HTTP helpers for tests that must send or inspect what an SDK hides."""

from __future__ import annotations

import json
from typing import Any

import aiohttp


async def post_raw(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    """POST JSON without an SDK (to send what an SDK refuses to); return status and JSON body."""
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def post_stream(url: str, body: Any, headers: dict[str, str]) -> bytes:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as resp:
        return await resp.read()


def sse_data(raw: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded except ``[DONE]``."""
    lines = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def sse_event_names(raw: bytes) -> list[str]:
    return [line[7:] for line in raw.decode().split("\n") if line.startswith("event: ")]
