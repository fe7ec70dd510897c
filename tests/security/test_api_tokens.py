"""API tokens and refresh tokens: random, shown once, stored as digests."""

from __future__ import annotations

import hashlib
import re

from waypost.security.api_tokens import hash_api_token, new_api_token, presented_token
from waypost.security.jwt_tokens import hash_refresh_token, new_refresh_token


def test_a_new_token_has_the_wp_prefix_and_43_url_safe_characters() -> None:
    plaintext, _, _ = new_api_token()
    assert re.fullmatch(r"wp-[A-Za-z0-9_-]{43}", plaintext)


def test_the_stored_hash_is_the_sha256_of_the_plaintext() -> None:
    plaintext, digest, _ = new_api_token()
    assert digest == hashlib.sha256(plaintext.encode()).hexdigest() == hash_api_token(plaintext)


def test_the_display_prefix_is_the_first_ten_characters() -> None:
    plaintext, _, prefix = new_api_token()
    assert prefix == plaintext[:10] and len(prefix) == 10


def test_tokens_are_unique() -> None:
    assert len({new_api_token()[0] for _ in range(100)}) == 100


def test_a_bearer_token_is_read_from_the_authorization_header() -> None:
    assert presented_token({"authorization": "Bearer wp-abc"}) == "wp-abc"
    assert presented_token({"authorization": "bearer   wp-abc  "}) == "wp-abc"


def test_x_api_key_and_azure_api_key_headers_are_read_too() -> None:
    assert presented_token({"x-api-key": "wp-x"}) == "wp-x"
    assert presented_token({"api-key": "wp-y"}) == "wp-y"


def test_other_authorization_schemes_and_no_header_give_none() -> None:
    assert presented_token({"authorization": "Basic dXNlcjpwYXNz"}) is None
    assert presented_token({"authorization": "Bearer "}) is None
    assert presented_token({}) is None


def test_a_refresh_token_is_opaque_and_stored_as_its_digest() -> None:
    plaintext, digest = new_refresh_token()
    assert plaintext.startswith("wpr-") and len(plaintext) == 47
    assert digest == hash_refresh_token(plaintext) == hashlib.sha256(plaintext.encode()).hexdigest()
