"""``waypost audit trail`` and ``waypost audit verify``, against a gateway or (``--local``) its
database, which the tests tamper with directly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli.conftest import Cli, GatewayThread, gateway_settings
from tests.dbs import fresh_database
from tests.harness import serve
from waypost.settings import DatabaseSettings
from waypost.store import Store


class TrailGateway(GatewayThread):
    """A gateway that also says which database it runs on, so a test can tamper with it."""

    database: dict[str, Any]

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        try:
            async with fresh_database() as database, serve(gateway_settings(database)) as url:
                self.database = database
                self.url = url
                self._up.set()
                await self._shutdown.wait()
        except BaseException as exc:
            self.error = exc
        finally:
            self._up.set()


@pytest.fixture
def gateway() -> Iterator[TrailGateway]:
    """A gateway of its own per test: tampering with one trail must not spill into the next test."""
    thread = TrailGateway()
    thread.start()
    try:
        thread.wait_started()
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def admin(gateway: TrailGateway, tmp_path: Path) -> Cli:
    cli = Cli(gateway.url, tmp_path / "credentials.json")
    cli.login()
    return cli


def tamper(gateway: TrailGateway, *statements: str) -> None:
    """Run SQL on the gateway's database behind its back."""

    async def run() -> None:
        store = Store.from_settings(DatabaseSettings.model_validate(gateway.database))
        try:
            async with store.engine.begin() as conn:
                for statement in statements:
                    await conn.execute(sa.text(statement))
        finally:
            await store.close()

    asyncio.run(run())


def config_file(gateway: TrailGateway, tmp_path: Path) -> str:
    path = tmp_path / "waypost.yaml"
    path.write_text(json.dumps({"database": gateway.database}))  # JSON is YAML
    return str(path)


def changes(admin: Cli) -> list[int]:
    """Three admin changes; the ids of the trail's entries, oldest first."""
    admin.ok("groups", "create", "red")
    admin.ok("groups", "create", "blue")
    admin.ok("groups", "update", "blue", "--description", "the blue team")
    return [e["id"] for e in reversed(admin.json("audit", "trail")["data"])]


def test_the_trail_lists_who_changed_what(admin: Cli) -> None:
    changes(admin)
    out = admin.ok("audit", "trail")
    lines = out.splitlines()
    assert "group.create" in out and "admin@localhost" in out and "127.0.0.1" in out
    update = next(line for line in lines if "group.update" in line)
    assert "description:  -> the blue team" in update
    newest_first = [line for line in lines if "group." in line]
    assert "group.update" in newest_first[0] and "group.create" in newest_first[-1]
    only = admin.json("audit", "trail", "--action", "group.create", "--limit", "1")
    assert [e["after"]["name"] for e in only["data"]] == ["blue"]
    assert "action" in admin.fails("audit", "trail", "--action", "Not An Action")


def test_verify_passes_on_an_intact_trail_remotely_and_locally(
    admin: Cli, gateway: TrailGateway, tmp_path: Path
) -> None:
    ids = changes(admin)
    out = admin.ok("audit", "verify")
    assert out.startswith("ok: 3 entries") and f"entry {ids[-1]}" in out
    local = admin.json("audit", "verify", "--local", "--config", config_file(gateway, tmp_path))
    assert local["ok"] is True and local["entries"] == 3
    assert local == admin.json("audit", "verify")


def test_verify_names_an_edited_entry_and_exits_1(admin: Cli, gateway: TrailGateway, tmp_path: Path) -> None:
    ids = changes(admin)
    tamper(gateway, f"UPDATE admin_audit SET actor_email = 'mallory@example.com' WHERE id = {ids[1]}")
    remote = admin.run("audit", "verify")
    local = admin.run("audit", "verify", "--local", "--config", config_file(gateway, tmp_path))
    for result in (remote, local):
        assert result.exit_code == 1, result.output
        assert "TAMPERED: 1 break(s) in 3 entries" in result.stdout
        assert f"edited: entry {ids[1]} was edited" in result.stdout


def test_verify_names_a_removed_and_a_reordered_entry(admin: Cli, gateway: TrailGateway) -> None:
    ids = changes(admin)
    admin.ok("groups", "create", "green")
    ids.append(admin.json("audit", "trail", "--limit", "1")["data"][0]["id"])
    tamper(
        gateway,
        f"DELETE FROM admin_audit WHERE id = {ids[0]}",
        f"UPDATE admin_audit SET id = -1 WHERE id = {ids[2]}",
        f"UPDATE admin_audit SET id = {ids[2]} WHERE id = {ids[3]}",
        f"UPDATE admin_audit SET id = {ids[3]} WHERE id = -1",
    )
    result = admin.run("audit", "verify")
    assert result.exit_code == 1
    problems = [line.strip() for line in result.stdout.splitlines()[1:]]
    assert problems[0].startswith(f"removed: entries before entry {ids[1]} were removed")
    assert problems[1].startswith(f"reordered: entry {ids[2]} is out of order")


def test_an_anchor_catches_the_newest_entry_removed(admin: Cli, gateway: TrailGateway) -> None:
    changes(admin)
    anchor = admin.json("audit", "verify")["head_hash"]
    assert admin.ok("audit", "verify", "--anchor", anchor).startswith("ok:")
    tamper(gateway, "DELETE FROM admin_audit WHERE id = (SELECT MAX(id) FROM admin_audit)")
    assert admin.ok("audit", "verify").startswith("ok: 2 entries")
    result = admin.run("audit", "verify", "--anchor", anchor)
    assert result.exit_code == 1 and f"the anchor {anchor} is not in the trail" in result.stdout
    assert admin.run("audit", "verify", "--anchor", "abc").exit_code == 2


def test_verify_local_says_when_the_database_cannot_be_read(admin: Cli, tmp_path: Path) -> None:
    config = tmp_path / "waypost.yaml"
    config.write_text("database:\n  url: sqlite:///nowhere/at/all.db\n")
    assert "cannot read the audit trail" in admin.fails("audit", "verify", "--local", "--config", str(config))
