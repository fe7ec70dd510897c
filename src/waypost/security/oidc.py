"""OpenID Connect single sign-on: discovery, authorization code + PKCE, ID token verification.

Every network call goes through ``HttpClient`` (outbound guard, timeouts, no redirects). Discovery
documents and key sets are cached per ``HttpClient`` (one per app) for ``CACHE_SECONDS``. An ID token
signed with a key the cached set lacks refetches the set (the IdP may have rotated its keys), but at
most once per ``JWKS_REFETCH_SECONDS``, and a failed fetch is not retried sooner either: a flood of
tokens with made-up key ids costs the IdP one request per interval. A token whose key cannot be
found or fetched cannot be verified, which is a 401, never a gateway error.
ID tokens must be signed with an asymmetric algorithm: ``none`` and HMAC (which would make the
client secret a signing key) are refused whatever the IdP advertises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jwt
from yarl import URL

from waypost.core.errors import Forbidden, Unauthorized, UpstreamError, UpstreamTimeout
from waypost.providers.http import HttpClient, json_error_message
from waypost.settings import OidcProviderSettings

CACHE_SECONDS = 3600.0
JWKS_REFETCH_SECONDS = 60.0  # least time between two refetches for unknown key ids, or after a failure
LEEWAY_SECONDS = 60  # clock skew between the IdP and us
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


@dataclass(frozen=True, slots=True)
class Discovery:
    """The parts of an IdP's ``.well-known/openid-configuration`` the login needs."""

    issuer: str  # exactly as the IdP spells it: the ID token's ``iss`` must equal it
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    signing_algorithms: tuple[str, ...]  # advertised ones we accept
    token_auth_methods: tuple[str, ...]


@dataclass(slots=True)
class _KeySet:
    """One IdP's signing keys as last fetched, and when fetches happened (monotonic seconds)."""

    keys: list[dict[str, Any]] | None = None
    fetched_at: float = -math.inf  # the last successful fetch
    # The last fetch that may not be repeated within JWKS_REFETCH_SECONDS: a refetch for an unknown
    # key id, or one that failed.
    limited_at: float = -math.inf


@dataclass(slots=True)
class _Cache:
    discovery: dict[str, tuple[float, Discovery]] = field(default_factory=dict)
    jwks: dict[str, _KeySet] = field(default_factory=dict)


_caches: weakref.WeakKeyDictionary[HttpClient, _Cache] = weakref.WeakKeyDictionary()


def _cache(http: HttpClient) -> _Cache:
    cache = _caches.get(http)
    if cache is None:
        cache = _caches[http] = _Cache()
    return cache


def _idp_error(issuer: str, problem: str) -> UpstreamError:
    err = UpstreamError(f"the identity provider {issuer} {problem}")
    err.retryable = False
    return err


# -- discovery ---------------------------------------------------------------------------------------


async def discover(http: HttpClient, issuer: str) -> Discovery:
    """The IdP's configuration (cached); its ``issuer`` must be the configured one."""
    cache = _cache(http)
    hit = cache.discovery.get(issuer)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1]
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    doc = await http.get_json(url, what=f"the identity provider {issuer}")
    discovery = _parse_discovery(issuer, doc)
    cache.discovery[issuer] = (time.monotonic(), discovery)
    return discovery


def _parse_discovery(issuer: str, doc: Any) -> Discovery:
    if not isinstance(doc, dict):
        raise _idp_error(issuer, "answered a discovery document that is not a JSON object")
    # Settings strip a trailing slash from the configured issuer; some IdPs (Auth0) keep one.
    if not isinstance(doc.get("issuer"), str) or doc["issuer"].rstrip("/") != issuer.rstrip("/"):
        raise _idp_error(issuer, "names another issuer in its discovery document; check auth.oidc[].issuer")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = doc.get(name)
        if not isinstance(value, str) or not value.lower().startswith(("https://", "http://")):
            raise _idp_error(issuer, f"has no http(s) '{name}' in its discovery document")
        endpoints[name] = value
    advertised = doc.get("id_token_signing_alg_values_supported")
    algorithms = tuple(
        a for a in ASYMMETRIC_ALGORITHMS if not isinstance(advertised, list) or a in advertised
    )
    methods = doc.get("token_endpoint_auth_methods_supported")
    return Discovery(
        issuer=doc["issuer"],
        signing_algorithms=algorithms,
        token_auth_methods=tuple(m for m in methods if isinstance(m, str))
        if isinstance(methods, list)
        else (),
        **endpoints,
    )


