"""Access tokens: issued and verified with the configured HMAC algorithm only; forgeries fail clearly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from waypost.core.errors import Unauthorized
from waypost.security.jwt_tokens import JwtCodec, looks_like_jwt

SECRET = "a-test-secret-long-enough-even-for-hs512-signatures-0123456789abcdef"
CODEC = JwtCodec(SECRET, "HS256", 900)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "7", "email": "a@example.com", "role": "user", "typ": "access", "iat": now}
    return {**base, "exp": now + 600, "iss": "waypost", **overrides}


def forge(payload: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def refused(token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        CODEC.decode(token)
    assert token not in caught.value.message
    return caught.value.message


def test_an_issued_token_decodes_to_its_claims() -> None:
    decoded = CODEC.decode(CODEC.issue(7, "a@example.com", "admin"))
    assert decoded["sub"] == "7" and decoded["email"] == "a@example.com" and decoded["role"] == "admin"
    assert decoded["typ"] == "access" and decoded["iss"] == "waypost"
    assert decoded["exp"] - decoded["iat"] == 900
    assert decoded["jti"]


def test_every_issued_token_has_its_own_id() -> None:
    assert (
        CODEC.decode(CODEC.issue(1, "a@x", "user"))["jti"]
        != CODEC.decode(CODEC.issue(1, "a@x", "user"))["jti"]
    )


def test_an_expired_token_says_so() -> None:
    now = int(time.time())
    assert "expired" in refused(forge(claims(iat=now - 7200, exp=now - 3600)))


def test_a_token_signed_with_another_secret_has_a_bad_signature() -> None:
    assert "bad signature" in refused(
        forge(claims(), key="another-secret-long-enough-even-for-hs512-signatures-0123456789abcdef")
    )


def test_an_unsigned_alg_none_token_is_refused() -> None:
    token = forge(claims(), key=None, algorithm="none")
    assert "signed with 'none', but this gateway only accepts HS256" in refused(token)


def test_a_hand_made_alg_none_token_with_an_empty_signature_is_refused() -> None:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims(role='admin'))}."
    assert "'none'" in refused(token)


def test_an_rs256_token_is_refused_whatever_key_signed_it() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "signed with 'RS256'" in refused(forge(claims(), key=private, algorithm="RS256"))


def test_hs_rs_confusion_with_a_public_key_as_hmac_secret_is_refused() -> None:
    # The classic attack: sign HS256 with a server's public key, hoping it is used as the secret.
    public_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims(role="admin")).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    ).rstrip(b"=")
    assert "bad signature" in refused(b".".join([header, body, signature]).decode())


def test_a_token_of_another_hs_algorithm_is_refused() -> None:
    assert "signed with 'HS512'" in refused(forge(claims(), algorithm="HS512"))


def test_a_token_without_exp_is_refused() -> None:
    payload = claims()
    del payload["exp"]
    assert "missing the 'exp' claim" in refused(forge(payload))


def test_a_token_without_sub_is_refused() -> None:
    payload = claims()
    del payload["sub"]
    assert "missing the 'sub' claim" in refused(forge(payload))


def test_a_token_of_another_issuer_is_refused() -> None:
    assert "wrong 'iss'" in refused(forge(claims(iss="someone-else")))


def test_a_token_of_another_type_is_refused() -> None:
    assert "not an access token" in refused(forge(claims(typ="refresh")))


def test_a_token_issued_in_the_future_is_refused() -> None:
    now = int(time.time())
    assert "issued in the future" in refused(forge(claims(iat=now + 3600, exp=now + 7200)))


def test_garbage_is_not_a_well_formed_jwt() -> None:
    assert "not a well-formed JWT" in refused("eyJnot.a.jwt")


def test_a_non_numeric_subject_is_refused() -> None:
    assert "malformed subject" in refused(forge(claims(sub="admin")))


def test_looks_like_jwt_tells_jwts_from_api_tokens() -> None:
    assert looks_like_jwt(CODEC.issue(1, "a@x", "user"))
    assert not looks_like_jwt("wp-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")


def test_only_hmac_algorithms_can_be_configured() -> None:
    with pytest.raises(ValueError, match="HMAC-signed"):
        JwtCodec(SECRET, "RS256", 900)
