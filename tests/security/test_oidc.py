"""OpenID Connect against a fake identity provider on loopback: discovery, code + PKCE, ID tokens."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.fakes.oidc_provider import FakeOidcProvider
from waypost.core.errors import Forbidden, Unauthorized, UpstreamError
from waypost.providers.http import HttpClient
from waypost.security import oidc
from waypost.security.urlguard import OutboundPolicy
from waypost.settings import OidcProviderSettings

REDIRECT = "http://127.0.0.1:4000/auth/oidc/corp/callback"
SECRET = "client-secret-for-tests"


@pytest.fixture
async def idp() -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider(client_id="waypost", client_secret=SECRET, redirect_uris=[REDIRECT]) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient(OutboundPolicy(allow_private=True))  # the fake IdP lives on loopback
    yield client
    await client.close()


def settings(idp: FakeOidcProvider, **overrides: Any) -> OidcProviderSettings:
    values: dict[str, Any] = {
        "name": "corp",
        "issuer": idp.issuer,
        "client_id": "waypost",
        "client_secret": idp.client_secret,
    }
    return OidcProviderSettings(**{**values, **overrides})


async def browse(url: str) -> URL:
    """What the browser does at the IdP: GET the authorization URL, return where it is sent back to."""
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return URL(resp.headers["location"])


async def login(http: HttpClient, idp: FakeOidcProvider, cfg: OidcProviderSettings) -> dict[str, Any]:
    """The whole flow; the verified ID token claims."""
    discovery = await oidc.discover(http, cfg.issuer)
    verifier, challenge = oidc.pkce_pair()
    back = await browse(oidc.authorization_url(cfg, discovery, REDIRECT, "state-1", "nonce-1", challenge))
    assert back.query["state"] == "state-1"
    tokens = await oidc.exchange_code(
        http, cfg, discovery, code=back.query["code"], redirect_uri=REDIRECT, code_verifier=verifier
    )
    return await oidc.verify_id_token(http, tokens["id_token"], discovery, cfg.client_id, "nonce-1")


async def token_for(
    http: HttpClient, idp: FakeOidcProvider, nonce: str = "n", **claims: Any
) -> tuple[str, Any]:
    return idp.make_id_token(nonce, **claims), await oidc.discover(http, idp.issuer)


async def rejected(http: HttpClient, idp: FakeOidcProvider, **claims: Any) -> str:
    token, discovery = await token_for(http, idp, **claims)
    with pytest.raises(Unauthorized) as caught:
        await oidc.verify_id_token(http, token, discovery, "waypost", "n")
    assert token not in caught.value.message
    return caught.value.message


# -- discovery ----------------------------------------------------------------------------------------


async def test_discovery_reads_the_endpoints_and_is_cached(http: HttpClient, idp: FakeOidcProvider) -> None:
    first = await oidc.discover(http, idp.issuer)
    second = await oidc.discover(http, idp.issuer)
    assert first == second and idp.discovery_hits == 1
    assert first.issuer == idp.issuer
    assert first.token_endpoint == f"{idp.url}/token" and first.jwks_uri == f"{idp.url}/jwks"
    assert first.signing_algorithms == ("RS256",)


async def test_discovery_works_for_an_issuer_with_a_path(http: HttpClient) -> None:
    async with FakeOidcProvider(issuer_path="/realms/test") as idp:
        assert (await oidc.discover(http, idp.issuer)).issuer.endswith("/realms/test")


async def test_a_discovery_document_naming_another_issuer_is_refused(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    idp.discovery_issuer = "https://evil.example"
    with pytest.raises(UpstreamError, match="names another issuer in its discovery document") as caught:
        await oidc.discover(http, idp.issuer)
    assert caught.value.status == 502


async def test_an_identity_provider_on_a_private_address_needs_private_targets_allowed(
    idp: FakeOidcProvider,
) -> None:
    strict = HttpClient(OutboundPolicy(allow_private=False))
    try:
        with pytest.raises(UpstreamError, match="is not an allowed target"):
            await oidc.discover(strict, idp.issuer)
    finally:
        await strict.close()


# -- the redirect -------------------------------------------------------------------------------------


def test_the_pkce_challenge_is_the_s256_of_the_verifier() -> None:
    verifier, challenge = oidc.pkce_pair()
    assert 43 <= len(verifier) <= 128
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == digest


async def test_the_authorization_url_asks_for_a_code_with_pkce(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    discovery = await oidc.discover(http, idp.issuer)
    url = URL(oidc.authorization_url(settings(idp, scopes=["email"]), discovery, REDIRECT, "s", "n", "c"))
    assert str(url.with_query(None)) == f"{idp.url}/authorize"
    assert dict(url.query) == {
        "response_type": "code",
        "client_id": "waypost",
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "s",
        "nonce": "n",
        "code_challenge": "c",
        "code_challenge_method": "S256",
    }


# -- the whole flow -----------------------------------------------------------------------------------


async def test_a_full_login_yields_verified_claims(http: HttpClient, idp: FakeOidcProvider) -> None:
    claims = await login(http, idp, settings(idp))
    assert claims["email"] == "alice@example.com" and claims["sub"] == "user-alice"
    assert idp.authorize_requests[0]["nonce"] == "nonce-1"


async def test_a_confidential_client_uses_client_secret_post_when_offered(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    await login(http, idp, settings(idp))
    assert idp.token_requests[0]["client_secret"] == SECRET


async def test_a_confidential_client_falls_back_to_client_secret_basic(http: HttpClient) -> None:
    async with FakeOidcProvider(client_secret="p@ss:w/rd", auth_methods=("client_secret_basic",)) as idp:
        await login(http, idp, settings(idp))
        assert "client_secret" not in idp.token_requests[0]


async def test_a_public_client_relies_on_pkce_alone(http: HttpClient) -> None:
    async with FakeOidcProvider(client_secret=None) as idp:
        claims = await login(http, idp, settings(idp))
        assert claims["email"] == "alice@example.com"
        assert "client_secret" not in idp.token_requests[0]


async def test_a_wrong_code_verifier_is_refused_as_unauthorized(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    cfg = settings(idp)
    discovery = await oidc.discover(http, idp.issuer)
    _, challenge = oidc.pkce_pair()
    back = await browse(oidc.authorization_url(cfg, discovery, REDIRECT, "s", "n", challenge))
    with pytest.raises(Unauthorized, match=r"refused the authorization code \(invalid_grant: PKCE"):
        await oidc.exchange_code(
            http, cfg, discovery, code=back.query["code"], redirect_uri=REDIRECT, code_verifier="x" * 43
        )


async def test_a_code_cannot_be_used_twice(http: HttpClient, idp: FakeOidcProvider) -> None:
    cfg = settings(idp)
    discovery = await oidc.discover(http, idp.issuer)
    verifier, challenge = oidc.pkce_pair()
    back = await browse(oidc.authorization_url(cfg, discovery, REDIRECT, "s", "n", challenge))
    kwargs = {"code": back.query["code"], "redirect_uri": REDIRECT, "code_verifier": verifier}
    await oidc.exchange_code(http, cfg, discovery, **kwargs)
    with pytest.raises(Unauthorized, match="unknown or used code"):
        await oidc.exchange_code(http, cfg, discovery, **kwargs)


async def test_a_wrong_client_secret_is_a_gateway_configuration_error(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    with pytest.raises(UpstreamError, match=r"refused the token request \(401: invalid_client") as caught:
        await login(http, idp, settings(idp, client_secret="wrong"))
    assert caught.value.status == 502


async def test_a_token_answer_without_an_id_token_is_an_upstream_error(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    idp.omit_id_token = True
    with pytest.raises(UpstreamError, match="without an id_token"):
        await login(http, idp, settings(idp))


async def test_a_login_declined_at_the_identity_provider_comes_back_as_an_error(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    idp.deny = True
    discovery = await oidc.discover(http, idp.issuer)
    back = await browse(oidc.authorization_url(settings(idp), discovery, REDIRECT, "s", "n", "c"))
    assert back.query["error"] == "access_denied" and back.query["state"] == "s"


# -- ID token verification ----------------------------------------------------------------------------


async def test_an_id_token_with_a_bad_signature_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    idp.bad_signature = True
    assert "has a bad signature" in await rejected(http, idp)


async def test_an_id_token_with_another_nonce_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    idp.wrong_nonce = True
    assert "does not carry this login's nonce" in await rejected(http, idp)


async def test_an_id_token_for_another_client_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    idp.wrong_audience = True
    assert "wrong 'aud'" in await rejected(http, idp)


async def test_an_expired_id_token_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    idp.expired = True
    assert "has expired" in await rejected(http, idp)


async def test_an_id_token_of_another_issuer_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    idp.wrong_issuer = True
    assert "wrong 'iss'" in await rejected(http, idp)


async def test_an_unsigned_id_token_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    idp.id_token_alg = "none"
    assert "is signed with 'none'; accepted: RS256" in await rejected(http, idp)


async def test_an_hmac_id_token_signed_with_the_client_secret_is_refused(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    idp.id_token_alg = "HS256"
    assert "is signed with 'HS256'" in await rejected(http, idp)


async def test_an_id_token_without_iat_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    assert "lacks the 'iat' claim" in await rejected(http, idp, iat=None)


async def test_an_id_token_without_a_nonce_is_refused(http: HttpClient, idp: FakeOidcProvider) -> None:
    assert "nonce" in await rejected(http, idp, nonce=None)


async def test_a_rotated_key_is_picked_up_by_refetching_the_key_set_once(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    token, discovery = await token_for(http, idp)
    await oidc.verify_id_token(http, token, discovery, "waypost", "n")
    idp.rotate_key()
    await oidc.verify_id_token(http, idp.make_id_token("n"), discovery, "waypost", "n")
    assert idp.jwks_hits == 2


async def test_a_token_signed_with_an_unpublished_key_id_is_refused(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    idp.token_kid = "not-published"
    assert "signed with a key the identity provider does not publish" in await rejected(http, idp)
    assert idp.jwks_hits == 1  # fetched once: nothing was cached yet, so nothing to refetch


async def test_an_unknown_key_id_refetches_the_cached_key_set_only_once(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    token, discovery = await token_for(http, idp)
    await oidc.verify_id_token(http, token, discovery, "waypost", "n")
    idp.token_kid = "not-published"
    assert "does not publish" in await rejected(http, idp)
    assert idp.jwks_hits == 2


async def test_a_flood_of_unknown_key_ids_costs_one_refetch_per_interval(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    token, discovery = await token_for(http, idp)
    await oidc.verify_id_token(http, token, discovery, "waypost", "n")
    for i in range(20):
        idp.token_kid = f"made-up-{i}"
        assert "does not publish" in await rejected(http, idp)
    assert idp.jwks_hits == 2  # the first fetch, and one refetch for all the unknown key ids


async def test_an_unknown_key_id_while_the_key_set_is_down_is_unauthorized(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    token, discovery = await token_for(http, idp)
    await oidc.verify_id_token(http, token, discovery, "waypost", "n")
    idp.jwks_down = True
    idp.token_kid = "made-up"
    message = await rejected(http, idp)
    assert "cannot be verified: its key set could not be fetched" in message
    assert "503" in message
    assert "does not publish" in await rejected(http, idp)  # no second fetch within the interval
    assert idp.jwks_hits == 2


async def test_the_cached_keys_still_verify_while_the_key_set_is_down(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    token, discovery = await token_for(http, idp)
    await oidc.verify_id_token(http, token, discovery, "waypost", "n")
    idp.jwks_down = True
    await oidc.verify_id_token(http, idp.make_id_token("n"), discovery, "waypost", "n")
    assert idp.jwks_hits == 1


async def test_a_key_set_down_from_the_start_is_unauthorized_and_not_refetched_at_once(
    http: HttpClient, idp: FakeOidcProvider
) -> None:
    idp.jwks_down = True
    for _ in range(5):
        assert "cannot be verified" in await rejected(http, idp)
    assert idp.jwks_hits == 1


async def test_after_the_interval_an_unknown_key_id_refetches_again(
    http: HttpClient, idp: FakeOidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oidc, "JWKS_REFETCH_SECONDS", 0.0)  # every interval has passed
    token, discovery = await token_for(http, idp)
    await oidc.verify_id_token(http, token, discovery, "waypost", "n")
    idp.token_kid = "made-up"
    for _ in range(3):
        await rejected(http, idp)
    assert idp.jwks_hits == 4


# -- the e-mail -----------------------------------------------------------------------------------


def test_the_email_comes_from_the_configured_claim_lower_cased() -> None:
    cfg = OidcProviderSettings(name="corp", issuer="https://idp.example", client_id="c", email_claim="upn")
    assert oidc.email_from_claims(cfg, {"upn": "Bob@Corp.Example", "email": "x@y"}) == "bob@corp.example"


def test_an_unverified_email_is_refused() -> None:
    cfg = OidcProviderSettings(name="corp", issuer="https://idp.example", client_id="c")
    with pytest.raises(Unauthorized, match="not verified"):
        oidc.email_from_claims(cfg, {"email": "a@example.com", "email_verified": False})


def test_a_missing_email_is_refused_naming_the_claim() -> None:
    cfg = OidcProviderSettings(name="corp", issuer="https://idp.example", client_id="c")
    with pytest.raises(Unauthorized, match="no e-mail in its 'email' claim"):
        oidc.email_from_claims(cfg, {"sub": "x"})


def test_an_email_outside_the_allowed_domains_is_forbidden() -> None:
    cfg = OidcProviderSettings(
        name="corp", issuer="https://idp.example", client_id="c", allowed_domains=["corp.example"]
    )
    assert oidc.email_from_claims(cfg, {"email": "a@corp.example"}) == "a@corp.example"
    with pytest.raises(Forbidden, match=r"e-mail addresses at 'gmail\.com' may not log in through 'corp'"):
        oidc.email_from_claims(cfg, {"email": "a@gmail.com"})
