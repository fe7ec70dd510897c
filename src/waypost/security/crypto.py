"""Encryption of stored secrets (Fernet, with key rotation through MultiFernet)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from waypost.core.errors import GatewayError


class SecretUnreadable(GatewayError):
    """A stored secret cannot be decrypted with the configured keys: an operator problem."""

    status = 500
    openai_type = "server_error"
    anthropic_type = "api_error"


def _unreadable(name: str | None) -> SecretUnreadable:
    which = f"the stored secret {name!r}" if name else "a stored secret"
    return SecretUnreadable(
        f"{which} cannot be decrypted: security.encryption_keys do not match the keys the secrets were "
        "encrypted with. Put the previous key back as a later entry of the list, then run "
        "'waypost secrets rotate'."
    )


def generate_key() -> str:
    """A new random Fernet key (what ``waypost secrets generate-key`` prints)."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """The first key encrypts; every key decrypts (so an old key keeps working until rotation)."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._keys = list(keys)
        self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])

    def also_reading(self, key: str) -> SecretBox:
        """A box with the same primary key that also decrypts with ``key`` (never encrypts with it)."""
        return SecretBox([*self._keys, key])

    def reads(self, ciphertext: str) -> bool:
        """Whether one of the keys decrypts ``ciphertext``."""
        try:
            self._fernet.decrypt(ciphertext.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, *, name: str | None = None) -> str:
        """The plaintext; ``SecretUnreadable`` (naming the secret ``name`` when given) if no key fits."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise _unreadable(name) from None

    def rotate(self, ciphertext: str, *, name: str | None = None) -> str:
        """The same plaintext re-encrypted with the primary key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise _unreadable(name) from None
