"""Caller authentication. At this stage: a static list of API keys from config."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from waypost.core.errors import Unauthorized


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``Authorization: Bearer``, ``x-api-key`` or ``api-key`` (Azure style)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("x-api-key") or headers.get("api-key") or None


class StaticKeyAuth:
    """Keys are kept only as SHA-256 digests and compared in constant time against all of them."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    @property
    def open(self) -> bool:
        return not self._digests

    def check(self, headers: Mapping[str, str]) -> None:
        if not self._digests:
            return
        key = presented_key(headers)
        if key is None:
            raise Unauthorized(
                "Missing API key: send it as 'Authorization: Bearer <key>' or in the 'x-api-key' header."
            )
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        if not matched:
            raise Unauthorized("Invalid API key.")
