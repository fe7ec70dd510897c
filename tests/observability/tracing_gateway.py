"""What the tracing tests share: a gateway tracing to a loopback OTLP receiver, and a chat call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, Running, model, running, settings
from tests.observability.otlp_receiver import OtlpReceiver

PROMPT = "the secret plan is pineapple"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    async with OtlpReceiver() as server:
        yield server


@asynccontextmanager
async def traced_gateway(
    receiver: OtlpReceiver,
    upstream: OpenAIUpstream,
    retries: int = 0,
    provider: str = "openai",
    **sections: Any,
) -> AsyncIterator[Running]:
    """A gateway tracing every request to ``receiver``; on leaving, it has stopped (and exported).
    Its one model, ``gpt-test``, is ``provider`` (openai or a preset of that dialect) at ``upstream``."""
    entry = model(
        "gpt-test",
        provider,
        upstream_model="gpt-4o-mini",
        base_url=upstream.url + "/v1",
        api_key=upstream.api_key,
        retry={"max_retries": retries, "initial_delay": 0.01, "max_delay": 0.02},
    )
    tracing = {
        "enabled": True,
        "endpoint": receiver.url,
        "service_name": "waypost-test",
        **sections.pop("tracing", {}),
    }
    async with running(settings(entry, tracing=tracing, **sections)) as gateway:
        yield gateway


async def chat(url: str, headers: dict[str, str] | None = None, **body: Any) -> httpx.Response:
    payload = {"model": "gpt-test", "messages": [{"role": "user", "content": PROMPT}], **body}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{url}/v1/chat/completions",
            json=payload,
            headers={"authorization": f"Bearer {GATEWAY_KEY}", **(headers or {})},
        )
