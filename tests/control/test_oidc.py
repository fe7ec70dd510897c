"""Single sign-on with OpenID Connect against a fake identity provider on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.control.client import Control, control, message
from tests.dbs import fresh_database
from tests.fakes.oidc_provider import FakeOidcProvider
from tests.harness import settings

CLIENT_SECRET = "idp-client-secret-0123456789"


@pytest.fixture
async def idp() -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider(client_id="waypost", client_secret=CLIENT_SECRET) as fake:
        yield fake


def sso_settings(idp: FakeOidcProvider, database: dict[str, Any] | None = None, **provider: Any) -> Any:
    entry = {
        "name": "corp",
        "display_name": "Corp SSO",
        "issuer": idp.issuer,
        "client_id": "waypost",
        "client_secret": CLIENT_SECRET,
        **provider,
    }
    extra = {"database": database} if database is not None else {}
    return settings(auth={"oidc": [entry], "jwt_secret": "shared-by-every-worker-0123456789"}, **extra)


@pytest.fixture
async def api(idp: FakeOidcProvider) -> AsyncIterator[Control]:
    async with control(sso_settings(idp)) as client:
        yield client


async def to_callback(api: Control, query: str = "") -> str:
    """Start a login and follow the identity provider's redirect: the callback URL it sends back."""
    start = await api.http.get(f"/auth/oidc/corp/login{query}")
    assert start.status_code == 302, start.text
    at_idp = await api.http.get(start.headers["location"])
    assert at_idp.status_code == 302, at_idp.text
    return at_idp.headers["location"]


async def test_the_configured_providers_are_listed(api: Control) -> None:
    resp = await api.get("/auth/identity-providers", token=None)
    assert resp.json() == {
        "data": [{"name": "corp", "display_name": "Corp SSO", "login_url": "/auth/oidc/corp/login"}]
    }


async def test_login_sends_the_browser_to_the_provider_with_pkce(api: Control, idp: FakeOidcProvider) -> None:
    start = await api.http.get("/auth/oidc/corp/login")
    assert start.status_code == 302
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{api.url}/auth/oidc/corp/callback"]
    assert query["state"] and query["nonce"]


async def test_single_sign_on_logs_in_and_creates_the_account(api: Control) -> None:
    resp = await api.http.get(await to_callback(api))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user"]["email"] == "alice@example.com"
    assert body["user"]["role"] == "user"
    assert body["user"]["display_name"] == "Alice Example"
    me = await api.get("/me", token=body["access_token"])
    assert me.json()["email"] == "alice@example.com"


async def test_an_existing_account_is_logged_in_not_duplicated(api: Control) -> None:
    created = (await api.post("/admin/users", {"email": "alice@example.com"})).json()
    body = (await api.http.get(await to_callback(api))).json()
    assert body["user"]["id"] == created["id"]


async def test_redirect_to_gets_the_tokens_in_the_fragment(api: Control) -> None:
    resp = await api.http.get(await to_callback(api, "?redirect_to=/ui/welcome"))
    assert resp.status_code == 302
    path, _, fragment = resp.headers["location"].partition("#")
    assert path == "/ui/welcome"
    tokens = parse_qs(fragment)
    assert (await api.get("/me", token=tokens["access_token"][0])).status_code == 200
    assert tokens["refresh_token"][0].startswith("wpr-")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "ui"])
async def test_redirect_to_must_stay_on_the_gateway(api: Control, target: str) -> None:
    resp = await api.http.get("/auth/oidc/corp/login", params={"redirect_to": target})
    assert resp.status_code == 400
    assert message(resp).startswith("redirect_to: ")


async def test_a_tampered_state_is_refused(api: Control) -> None:
    url = await to_callback(api)
    state = parse_qs(urlsplit(url).query)["state"][0]
    resp = await api.http.get(url.replace(state, "forged-" + state[7:]))
    assert resp.status_code == 400
    assert "state" in message(resp)


async def test_a_replayed_state_is_refused(api: Control) -> None:
    url = await to_callback(api)
    assert (await api.http.get(url)).status_code == 200
    again = await api.http.get(url)
    assert again.status_code == 400


async def test_a_callback_in_another_browser_is_refused(api: Control) -> None:
    """A login link someone else started (login CSRF) does not sign this browser in."""
    url = await to_callback(api)
    async with httpx.AsyncClient() as stranger:
        resp = await stranger.get(url)
    assert resp.status_code == 400
    assert "browser" in message(resp)


async def test_an_id_token_with_another_nonce_is_refused(api: Control, idp: FakeOidcProvider) -> None:
    idp.wrong_nonce = True
    resp = await api.http.get(await to_callback(api))
    assert resp.status_code == 401
    assert "nonce" in message(resp)


async def test_an_id_token_with_a_bad_signature_is_refused(api: Control, idp: FakeOidcProvider) -> None:
    idp.bad_signature = True
    resp = await api.http.get(await to_callback(api))
    assert resp.status_code == 401


async def test_an_id_token_whose_key_set_is_down_is_a_401(api: Control, idp: FakeOidcProvider) -> None:
    assert (await api.http.get(await to_callback(api))).status_code == 200  # the keys are cached
    idp.jwks_down = True
    idp.token_kid = "a-key-nobody-published"
    resp = await api.http.get(await to_callback(api))
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert "key set could not be fetched" in message(resp)
    assert idp.jwks_hits == 2


async def test_the_provider_refusing_the_login_is_a_401(api: Control, idp: FakeOidcProvider) -> None:
    idp.deny = True
    resp = await api.http.get(await to_callback(api))
    assert resp.status_code == 401
    assert "declined" in message(resp)


async def test_an_unverified_e_mail_is_refused(api: Control, idp: FakeOidcProvider) -> None:
    idp.email_verified = False
    resp = await api.http.get(await to_callback(api))
    assert resp.status_code == 401


async def test_an_unknown_provider_is_a_404(api: Control) -> None:
    resp = await api.http.get("/auth/oidc/nobody/login")
    assert resp.status_code == 404
    assert message(resp) == "identity provider 'nobody' is not configured"


async def test_strangers_are_refused_when_accounts_are_not_created(idp: FakeOidcProvider) -> None:
    async with control(sso_settings(idp, auto_create_users=False)) as api:
        resp = await api.http.get(await to_callback(api))
        assert resp.status_code == 403
        assert "alice@example.com" in message(resp)


async def test_other_e_mail_domains_are_refused(idp: FakeOidcProvider) -> None:
    async with control(sso_settings(idp, allowed_domains=["corp.example"])) as api:
        resp = await api.http.get(await to_callback(api))
        assert resp.status_code == 403
        assert "example.com" in message(resp)


async def test_a_login_started_on_one_worker_finishes_on_another(idp: FakeOidcProvider) -> None:
    redirect_uri = "http://gateway.example/auth/oidc/corp/callback"  # the address both share
    async with fresh_database() as database:
        config = sso_settings(idp, database, redirect_uri=redirect_uri)
        async with control(config) as first, control(config) as second:
            url = await to_callback(first)
            assert url.startswith(redirect_uri)
            second.http.cookies = first.http.cookies  # the same browser
            resp = await second.http.get("/auth/oidc/corp/callback?" + urlsplit(url).query)
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["email"] == "alice@example.com"
