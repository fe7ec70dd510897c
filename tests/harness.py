"""Runs a real Waypost server (uvicorn, loopback, random port) inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from waypost.app import create_app
from waypost.settings import Settings

GATEWAY_KEY = "wp-test-key-0123456789"


def model(
    name: str, provider: str, url: str | None = None, api_key: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One ``models`` entry; fast retries by default so failure tests stay quick."""
    entry: dict[str, Any] = {"name": name, "provider": provider, **extra}
    if url is not None:
        entry["base_url"] = url + ("/v1" if provider == "openai" else "")
    if api_key is not None:
        entry["api_key"] = api_key
    entry.setdefault("retry", {"max_retries": 0, "initial_delay": 0.01, "max_delay": 0.05})
    return entry


def settings(*models: dict[str, Any], api_keys: list[str] | None = None, **sections: Any) -> Settings:
    doc: dict[str, Any] = {
        "auth": {"api_keys": [GATEWAY_KEY] if api_keys is None else api_keys},
        "logging": {"level": "warning"},
        "models": list(models),
        **sections,
    }
    return Settings.model_validate(doc)


@asynccontextmanager
async def serve(config: Settings) -> AsyncIterator[str]:
    """Yield the base URL of a running gateway built from ``config``."""
    app = create_app(config, configure_logs=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            http="httptools",
            proxy_headers=False,
            timeout_graceful_shutdown=1,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()
