"""What the deployment tests share: a model with one deployment per fake upstream, chat calls,
a clock the tests move by hand, and which fake served what."""

from __future__ import annotations

from typing import Any

from tests.api.client import Response, post
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model

CHAT = "/v1/chat/completions"
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}


def pooled(
    name: str, *fakes: OpenAIUpstream, weights: list[int] | None = None, **extra: Any
) -> dict[str, Any]:
    """A public model ``name`` with deployments "d0", "d1", ... on ``fakes`` (no retries on the
    same deployment unless ``extra`` says otherwise)."""
    deployments = [
        {"name": f"d{i}", "base_url": fake.url + "/v1", **({"weight": weights[i]} if weights else {})}
        for i, fake in enumerate(fakes)
    ]
    return model(name, "openai", api_key="sk-test", public=True, deployments=deployments, **extra)


async def chat(url: str, name: str = "pool") -> Response:
    return await post(url + CHAT, {"model": name, "messages": [{"role": "user", "content": "hi"}]}, AUTH)


class Clock:
    """Wall-clock seconds that move only when the test says (``DeploymentHealth(clock=...)``)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def states(health: dict[str, Any], name: str = "pool") -> dict[str, str]:
    """Deployment label -> state, from a /health body."""
    return {d["deployment"]: d["state"] for d in health["deployments"] if d["model"] == name}


async def get_json(url: str) -> tuple[int, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()
