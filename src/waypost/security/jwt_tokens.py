"""Short-lived access tokens (HMAC-signed JWTs) and opaque refresh tokens.

Decoding trusts nothing in the token's header: the algorithm is the configured one, checked before
the signature, so ``none``, RS/HS confusion and foreign algorithms fail. Error messages never repeat
the token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import jwt

from waypost.core.errors import Unauthorized

REFRESH_PREFIX = "wpr-"
LEEWAY_SECONDS = 10  # clock skew between replicas
_KNOWN_ALGORITHMS = frozenset(
    {"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)


def _refused(reason: str) -> Unauthorized:
    return Unauthorized(f"Invalid access token: {reason}. Log in again.")


class JwtCodec:
    """Issues and checks the gateway's access tokens."""

    def __init__(self, secret: str, algorithm: str, ttl_seconds: int, issuer: str = "waypost") -> None:
        if not algorithm.startswith("HS"):
            raise ValueError(f"access tokens are HMAC-signed (HS256/384/512), not {algorithm}")
        self._secret = secret
        self.algorithm = algorithm
        self.ttl_seconds = ttl_seconds
        self.issuer = issuer

    def issue(self, user_id: int, email: str, role: str) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "email": email,
            "role": role,
            "typ": "access",
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": secrets.token_urlsafe(12),
            "iss": self.issuer,
        }
        return jwt.encode(claims, self._secret, algorithm=self.algorithm)

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims; ``Unauthorized`` saying what is wrong otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise _refused("not a well-formed JWT") from None
        alg = header.get("alg")
        if alg != self.algorithm:
            shown = (
                f"'{alg}'" if isinstance(alg, str) and alg in _KNOWN_ALGORITHMS else "an unknown algorithm"
            )
            raise _refused(f"signed with {shown}, but this gateway only accepts {self.algorithm}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("Access token expired; refresh it or log in again.") from None
        except jwt.InvalidSignatureError:
            raise _refused("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(f"missing the '{exc.claim}' claim") from None
        except jwt.InvalidIssuerError:
            raise _refused("issued by someone else (wrong 'iss')") from None
        except jwt.ImmatureSignatureError:
            raise _refused("issued in the future ('iat' or 'nbf')") from None
        except jwt.InvalidTokenError:
            raise _refused("malformed claims") from None
        if claims.get("typ") != "access":
            raise _refused("not an access token (wrong 'typ')")
        if not str(claims["sub"]).isdigit():
            raise _refused("malformed subject")
        return claims


def looks_like_jwt(token: str) -> bool:
    """Cheap shape test to pick the decoder (API tokens start with ``wp-``)."""
    return token.startswith("eyJ") and token.count(".") == 2


def new_refresh_token() -> tuple[str, str]:
    """(plaintext, sha256 hex digest) of a new opaque refresh token."""
    plaintext = REFRESH_PREFIX + secrets.token_urlsafe(32)
    return plaintext, hash_refresh_token(plaintext)


def hash_refresh_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "surrogateescape")).hexdigest()
