"""The CLI against a real gateway: the gateway runs on loopback in a thread with its own event
loop (the CLI and its test runner are synchronous), on a fresh database per test module."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.dbs import fresh_database
from tests.harness import serve
from waypost.cli.main import app
from waypost.settings import Settings

ADMIN_EMAIL = "admin@localhost"
ADMIN_PASSWORD = "Cli-Test-Admin-Passw0rd!"
JWT_SECRET = "cli-tests-jwt-secret-0123456789abcdef"
MOCK_MODEL = "echo"


def gateway_settings(database: dict[str, Any]) -> Settings:
    return Settings.model_validate(
        {
            "auth": {
                "admin_password": ADMIN_PASSWORD,
                "jwt_secret": JWT_SECRET,
                "cache_ttl": 0,
                "password_hashing": {"time_cost": 1, "memory_kib": 8, "parallelism": 1},
            },
            "security": {"allow_private_targets": True},
            "database": database,
            "logging": {"level": "warning"},
            "models": [{"name": MOCK_MODEL, "provider": "mock"}],
        }
    )


class GatewayThread(threading.Thread):
    """``tests.harness.serve`` in a thread of its own until ``stop()``."""

    def __init__(self) -> None:
        super().__init__(name="waypost-gateway", daemon=True)
        self.url = ""
        self.error: BaseException | None = None
        self._up = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        try:
            async with fresh_database() as database, serve(gateway_settings(database)) as url:
                self.url = url
                self._up.set()
                await self._shutdown.wait()
        except BaseException as exc:
            self.error = exc
        finally:
            self._up.set()

    def wait_started(self) -> str:
        self._up.wait(60)
        if self.error is not None or not self.url:
            raise RuntimeError("the gateway did not start") from self.error
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._shutdown is not None:
            self._loop.call_soon_threadsafe(self._shutdown.set)
        self.join(30)


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    """The base URL of a running gateway with a fresh database, shared by one test module."""
    thread = GatewayThread()
    thread.start()
    try:
        yield thread.wait_started()
    finally:
        thread.stop()


class Cli:
    """Runs ``waypost`` commands in-process against one gateway with its own credentials file;
    keeps every output so a test can check that a secret never appeared in any."""

    def __init__(self, url: str, credentials: Path) -> None:
        self.url = url
        self.credentials = credentials
        self.outputs: list[str] = []

    def run(self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
        environment: dict[str, str | None] = {
            "WAYPOST_URL": self.url,
            "WAYPOST_CREDENTIALS": str(self.credentials),
            "WAYPOST_TOKEN": None,
            **(env or {}),
        }
        result = CliRunner().invoke(app, list(args), input=input, env=environment)
        self.outputs += [result.stdout, result.stderr]
        return result

    def ok(self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> str:
        """Run a command that must succeed; its standard output."""
        result = self.run(*args, input=input, env=env)
        assert result.exit_code == 0, f"waypost {' '.join(args)} -> {result.exit_code}:\n{result.output}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> str:
        """Run a command that must fail with status 1; its standard error."""
        result = self.run(*args, input=input, env=env)
        assert result.exit_code == 1, f"waypost {' '.join(args)} -> {result.exit_code}:\n{result.output}"
        return result.stderr

    def login(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
        self.ok("login", "--email", email, "--password-stdin", input=password + "\n")

    def session(self) -> dict[str, str]:
        doc = json.loads(self.credentials.read_text())
        return next(e for e in doc["gateways"] if e["url"] == self.url)


@pytest.fixture
def cli(gateway: str, tmp_path: Path) -> Cli:
    """The CLI, not logged in."""
    return Cli(gateway, tmp_path / "waypost" / "credentials.json")


@pytest.fixture
def admin(cli: Cli) -> Cli:
    """The CLI logged in as the bootstrap admin."""
    cli.login()
    return cli
