"""A fake OpenID Connect identity provider on loopback, for single sign-on tests.

Like the other fakes it never imports waypost: it speaks the public protocol (OpenID Connect
Discovery, the authorization code flow with PKCE S256, JWKS) and signs ID tokens with PyJWT.

Usage::

    async with FakeOidcProvider(client_id="waypost", client_secret="s3cret") as idp:
        idp.issuer               # "http://127.0.0.1:PORT" (+ issuer_path): put it in auth.oidc[].issuer
        idp.email = "bob@example.com"   # who "logs in" at /authorize (no login page: auto-approved)
        # browser step: GET the gateway's login URL → 302 to idp /authorize → 302 to
        # redirect_uri?code=..&state=..; follow these by hand (no automatic redirects)

Constructor (keyword-only):
    client_id          the only client accepted (default "waypost")
    client_secret      required at /token when set (default None: a public client, PKCE only)
    auth_methods       client authentication accepted at /token and advertised in discovery:
                       any of "client_secret_post", "client_secret_basic" (default both)
    redirect_uris      exact redirect URIs accepted at /authorize (default None: any http(s) URI)
    issuer_path        appended to the base URL to form the issuer (e.g. "/realms/test")

Knobs (plain attributes, change them between steps):
    email, email_verified, name, subject   the user's claims (email/email_verified None: omitted)
    extra_claims        merged into every ID token
    deny                /authorize redirects back with error=access_denied
    bad_signature       sign ID tokens with a key that is not in the JWKS (same kid)
    wrong_nonce         put another nonce in ID tokens
    wrong_audience      set aud to another client
    wrong_issuer        set iss to another issuer
    expired             issue ID tokens that expired an hour ago
    id_token_alg        "RS256" (default), "none" or "HS256" (signed with the client secret)
    token_kid           the kid put in ID token headers (default None: the published key's kid)
    discovery_issuer    the issuer the discovery document claims (default: the real one)
    omit_id_token       /token answers without an id_token
    jwks_down           /jwks answers 503 (the key set is unavailable; still counted in jwks_hits)

Records: ``authorize_requests`` and ``token_requests`` (the query / form dicts as received),
``discovery_hits``, ``jwks_hits``. ``rotate_key()`` replaces the signing key (new kid).
``make_id_token(nonce, **claims)`` signs a token directly, honouring the knobs (a claim given as
``None`` is left out).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from yarl import URL

from tests.fakes.base import LoopbackServer


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    scope: str


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeOidcProvider(LoopbackServer):
    """A real HTTP server on 127.0.0.1 playing an OpenID Connect provider (see the module docstring)."""

    def __init__(
        self,
        *,
        client_id: str = "waypost",
        client_secret: str | None = None,
        auth_methods: tuple[str, ...] = ("client_secret_post", "client_secret_basic"),
        redirect_uris: list[str] | None = None,
        issuer_path: str = "",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_methods = auth_methods
        self.redirect_uris = redirect_uris
        self.issuer_path = issuer_path.rstrip("/")
        # The user and the faults.
        self.email: str | None = "alice@example.com"
        self.email_verified: bool | None = True
        self.name: str | None = "Alice Example"
        self.subject = "user-alice"
        self.extra_claims: dict[str, Any] = {}
        self.deny = False
        self.bad_signature = False
        self.wrong_nonce = False
        self.wrong_audience = False
        self.wrong_issuer = False
        self.expired = False
        self.id_token_alg = "RS256"
        self.token_kid: str | None = None
        self.discovery_issuer: str | None = None
        self.omit_id_token = False
        self.jwks_down = False
        # The log.
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.discovery_hits = 0
        self.jwks_hits = 0
        self._key = _new_key()
        self.kid = "key-1"
        self._grants: dict[str, _Grant] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on a free loopback port; return the issuer."""
        if self._base_url is None:
            app = web.Application()
            app.add_routes(
                [
                    web.get(f"{self.issuer_path}/.well-known/openid-configuration", self._discovery),
                    web.get("/authorize", self._authorize),
                    web.post("/token", self._token),
                    web.get("/jwks", self._jwks),
                ]
            )
            await self._listen(app)
        return self.issuer

    @property
    def issuer(self) -> str:
        return self.url + self.issuer_path

    # -- keys and tokens ---------------------------------------------------------------------------

    def rotate_key(self) -> None:
        """A new signing key with a new kid; the JWKS publishes only the new one."""
        self._key = _new_key()
        self.kid = f"key-{secrets.token_hex(4)}"

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def make_id_token(self, nonce: str | None, **claims: Any) -> str:
        """An ID token for the current user, faults applied; ``claims`` override anything (None: omit)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": "https://other-issuer.example" if self.wrong_issuer else self.issuer,
            "sub": self.subject,
            "aud": "another-client" if self.wrong_audience else self.client_id,
            "iat": now - 7200 if self.expired else now,
            "exp": now - 3600 if self.expired else now + 300,
        }
        if nonce is not None:
            payload["nonce"] = "a-different-nonce" if self.wrong_nonce else nonce
        if self.email is not None:
            payload["email"] = self.email
        if self.email_verified is not None:
            payload["email_verified"] = self.email_verified
        if self.name is not None:
            payload["name"] = self.name
        payload.update(self.extra_claims)
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        kid = self.token_kid or self.kid
        if self.id_token_alg == "none":
            return jwt.encode(payload, None, algorithm="none")
        if self.id_token_alg == "HS256":
            secret = (self.client_secret or "no-secret").ljust(32, "-")
            return jwt.encode(payload, secret, algorithm="HS256", headers={"kid": kid})
        key = _new_key() if self.bad_signature else self._key
        return jwt.encode(payload, key, algorithm=self.id_token_alg, headers={"kid": kid})

    # -- endpoints ---------------------------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_hits += 1
        return web.json_response(
            {
                "issuer": self.discovery_issuer or self.issuer,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": list(self.auth_methods)
                if self.client_secret
                else ["none"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_hits += 1
        if self.jwks_down:
            return _page(503, "the key set is unavailable")
        return web.json_response({"keys": [self.public_jwk()]})

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id:
            return _page(400, "unknown client_id")
        if not redirect_uri.startswith(("http://", "https://")) or (
            self.redirect_uris is not None and redirect_uri not in self.redirect_uris
        ):
            return _page(400, "redirect_uri is not registered for this client")
        # From here on errors go back to the client, as the standard says.
        state = query.get("state")
        back = URL(redirect_uri)
        problem = None
        if query.get("response_type") != "code":
            problem = ("unsupported_response_type", "response_type must be code")
        elif "openid" not in query.get("scope", "").split():
            problem = ("invalid_scope", "the openid scope is required")
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            problem = ("invalid_request", "PKCE with code_challenge_method=S256 is required")
        elif self.deny:
            problem = ("access_denied", "the user declined")
        if problem is not None:
            params = {"error": problem[0], "error_description": problem[1]}
        else:
            code = secrets.token_urlsafe(24)
            self._grants[code] = _Grant(
                client_id=self.client_id,
                redirect_uri=redirect_uri,
                challenge=query["code_challenge"],
                nonce=query.get("nonce"),
                scope=query.get("scope", ""),
            )
            params = {"code": code}
        if state is not None:
            params["state"] = state
        raise web.HTTPFound(str(back.update_query(params)))

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        method = "client_secret_post" if secret is not None else None
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:]).decode()
            except ValueError:
                return _oauth_error(401, "invalid_client", "malformed basic authorization")
            user, _, password = decoded.partition(":")
            client_id, secret, method = unquote(user), unquote(password), "client_secret_basic"
        if client_id != self.client_id:
            return _oauth_error(401, "invalid_client", "unknown client")
        if self.client_secret is not None and (
            method not in self.auth_methods or secret != self.client_secret
        ):
            return _oauth_error(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "only authorization_code")
        grant = self._grants.pop(form.get("code", ""), None)  # codes are single-use
        if grant is None:
            return _oauth_error(400, "invalid_grant", "unknown or used code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or digest != grant.challenge:
            return _oauth_error(400, "invalid_grant", "PKCE verification failed")
        answer: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": grant.scope,
        }
        if not self.omit_id_token:
            answer["id_token"] = self.make_id_token(grant.nonce)
        return web.json_response(answer, headers={"cache-control": "no-store"})


def _page(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"fake identity provider: {message}")


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)
