"""Commands that need no running gateway: ``db upgrade`` and ``secrets generate-key``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cryptography.fernet import Fernet
from typer.testing import CliRunner

from waypost.cli.main import app


def test_db_upgrade_creates_the_schema_in_a_fresh_sqlite_file(tmp_path: Path) -> None:
    config = tmp_path / "waypost.yaml"
    config.write_text("database:\n  url: sqlite:///gateway.db\n")

    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])

    assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"users", "groups", "api_tokens", "secrets"} <= tables
    assert revision


def test_db_upgrade_twice_is_harmless(tmp_path: Path) -> None:
    config = tmp_path / "waypost.yaml"
    config.write_text("database:\n  url: sqlite:///gateway.db\n")

    for _ in range(2):
        result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])
        assert result.exit_code == 0, result.output


def test_db_upgrade_with_an_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "waypost.yaml"
    config.write_text("database:\n  url: mysql://x\n")

    result = CliRunner().invoke(app, ["db", "upgrade", "--config", str(config)])

    assert result.exit_code == 2
    assert "database.url" in result.stderr


def test_generate_key_prints_a_fernet_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["secrets", "generate-key"])

    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"


def test_generate_key_gives_a_new_key_each_time() -> None:
    keys = {CliRunner().invoke(app, ["secrets", "generate-key"]).stdout for _ in range(2)}

    assert len(keys) == 2
