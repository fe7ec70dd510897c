"""Re-encrypting what is stored with the primary key: ``waypost secrets rotate``, and at start the
move of older databases off the public development key; the canary that tells whether the keys
still read what is stored."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from waypost.security.crypto import SecretBox

if TYPE_CHECKING:
    from waypost.store import Store

log = logging.getLogger("waypost.security")

CANARY_KEY = "encryption_canary"
CANARY_TEXT = "waypost encryption canary"

# Before secrets were generated per gateway, one without security.encryption_keys encrypted with this
# constant, which shipped in the source and so is public. It is kept for one purpose only: to decrypt,
# at start, what older databases stored under it, so that it can be re-encrypted with the gateway's own
# key. It never encrypts anything and is never a default.
LEGACY_DEV_ENCRYPTION_KEY = "d2F5cG9zdC1kZXZlbG9wbWVudC1rZXktbm90LXNhZmU="


async def reencrypt_stored(store: Store, box: SecretBox, *, only: Callable[[str], bool] | None = None) -> int:
    """Re-encrypt the stored secrets and the canary (those ``only`` selects, by ciphertext) with the
    primary key of ``box``; returns how many secrets were re-encrypted. Safe with several workers at
    once: a secret changed meanwhile is left as it is."""
    current = {
        name: text
        for name, text in (await store.secrets.all_ciphertexts()).items()
        if only is None or only(text)
    }
    rotated = {name: box.rotate(text, name=name) for name, text in current.items()}
    count = await store.secrets.replace_ciphertexts(rotated, expected=current) if rotated else 0
    canary = await store.kv.get(CANARY_KEY)
    if canary is not None and (only is None or only(canary)):
        # The status page checks the keys against it: keep it readable by the new primary key.
        await store.kv.set(CANARY_KEY, box.rotate(canary, name=CANARY_KEY))
    return count


async def migrate_from_legacy_dev_key(store: Store, box: SecretBox) -> int:
    """Re-encrypt with ``box``'s primary key what only the legacy development key reads; returns how
    many secrets were moved."""
    legacy = SecretBox([LEGACY_DEV_ENCRYPTION_KEY])

    def stale(ciphertext: str) -> bool:
        return not box.reads(ciphertext) and legacy.reads(ciphertext)

    canary = await store.kv.get(CANARY_KEY)
    moved_canary = canary is not None and stale(canary)
    count = await reencrypt_stored(store, box.also_reading(LEGACY_DEV_ENCRYPTION_KEY), only=stale)
    if count or moved_canary:
        log.warning(
            "re-encrypted %d stored secret(s) found under the old public development key with this "
            "gateway's own encryption key",
            count,
        )
    return count
