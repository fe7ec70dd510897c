"""Runs a real Waypost server (uvicorn, loopback, random port) inside the test's event loop."""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from tests.dbs import fresh_database
from waypost.app import create_app
from waypost.server import GatewayServer, server_config
from waypost.settings import DatabaseSettings, Settings

GATEWAY_KEY = "wp-test-key-0123456789"  # an API token of the administrator, seeded by serve()
ADMIN_EMAIL = "admin@localhost"
ADMIN_PASSWORD = "correct-horse-battery-staple-42"
# Cheap Argon2 parameters: tests hash many passwords; production keeps the defaults.
FAST_HASHING = {"time_cost": 1, "memory_kib": 8, "parallelism": 1}
DEFAULT_DATABASE_URL = "sqlite:///waypost.db"


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


def auth_section(**extra: Any) -> dict[str, Any]:
    """The ``auth`` section tests use: a known admin password and cheap hashing."""
    return {"admin_password": ADMIN_PASSWORD, "password_hashing": FAST_HASHING, **extra}


def settings(*models: dict[str, Any], api_keys: list[str] | None = None, **sections: Any) -> Settings:
    """Settings for a test gateway. ``api_keys=[]`` runs it open (loopback only); otherwise
    callers use ``GATEWAY_KEY``. Upstream fakes listen on loopback, so private targets are allowed."""
    auth = auth_section(open=api_keys == [])
    doc: dict[str, Any] = {
        "auth": {**auth, **sections.pop("auth", {})},
        "security": {"allow_private_targets": True, **sections.pop("security", {})},
        "logging": {"level": "warning"},
        "models": list(models),
        **sections,
    }
    return Settings.model_validate(doc)


def container_of(app: Any) -> Any:
    """The app's container, under any middleware wrapping the gateway."""
    while not hasattr(app, "container"):
        app = app.app
    return app.container


async def seed_token(container: Any, plaintext: str, email: str = ADMIN_EMAIL) -> None:
    """Give ``email`` an API token with a known value (tests only; real tokens are random)."""
    from waypost.core.errors import Conflict
    from waypost.security.api_tokens import hash_api_token

    user = await container.store.users.by_email(email)
    try:
        await container.store.tokens.create(
            user.id, "test", token_hash=hash_api_token(plaintext), prefix=plaintext[:10]
        )
    except Conflict:
        pass  # a second gateway on the same database: the token is there already


@dataclass
class Running:
    url: str
    container: Any  # waypost.api.state.Container: the store, authenticator, catalog, ...


@asynccontextmanager
async def serve(config: Settings) -> AsyncIterator[str]:
    """Yield the base URL of a running gateway built from ``config``."""
    async with running(config) as gateway:
        yield gateway.url


@asynccontextmanager
async def running(config: Settings) -> AsyncIterator[Running]:
    """A running gateway and its container. Unless the settings name a database, it gets a
    fresh one of the default test backend (``WAYPOST_TEST_DATABASE``)."""
    async with AsyncExitStack() as stack:
        if config.database.url == DEFAULT_DATABASE_URL:
            section = await stack.enter_async_context(fresh_database(migrated=True))
            config = config.model_copy(update={"database": DatabaseSettings.model_validate(section)})
        config = with_secrets_file(config)
        app = create_app(config, configure_logs=False)
        base = await stack.enter_async_context(_run(app))
        container = container_of(app)
        await seed_token(container, GATEWAY_KEY)
        yield Running(base, container)


@cache
def _secrets_directory() -> str:
    directory = tempfile.mkdtemp(prefix="waypost-secrets-")
    atexit.register(shutil.rmtree, directory, True)
    return directory


def with_secrets_file(config: Settings) -> Settings:
    """On PostgreSQL, which has no database file to keep generated secrets beside, a file per schema
    in a temporary directory (rather than the current one): gateways on one database agree."""
    if config.security.secrets_file is not None or config.database.url.startswith("sqlite"):
        return config
    path = f"{_secrets_directory()}/secrets-{config.database.postgres_schema or 'public'}.json"
    return config.model_copy(update={"security": config.security.model_copy(update={"secrets_file": path})})


@asynccontextmanager
async def _run(app: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Built as ``waypost serve`` builds it (limits, deadlines, logging), with a short drain.
    config = server_config(app, container_of(app).settings, timeout_graceful_shutdown=1)
    config.load()
    server = GatewayServer(config)
    # The server's own start and stop, without ``serve``'s main loop: that loop notices an exit
    # request only every 0.1 s and its shutdown sleeps 0.1 s more, which over the suite's
    # hundreds of gateways added minutes of idle waiting.
    server.lifespan = config.lifespan_class(config)
    try:
        await server.startup(sockets=[sock])
    except SystemExit:
        sock.close()
        raise RuntimeError("the gateway did not start (see the log above)") from None
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(_stop(server), 10)
        sock.close()


async def _stop(server: GatewayServer) -> None:
    """What ``uvicorn.Server.shutdown`` does, polling for the connections to go instead of sleeping."""
    for listener in server.servers:
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()
    deadline = asyncio.get_running_loop().time() + server.config.timeout_graceful_shutdown
    while server.server_state.connections and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    for task in server.server_state.tasks:
        task.cancel()
    for listener in server.servers:
        await listener.wait_closed()
    await server.lifespan.shutdown()


async def access_line(capfd: pytest.CaptureFixture[str], rid: str) -> dict[str, Any]:
    """The access-log line of request ``rid`` (the log is written once per event-loop turn)."""
    for _ in range(100):
        await asyncio.sleep(0)
        for line in capfd.readouterr().err.splitlines():
            if line.startswith("{"):
                fields = json.loads(line)
                if fields.get("logger") == "waypost.access" and fields.get("request_id") == rid:
                    return dict(fields)
    raise AssertionError(f"no access-log line for {rid}")
