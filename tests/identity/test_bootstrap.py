"""First start: migrations run, admin@localhost is created once with WAYPOST_ADMIN_PASSWORD, and
development defaults are refused off loopback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.fernet import Fernet, InvalidToken

from tests.harness import ADMIN_EMAIL, ADMIN_PASSWORD, FAST_HASHING, running, settings
from waypost.app import create_app
from waypost.security.bootstrap import DEFAULT_ADMIN_PASSWORD, StartupError, start_container
from waypost.security.generated_secrets import secrets_file_path
from waypost.security.jwt_tokens import JwtCodec
from waypost.settings import DatabaseSettings, Settings
from waypost.store import Store

REAL_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
# What older versions used when nothing was configured; both are public.
OLD_JWT_SECRET = "waypost-insecure-default-jwt-secret-change-me"
OLD_DEV_KEY = "d2F5cG9zdC1kZXZlbG9wbWVudC1rZXktbm90LXNhZmU="
OFF_LOOPBACK = {
    "server": {"host": "0.0.0.0"},
    "security": {"encryption_keys": [REAL_KEY]},
}


def off_loopback(database: dict[str, Any], **auth: Any) -> Settings:
    return Settings.model_validate(
        {
            **OFF_LOOPBACK,
            "database": database,
            "auth": {
                "jwt_secret": "a-real-secret-of-some-length-0123456789",
                "password_hashing": FAST_HASHING,
                **auth,
            },
        }
    )


async def start_and_stop(config: Settings) -> Any:
    """Run the gateway's start-up sequence without serving; return its container."""
    app = create_app(config, configure_logs=False)
    container = app.container  # type: ignore[attr-defined]
    await start_container(container)
    return container


async def test_first_start_creates_the_administrator(database: dict[str, Any]) -> None:
    async with running(settings(database=database)) as gw:
        admin = await gw.container.store.users.by_email(ADMIN_EMAIL)
        assert admin is not None
        assert admin.role == "admin"
        assert gw.container.passwords.verify(admin.password_hash, ADMIN_PASSWORD)
        assert ADMIN_PASSWORD not in admin.password_hash


async def test_a_restart_keeps_the_administrators_password(database: dict[str, Any]) -> None:
    async with running(settings(database=database)):
        pass
    later = settings(database=database, auth={"admin_password": "another-password-entirely-77"})
    async with running(later) as gw:
        admin = await gw.container.store.users.by_email(ADMIN_EMAIL)
        assert gw.container.passwords.verify(admin.password_hash, ADMIN_PASSWORD)
        assert await gw.container.store.users.count() == 1


async def test_loopback_mode_falls_back_to_the_default_password(database: dict[str, Any]) -> None:
    config = settings(database=database, auth={"admin_password": None})
    async with running(config) as gw:
        admin = await gw.container.store.users.by_email(ADMIN_EMAIL)
        assert gw.container.passwords.verify(admin.password_hash, DEFAULT_ADMIN_PASSWORD)


async def test_off_loopback_a_missing_admin_password_is_refused(database: dict[str, Any]) -> None:
    container = create_app(off_loopback(database), configure_logs=False).container  # type: ignore[attr-defined]
    with pytest.raises(StartupError, match="set WAYPOST_ADMIN_PASSWORD"):
        await start_container(container)
    await container.store.close()


@pytest.mark.parametrize("password", ["admin", "password", DEFAULT_ADMIN_PASSWORD, "short1!"])
async def test_off_loopback_a_weak_admin_password_is_refused(database: dict[str, Any], password: str) -> None:
    config = off_loopback(database, admin_password=password)
    container = create_app(config, configure_logs=False).container  # type: ignore[attr-defined]
    with pytest.raises(StartupError, match="WAYPOST_ADMIN_PASSWORD is too weak"):
        await start_container(container)
    assert await container.store.users.count() == 0
    await container.store.close()


async def test_off_loopback_a_strong_admin_password_is_accepted(database: dict[str, Any]) -> None:
    config = off_loopback(database, admin_password="Quiet-Lantern-Harbor-2026")
    container = create_app(config, configure_logs=False).container  # type: ignore[attr-defined]
    await start_container(container)
    assert (await container.store.users.by_email(ADMIN_EMAIL)) is not None
    await container.store.close()


async def test_the_encryption_canary_is_written_once(database: dict[str, Any]) -> None:
    async with running(settings(database=database)) as gw:
        first = await gw.container.store.kv.get("encryption_canary")
    async with running(settings(database=database)) as gw:
        second = await gw.container.store.kv.get("encryption_canary")
    assert first is not None
    assert first == second


async def login(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        resp = await http.post("/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


async def me(url: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        return await http.get("/me", headers={"authorization": f"Bearer {token}"})


async def test_without_configured_secrets_a_restart_reuses_the_generated_ones(
    database: dict[str, Any],
) -> None:
    async with running(settings(database=database)) as gw:
        token = await login(gw.url)
        path = secrets_file_path(gw.container.settings)
        first = path.read_bytes()
    async with running(settings(database=database)) as gw:
        assert secrets_file_path(gw.container.settings) == path
        resp = await me(gw.url, token)  # signed before the restart
    assert resp.status_code == 200, resp.text
    assert path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_an_access_token_signed_with_the_old_built_in_secret_is_refused(
    database: dict[str, Any],
) -> None:
    async with running(settings(database=database)) as gw:
        admin = await gw.container.store.users.by_email(ADMIN_EMAIL)
        forged = JwtCodec(OLD_JWT_SECRET, "HS256", 900).issue(admin.id, ADMIN_EMAIL, "admin")
        resp = await me(gw.url, forged)
        assert (await me(gw.url, await login(gw.url))).status_code == 200
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"


async def test_secrets_stored_under_the_old_development_key_are_re_encrypted_at_start(
    database: dict[str, Any],
) -> None:
    legacy = Fernet(OLD_DEV_KEY.encode())
    store = Store.from_settings(DatabaseSettings.model_validate(database))
    await store.upgrade()
    await store.secrets.create("openai", ciphertext=legacy.encrypt(b"sk-old-value").decode())
    await store.kv.set("encryption_canary", legacy.encrypt(b"waypost encryption canary").decode())
    await store.close()

    async with running(settings(database=database)) as gw:
        store = gw.container.store
        kept = orjson.loads(secrets_file_path(gw.container.settings).read_bytes())
        secret = await store.secrets.ciphertext("openai")
        canary = await store.kv.get("encryption_canary")
    generated = Fernet(kept["encryption_key"])
    assert generated.decrypt(secret.encode()) == b"sk-old-value"
    assert generated.decrypt(canary.encode()) == b"waypost encryption canary"
    for row in (secret, canary):
        with pytest.raises(InvalidToken):
            legacy.decrypt(row.encode())


def test_serve_refuses_a_missing_admin_password_with_the_reason_alone(tmp_path: Path) -> None:
    config = tmp_path / "waypost.yaml"
    config.write_text(
        "server: {host: 0.0.0.0, port: 1}\n"
        "auth: {jwt_secret: a-real-secret-of-some-length-0123456789}\n"
        f"security: {{encryption_keys: [{REAL_KEY}]}}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "WAYPOST_ADMIN_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "waypost.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode != 0
    assert "cannot start: first start: set WAYPOST_ADMIN_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr
