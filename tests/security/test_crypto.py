"""Secret encryption: Fernet with rotation, clear errors that reveal nothing."""

from __future__ import annotations

import pytest

from waypost.security.crypto import SecretBox, SecretUnreadable, generate_key
from waypost.settings import SecuritySettings

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


def test_a_key_added_for_reading_never_encrypts() -> None:
    box = SecretBox([NEW]).also_reading(OLD)
    assert box.decrypt(SecretBox([OLD]).encrypt("v")) == "v"
    assert not SecretBox([OLD]).reads(box.encrypt("v"))
    assert SecretBox([NEW]).reads(box.encrypt("v"))


def test_reads_tells_which_ciphertexts_a_box_can_decrypt() -> None:
    assert SecretBox([OLD]).reads(SecretBox([OLD]).encrypt("v"))
    assert not SecretBox([NEW]).reads(SecretBox([OLD]).encrypt("v"))
    assert not SecretBox([NEW]).reads("not-a-fernet-token")


def test_generated_keys_are_valid_and_distinct() -> None:
    assert SecuritySettings(encryption_keys=[generate_key()]).encryption_keys
    assert generate_key() != generate_key()
