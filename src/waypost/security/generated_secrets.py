"""Secrets generated on first start when none are configured (loopback only).

Without ``auth.jwt_secret`` or ``security.encryption_keys`` the gateway makes random ones and keeps
them in a JSON file only its owner can read (``security.secrets_file``; by default beside the SQLite
database, else beside the config file), so later starts and every worker use the same ones. There is
no built-in key: a constant in the source would let anyone sign an admin token or read the secrets.

The file is published atomically and exclusively: the content is written to a private temporary file
which is then hard-linked to its final name. ``link`` fails when the name exists, so workers starting
together all end up reading the one file the first of them published, and nobody ever reads a
half-written one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from waypost.settings import SECRETS_FILE_NAME, ConfigError, Settings

log = logging.getLogger("waypost.security")

JWT_SECRET_BYTES = 48  # 384 bits: at least the hash size of HS384 (and well over HS256's)


@dataclass(frozen=True, slots=True)
class GeneratedSecrets:
    """The generated JWT secret and Fernet key, and the file they are kept in."""

    path: Path
    jwt_secret: str
    encryption_key: str


@dataclass(frozen=True, slots=True)
class ResolvedSecrets:
    """The secrets the gateway runs with: configured ones where set, generated ones otherwise."""

    jwt_secret: str
    encryption_keys: list[str]
    generated: GeneratedSecrets | None  # None when everything is configured


def secrets_file_path(settings: Settings) -> Path:
    """Where generated secrets are kept: ``security.secrets_file``, else beside the SQLite database
    file, else the current directory (``load_settings`` points it beside the config file)."""
    if settings.security.secrets_file:
        return Path(settings.security.secrets_file)
    url = make_url(settings.database.url)
    database = url.database or ""
    if (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
    ):
        return Path(database).parent / SECRETS_FILE_NAME
    return Path(SECRETS_FILE_NAME)


def resolve_secrets(settings: Settings) -> ResolvedSecrets:
    """The JWT secret and encryption keys to run with, generating (or reading back) the missing ones.

    Settings refuse missing secrets off loopback, so generated ones only ever serve a loopback gateway.
    """
    jwt_secret, keys = settings.auth.jwt_secret, list(settings.security.encryption_keys)
    if jwt_secret is not None and keys:
        return ResolvedSecrets(jwt_secret, keys, None)
    generated = load_or_create(secrets_file_path(settings))
    missing = [
        name
        for name, value in (("auth.jwt_secret", jwt_secret), ("security.encryption_keys", keys))
        if not value
    ]
    log.warning(
        "no %s configured: using generated secrets kept in %s (keep that file, and back it up: "
        "stored secrets cannot be read without it)",
        " or ".join(missing),
        generated.path,
    )
    return ResolvedSecrets(jwt_secret or generated.jwt_secret, keys or [generated.encryption_key], generated)


def load_or_create(path: Path) -> GeneratedSecrets:
    """The secrets kept at ``path``, created there with new random values if the file does not exist."""
    path = path.absolute()
    if not path.exists():
        _publish(path, _fresh())
    return _read(path)


def _fresh() -> bytes:
    return orjson.dumps(
        {
            "jwt_secret": secrets.token_urlsafe(JWT_SECRET_BYTES),
            "encryption_key": Fernet.generate_key().decode("ascii"),
        },
        option=orjson.OPT_INDENT_2,
    )


def _publish(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` unless it exists already; owner-only from the first byte."""
    try:
        # mkstemp creates the file with mode 0600, whatever the umask.
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot create the generated-secrets file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another worker was first: use its file
            os.link(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot create the generated-secrets file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def _read(path: Path) -> GeneratedSecrets:
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the generated-secrets file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the generated-secrets file {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"make it private with 'chmod 600 {path}'"
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    jwt_secret = doc.get("jwt_secret") if isinstance(doc, dict) else None
    key = doc.get("encryption_key") if isinstance(doc, dict) else None
    if (
        not isinstance(jwt_secret, str)
        or len(jwt_secret) < 32
        or not isinstance(key, str)
        or not _is_fernet_key(key)
    ):
        raise ConfigError(
            f"the generated-secrets file {path} is damaged (it needs 'jwt_secret' and 'encryption_key'); "
            "restore it from a backup"
        )
    return GeneratedSecrets(path, jwt_secret, key)


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode("ascii"))
    except (ValueError, UnicodeError):
        return False
    return True
