"""Password hashing (argon2id) and the strength rule for passwords people choose."""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

from waypost.settings import PasswordHashing

MIN_LENGTH = 12
# Defaults, product names and the most common leaked passwords: refused even when long enough
# (compared case-insensitively, also with digits and symbols stripped: "Password123!" is "password",
# "Admin-admin-1" is "admin" twice).
COMMON_PASSWORDS = frozenset(
    {
        "admin",
        "administrator",
        "changeme",
        "default",
        "letmein",
        "login",
        "master",
        "password",
        "passwd",
        "passwort",
        "qwerty",
        "qwertyuiop",
        "root",
        "secret",
        "superuser",
        "test",
        "waypost",
        "welcome",
        "iloveyou",
        "abc",
        "abcdef",
    }
)


class PasswordHasher:
    """argon2id with the configured cost. Sync (CPU-bound): call it through ``asyncio.to_thread``."""

    def __init__(self, settings: PasswordHashing) -> None:
        self._argon = _Argon2(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_kib,
            parallelism=settings.parallelism,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        return self._argon.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; never raises for a mismatch or a malformed hash."""
        try:
            return self._argon.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters (re-hash it after a successful login)."""
        try:
            return self._argon.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    def dummy_verify(self) -> None:
        """Spend the cost of one verification, so an unknown e-mail answers as slowly as a known one."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy_hash, "not-the-password")


def weak_password_reason(password: str, email: str | None = None) -> str | None:
    """Why ``password`` is too weak to accept, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters long"
    if password.isdigit():
        return "the password may not be only digits"
    lowered = password.lower()
    letters = re.sub(r"[^a-z]", "", lowered)
    if lowered in COMMON_PASSWORDS or any(_repeats(letters, word) for word in COMMON_PASSWORDS):
        return "the password is a well-known or default password"
    if email:
        address = email.lower()
        local = address.split("@", 1)[0]
        if lowered in (address, local) or (len(local) >= 4 and letters == re.sub(r"[^a-z]", "", local)):
            return "the password may not be the e-mail address"
    if len(set(password)) < 5:
        return "the password repeats too few different characters"
    kinds = sum(
        bool(re.search(pattern, password)) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]")
    )
    if kinds < 3 and len(password) < 16:
        return (
            "the password needs 3 of: lower-case letters, upper-case letters, digits, symbols "
            "(or at least 16 characters)"
        )
    return None


def _repeats(letters: str, word: str) -> bool:
    """``letters`` is ``word`` once or several times ("adminadmin")."""
    count, rest = divmod(len(letters), len(word))
    return count > 0 and rest == 0 and letters == word * count