# -- the login redirect ------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(code verifier, its S256 challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    provider: OidcProviderSettings,
    discovery: Discovery,
    redirect_uri: str,
    state: str,
    nonce: str,
    challenge: str,
) -> str:
    """Where to send the browser: the authorization endpoint with the code + PKCE request."""
    scopes = provider.scopes if "openid" in provider.scopes else ["openid", *provider.scopes]
    url = URL(discovery.authorization_endpoint).extend_query(
        response_type="code",
        client_id=provider.client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(scopes),
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    return str(url)


# -- the callback ------------------------------------------------------------------------------------


async def exchange_code(
    http: HttpClient,
    provider: OidcProviderSettings,
    discovery: Discovery,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> dict[str, Any]:
    """Trade the authorization code for tokens at the token endpoint.

    A confidential client authenticates with ``client_secret_post`` when the IdP offers it, else
    ``client_secret_basic`` (the standard's default); a public client relies on PKCE alone. A refused
    code is ``Unauthorized``; refused client credentials or a broken IdP are ``UpstreamError``.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        "client_id": provider.client_id,
    }
    headers: dict[str, str] = {}
    if provider.client_secret:
        if "client_secret_post" in discovery.token_auth_methods:
            form["client_secret"] = provider.client_secret
        else:
            # RFC 6749 2.3.1: both parts are form-encoded before base64.
            pair = f"{quote(provider.client_id, safe='')}:{quote(provider.client_secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    status, answer = await http.request_json(
        "POST",
        discovery.token_endpoint,
        data=form,
        headers=headers,
        what=f"the identity provider {provider.issuer}",
    )
    if status >= 400:
        message = json_error_message(answer, b"")
        code_name = answer.get("error") if isinstance(answer, dict) else None
        if 400 <= status < 500 and code_name not in ("invalid_client", "unauthorized_client"):
            raise Unauthorized(
                f"SSO login failed: the identity provider refused the authorization code ({message})."
            )
        raise _idp_error(provider.issuer, f"refused the token request ({status}: {message})")
    if not isinstance(answer, dict) or not isinstance(answer.get("id_token"), str):
        raise _idp_error(provider.issuer, "answered the token request without an id_token")
    return answer


async def verify_id_token(
    http: HttpClient, id_token: str, discovery: Discovery, client_id: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims once its signature (a key from the IdP's JWKS), issuer, audience,
    expiry, issue time and nonce are checked; ``Unauthorized`` naming the failed check otherwise."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.DecodeError:
        raise _bad_token("is not a well-formed JWT") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in discovery.signing_algorithms:
        shown = (
            f"'{alg}'"
            if alg in ("none", "HS256", "HS384", "HS512", *ASYMMETRIC_ALGORITHMS)
            else "an unknown algorithm"
        )
        raise _bad_token(f"is signed with {shown}; accepted: {', '.join(discovery.signing_algorithms)}")
    key = await _signing_key(http, discovery, header.get("kid"), alg)
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=[alg],
            audience=client_id,
            issuer=discovery.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _bad_token("has expired") from None
    except jwt.InvalidSignatureError:
        raise _bad_token("has a bad signature") from None
    except jwt.InvalidAudienceError:
        raise _bad_token("was issued for another client (wrong 'aud')") from None
    except jwt.InvalidIssuerError:
        raise _bad_token("was issued by another issuer (wrong 'iss')") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _bad_token(f"lacks the '{exc.claim}' claim") from None
    except jwt.ImmatureSignatureError:
        raise _bad_token("is not valid yet ('iat' or 'nbf' in the future)") from None
    except jwt.InvalidTokenError:
        raise _bad_token("has malformed claims") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise _bad_token("has several audiences and another authorized party (wrong 'azp')")
    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
        raise _bad_token("does not carry this login's nonce (a replayed or foreign token)")
    return claims


def email_from_claims(provider: OidcProviderSettings, claims: dict[str, Any]) -> str:
    """The verified, lower-cased e-mail from ``provider.email_claim``; checks ``allowed_domains``."""
    email = claims.get(provider.email_claim)
    if not isinstance(email, str) or "@" not in email:
        raise Unauthorized(
            f"SSO login failed: the ID token has no e-mail in its '{provider.email_claim}' claim "
            "(is the 'email' scope requested?)."
        )
    verified = claims.get("email_verified")
    if verified is False or (isinstance(verified, str) and verified.lower() == "false"):
        raise Unauthorized("SSO login failed: the identity provider has not verified this e-mail address.")
    email = email.strip().lower()
    domain = email.rsplit("@", 1)[1]
    if provider.allowed_domains and domain not in {d.lower() for d in provider.allowed_domains}:
        raise Forbidden(f"e-mail addresses at '{domain}' may not log in through '{provider.name}'")
    return email


def _bad_token(problem: str) -> Unauthorized:
    return Unauthorized(f"SSO login failed: the identity provider's ID token {problem}.")


async def _signing_key(http: HttpClient, discovery: Discovery, kid: object, alg: str) -> jwt.PyJWK:
    key_set = _cache(http).jwks.setdefault(discovery.jwks_uri, _KeySet())
    now = time.monotonic()
    may_fetch = now - key_set.limited_at >= JWKS_REFETCH_SECONDS
    stale = key_set.keys is None or now - key_set.fetched_at >= CACHE_SECONDS
    found = _pick(key_set.keys or [], kid, alg)
    unreachable: str | None = None
    if (stale or found is None) and may_fetch:
        if not stale:  # the IdP may have rotated its keys since: look once more, not again soon
            key_set.limited_at = now
        try:
            found = _pick(await _fetch_jwks(http, discovery, key_set), kid, alg)
        except (UpstreamError, UpstreamTimeout) as err:
            key_set.limited_at = now
            unreachable = err.message
    elif stale:  # only a failed fetch holds back a stale set's refresh
        unreachable = "a fetch failed moments ago; retried after a pause"
    if found is None and unreachable is not None:
        # Expired keys, if any, were tried; without the key the signature cannot be checked.
        raise _bad_token(f"cannot be verified: its key set could not be fetched ({unreachable})")
    if found is None:
        raise _bad_token("is signed with a key the identity provider does not publish")
    try:
        return jwt.PyJWK(found, algorithm=alg)
    except (jwt.PyJWKError, jwt.InvalidKeyError):
        raise _bad_token(f"names a published key that does not fit {alg}") from None


async def _fetch_jwks(http: HttpClient, discovery: Discovery, key_set: _KeySet) -> list[dict[str, Any]]:
    doc = await http.get_json(discovery.jwks_uri, what=f"the identity provider {discovery.issuer}")
    raw = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise _idp_error(discovery.issuer, "answered a key set (jwks_uri) without 'keys'")
    key_set.keys = [k for k in raw if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    key_set.fetched_at = time.monotonic()
    return key_set.keys


def _pick(keys: list[dict[str, Any]], kid: object, alg: str) -> dict[str, Any] | None:
    """The key named ``kid``; without a kid, the only key that could have made an ``alg`` signature."""
    family = "RSA" if alg.startswith(("RS", "PS")) else "EC" if alg.startswith("ES") else "OKP"
    candidates = [k for k in keys if k.get("alg") in (None, alg) and k.get("kty") == family]
    if kid is not None:
        return next((k for k in candidates if k.get("kid") == kid), None)
    return candidates[0] if len(candidates) == 1 else None
