"""Password hashing (argon2id) and the strength rule."""

from __future__ import annotations

import pytest

from waypost.security.passwords import PasswordHasher, weak_password_reason
from waypost.settings import PasswordHashing

FAST = PasswordHashing(time_cost=1, memory_kib=8, parallelism=1)


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(FAST)


def test_a_hash_is_argon2id_and_verifies_the_password(hasher: PasswordHasher) -> None:
    hashed = hasher.hash("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert hasher.verify(hashed, "correct horse battery")


def test_a_wrong_password_is_false_not_an_exception(hasher: PasswordHasher) -> None:
    assert hasher.verify(hasher.hash("correct horse battery"), "wrong") is False


def test_a_malformed_hash_is_false_not_an_exception(hasher: PasswordHasher) -> None:
    assert hasher.verify("not-a-hash", "anything") is False


def test_the_same_password_hashes_differently_each_time(hasher: PasswordHasher) -> None:
    assert hasher.hash("same password!") != hasher.hash("same password!")


def test_a_hash_made_with_other_parameters_needs_rehashing(hasher: PasswordHasher) -> None:
    other = PasswordHasher(PasswordHashing(time_cost=2, memory_kib=8, parallelism=1))
    assert hasher.needs_rehash(other.hash("pw")) is True
    assert hasher.needs_rehash(hasher.hash("pw")) is False
    assert hasher.needs_rehash("garbage") is True


def test_dummy_verify_runs_without_a_stored_hash(hasher: PasswordHasher) -> None:
    hasher.dummy_verify()
    hasher.dummy_verify()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short1!", "at least 12 characters"),
        ("123456789012345", "only digits"),
        ("Password123!", "well-known or default password"),
        ("ADMIN-admin-2024", "well-known or default password"),
        ("waypost!!2024", "well-known or default password"),
        ("changeme1234", "well-known or default password"),
        ("aaaaaaaaaaaaaaaaaaaa", "too few different characters"),
        ("lowercaseonly", "needs 3 of"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, reason: str) -> None:
    assert reason in (weak_password_reason(password) or "")


def test_the_email_is_not_a_password() -> None:
    assert "e-mail" in (weak_password_reason("jane.doe@example.com", "Jane.Doe@example.com") or "")
    assert "e-mail" in (weak_password_reason("JaneDoe2024!!", "janedoe@example.com") or "")


@pytest.mark.parametrize("password", ["Tr0ub4dor&3x!", "correct horse battery staple", "zq8#Lm2!vP0w"])
def test_strong_passwords_pass(password: str) -> None:
    assert weak_password_reason(password, "someone@example.com") is None
