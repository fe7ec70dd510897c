"""A plain HTTP client for endpoints no SDK covers, or to see exactly what went over the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.harness import GATEWAY_KEY

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the raw bytes when it was not JSON


async def post(
    url: str, body: Any, headers: dict[str, str] | None = None, *, raw: bytes | None = None
) -> Response:
    data = raw if raw is not None else json.dumps(body).encode()
    hdrs = {"content-type": "application/json", **(AUTH if headers is None else headers)}
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=hdrs) as resp:
        content = await resp.read()
        try:
            parsed: Any = json.loads(content)
        except ValueError:
            parsed = content
        return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, parsed)
