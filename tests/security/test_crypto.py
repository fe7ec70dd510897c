"""Secret encryption: Fernet with rotation, clear errors that reveal nothing."""

from __future__ import annotations

import pytest

from waypost.security.crypto import SecretBox, SecretUnreadable, generate_key
from waypost.settings import DEV_ENCRYPTION_KEY, SecuritySettings

OLD, NEW = generate_key(), generate_key()


def test_encrypt_then_decrypt_gives_the_plaintext_back() -> None:
    box = SecretBox([OLD])
    ciphertext = box.encrypt("sk-live-value")
    assert "sk-live-value" not in ciphertext
    assert box.decrypt(ciphertext) == "sk-live-value"


def test_each_encryption_differs() -> None:
    box = SecretBox([OLD])
    assert box.encrypt("same") != box.encrypt("same")


def test_an_older_key_later_in_the_list_still_decrypts() -> None:
    ciphertext = SecretBox([OLD]).encrypt("value")
    assert SecretBox([NEW, OLD]).decrypt(ciphertext) == "value"


def test_rotate_reencrypts_with_the_primary_key() -> None:
    rotated = SecretBox([NEW, OLD]).rotate(SecretBox([OLD]).encrypt("value"))
    assert SecretBox([NEW]).decrypt(rotated) == "value"


def test_a_secret_under_an_unknown_key_is_unreadable_with_an_operator_message() -> None:
    ciphertext = SecretBox([OLD]).encrypt("sk-live-value")
    with pytest.raises(SecretUnreadable) as caught:
        SecretBox([NEW]).decrypt(ciphertext, name="openai")
    err = caught.value
    assert err.status == 500
    assert "'openai'" in err.message and "security.encryption_keys do not match" in err.message
    for leaked in ("sk-live-value", OLD, NEW, ciphertext):
        assert leaked not in err.message


def test_rotating_an_unreadable_secret_raises_the_same_error() -> None:
    with pytest.raises(SecretUnreadable):
        SecretBox([NEW]).rotate(SecretBox([OLD]).encrypt("x"))


def test_garbage_ciphertext_is_unreadable() -> None:
    with pytest.raises(SecretUnreadable):
        SecretBox([OLD]).decrypt("not-a-fernet-token")


def test_from_settings_uses_the_configured_keys() -> None:
    box = SecretBox.from_settings(SecuritySettings(encryption_keys=[NEW, OLD]))
    assert not box.primary_is_dev_key
    assert SecretBox([NEW]).decrypt(box.encrypt("v")) == "v"


def test_from_settings_without_keys_falls_back_to_the_dev_key() -> None:
    box = SecretBox.from_settings(SecuritySettings())
    assert box.primary_is_dev_key
    assert SecretBox([DEV_ENCRYPTION_KEY]).decrypt(box.encrypt("v")) == "v"


def test_generated_keys_are_valid_and_distinct() -> None:
    assert SecuritySettings(encryption_keys=[generate_key()]).encryption_keys
    assert generate_key() != generate_key()
