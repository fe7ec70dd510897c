"""API tokens: opaque ``wp-`` strings shown once, stored only as their SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping

TOKEN_PREFIX = "wp-"
DISPLAY_PREFIX_LENGTH = 10  # "wp-" and 7 random characters: enough to tell tokens apart in a list


def new_api_token() -> tuple[str, str, str]:
    """(plaintext, its sha256 hex digest, display prefix). 32 random bytes: 43 url-safe characters."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_api_token(plaintext), plaintext[:DISPLAY_PREFIX_LENGTH]


def hash_api_token(plaintext: str) -> str:
    """The stored form. A fast hash is right here: the tokens are long random strings, not passwords."""
    return hashlib.sha256(plaintext.encode("utf-8", "surrogateescape")).hexdigest()


def presented_token(headers: Mapping[str, str]) -> str | None:
    """The token from ``Authorization: Bearer``, ``x-api-key`` or ``api-key`` (Azure style)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None
