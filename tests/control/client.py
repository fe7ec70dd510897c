"""A client for the control plane of a running test gateway.

It keeps every answer it received (status line, headers and body), so a test can check that a
secret never came back in any of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from tests.harness import ADMIN_EMAIL, ADMIN_PASSWORD, GATEWAY_KEY, Running, running
from waypost.settings import Settings
from waypost.store import tables

PASSWORD = "Plenty-of-entropy-42"  # accepted by the password rules


@dataclass
class Person:
    """A user created through the API and logged in."""

    id: int
    email: str
    token: str  # a JWT access token
    refresh_token: str


class Control:
    def __init__(self, gateway: Running) -> None:
        self.gateway = gateway
        self.url = gateway.url
        self.container = gateway.container
        self.answers: list[str] = []
        self.http = httpx.AsyncClient(
            base_url=gateway.url, timeout=30, event_hooks={"response": [self._keep]}
        )

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()
        self.answers.append(f"{response.status_code} {dict(response.headers)!r} {response.text}")

    def leaked(self, value: str) -> bool:
        """Whether ``value`` appeared in any answer so far."""
        return any(value in answer for answer in self.answers)

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        token: str | None = GATEWAY_KEY,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A request as ``token`` (the administrator's API token by default; None: anonymous)."""
        sent = {"authorization": f"Bearer {token}"} if token is not None else {}
        return await self.http.request(method, path, json=json, headers={**sent, **(headers or {})}, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.call("POST", path, json, **kwargs)

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return await self.call("PATCH", path, json, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("DELETE", path, **kwargs)

    async def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> httpx.Response:
        return await self.post("/auth/login", {"email": email, "password": password}, token=None)

    async def person(
        self, email: str, *, permissions: tuple[str, ...] = (), role: str = "user", **fields: Any
    ) -> Person:
        """A user created by the administrator with ``permissions`` granted directly, logged in."""
        created = await self.post(
            "/admin/users", {"email": email, "password": PASSWORD, "role": role, **fields}
        )
        assert created.status_code == 201, created.text
        user_id = created.json()["id"]
        if permissions:
            granted = await self.post(
                f"/admin/users/{user_id}/permissions", {"permissions": list(permissions)}
            )
            assert granted.status_code == 200, granted.text
        session = await self.login(email, PASSWORD)
        assert session.status_code == 200, session.text
        body = session.json()
        return Person(user_id, email, body["access_token"], body["refresh_token"])

    async def chat(self, model: str, token: str) -> httpx.Response:
        """A data-plane call with an API token."""
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
        return await self.post("/v1/chat/completions", body, token=token)

    async def stored_text(self) -> str:
        """Every row of every table, as text: what someone reading the database would see."""
        parts = []
        async with self.container.store.engine.connect() as conn:
            for table in tables.metadata.sorted_tables:
                for row in (await conn.execute(sa.select(table))).all():
                    parts.append(repr(tuple(row)))
        return "\n".join(parts)


@asynccontextmanager
async def control(config: Settings) -> AsyncIterator[Control]:
    """A running gateway built from ``config`` and a client for it."""
    async with running(config) as gateway:
        client = Control(gateway)
        try:
            yield client
        finally:
            await client.http.aclose()


def message(response: httpx.Response) -> str:
    """The OpenAI-style error message of an answer."""
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return str(body["error"]["message"])
