"""Secrets generated when none are configured: random, kept in an owner-only file, made once even
when several workers start together, and never a constant of the source code."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from cryptography.fernet import Fernet

from waypost.security.crypto import generate_key
from waypost.security.generated_secrets import load_or_create, resolve_secrets, secrets_file_path
from waypost.settings import SECRETS_FILE_NAME, ConfigError, Settings, load_settings

SRC = Path(__file__).resolve().parents[2] / "src"
# The constants older versions used when nothing was configured, as they appeared in the source.
OLD_JWT_SECRET = "waypost-insecure-default-jwt-secret-change-me"
OLD_DEV_KEY = "d2F5cG9zdC1kZXZlbG9wbWVudC1rZXktbm90LXNhZmU="


def sqlite_settings(directory: Path, **security: object) -> Settings:
    return Settings.model_validate(
        {"database": {"url": f"sqlite:///{directory}/gateway.db"}, "security": security}
    )


def test_the_file_is_created_owner_only_with_random_values(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE_NAME
    secrets = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secrets.jwt_secret) >= 32
    Fernet(secrets.encryption_key.encode())  # a usable key
    assert orjson.loads(path.read_bytes()) == {
        "jwt_secret": secrets.jwt_secret,
        "encryption_key": secrets.encryption_key,
    }
    assert load_or_create(tmp_path / "other.json").jwt_secret != secrets.jwt_secret
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", SECRETS_FILE_NAME]  # no leftovers


def test_a_second_load_reuses_the_file(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE_NAME
    assert load_or_create(path) == load_or_create(path)


def test_threads_starting_together_agree_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE_NAME
    barrier = threading.Barrier(16)
    found: list[str] = []

    def start() -> None:
        barrier.wait()
        found.append(load_or_create(path).jwt_secret)

    threads = [threading.Thread(target=start) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 16
    assert set(found) == {orjson.loads(path.read_bytes())["jwt_secret"]}


def test_processes_starting_together_agree_on_one_file(tmp_path: Path) -> None:
    """Workers are processes: each waits, imported and ready, for one go, then creates or reads."""
    path = tmp_path / SECRETS_FILE_NAME
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from waypost.security.generated_secrets import load_or_create\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "s = load_or_create(Path(sys.argv[1]))\n"
        "print(s.jwt_secret, s.encryption_key, flush=True)\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    answers = {worker.communicate(timeout=60)[0] for worker in workers}
    assert all(worker.returncode == 0 for worker in workers)
    doc = orjson.loads(path.read_bytes())
    assert answers == {f"{doc['jwt_secret']} {doc['encryption_key']}\n"}


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE_NAME
    load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0644\).*chmod 600"):
        load_or_create(path)


def test_a_damaged_file_is_refused_without_showing_its_content(tmp_path: Path) -> None:
    path = tmp_path / SECRETS_FILE_NAME
    path.write_text('{"jwt_secret": "short-and-secret"}')
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is damaged") as caught:
        load_or_create(path)
    assert "short-and-secret" not in str(caught.value)


def test_a_directory_that_cannot_hold_the_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot create the generated-secrets file"):
        load_or_create(tmp_path / "missing" / SECRETS_FILE_NAME)


def test_by_default_the_file_is_beside_the_sqlite_database(tmp_path: Path) -> None:
    assert secrets_file_path(sqlite_settings(tmp_path)) == tmp_path / SECRETS_FILE_NAME


def test_a_configured_path_wins(tmp_path: Path) -> None:
    chosen = tmp_path / "elsewhere.json"
    assert secrets_file_path(sqlite_settings(tmp_path, secrets_file=str(chosen))) == chosen


def test_with_postgresql_the_file_is_beside_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "waypost.yaml"
    config.write_text("database: {url: 'postgresql://db.example/waypost'}\n")
    assert secrets_file_path(load_settings(config, {})) == tmp_path / SECRETS_FILE_NAME


def test_with_postgresql_and_no_config_file_the_file_is_in_the_current_directory() -> None:
    settings = Settings.model_validate({"database": {"url": "postgresql://db.example/waypost"}})
    assert secrets_file_path(settings) == Path(SECRETS_FILE_NAME)


def test_a_relative_secrets_file_is_beside_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "waypost.yaml"
    config.write_text("security: {secrets_file: keys/secrets.json}\n")
    assert secrets_file_path(load_settings(config, {})) == tmp_path / "keys" / "secrets.json"


def test_configured_secrets_are_used_and_nothing_is_generated(tmp_path: Path) -> None:
    key = generate_key()
    settings = Settings.model_validate(
        {
            "database": {"url": f"sqlite:///{tmp_path}/gateway.db"},
            "auth": {"jwt_secret": "a-real-secret-of-some-length-0123456789"},
            "security": {"encryption_keys": [key]},
        }
    )
    resolved = resolve_secrets(settings)
    assert (resolved.jwt_secret, resolved.encryption_keys, resolved.generated) == (
        "a-real-secret-of-some-length-0123456789",
        [key],
        None,
    )
    assert not list(tmp_path.iterdir())


def test_generated_secrets_are_announced_in_one_line_without_their_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="waypost"):
        resolved = resolve_secrets(sqlite_settings(tmp_path))
    assert resolved.generated is not None
    lines = [r for r in caplog.records if r.name.startswith("waypost")]
    assert len(lines) == 1
    text = lines[0].getMessage()
    assert str(tmp_path / SECRETS_FILE_NAME) in text and "generated" in text
    assert resolved.jwt_secret not in text and resolved.encryption_keys[0] not in text


def test_only_the_missing_secret_is_generated(tmp_path: Path) -> None:
    key = generate_key()
    resolved = resolve_secrets(sqlite_settings(tmp_path, encryption_keys=[key]))
    assert resolved.encryption_keys == [key]
    assert resolved.generated is not None and resolved.jwt_secret == resolved.generated.jwt_secret


def test_the_old_constant_secrets_are_gone_from_the_source() -> None:
    """The public development key survives only as the decrypt-only legacy key of the migration."""
    found = {
        str(path.relative_to(SRC)): text
        for path in SRC.rglob("*.py")
        if OLD_JWT_SECRET in (text := path.read_text()) or OLD_DEV_KEY in text
    }
    assert set(found) == {"waypost/security/key_rotation.py"}
    text = found["waypost/security/key_rotation.py"]
    assert OLD_JWT_SECRET not in text
    assert re.findall(r"^(\w+) = \"" + re.escape(OLD_DEV_KEY), text, re.M) == ["LEGACY_DEV_ENCRYPTION_KEY"]
    assert text.count(OLD_DEV_KEY) == 1
    for name in ("DEFAULT_JWT_SECRET", "DEV_ENCRYPTION_KEY"):
        assert not [p for p in SRC.rglob("*.py") if re.search(rf"\b{name}\b", p.read_text())], name


def test_file_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = tmp_path / SECRETS_FILE_NAME
        load_or_create(path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
