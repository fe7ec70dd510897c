"""Single sign-on in the browser, against the suite's fake OpenID Connect provider on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("playwright")

from playwright.async_api import Browser, expect

from tests.control.client import Control, control
from tests.fakes.oidc_provider import FakeOidcProvider
from tests.ui.browser import Browsing, open_tab, ui_settings

CLIENT_SECRET = "idp-client-secret-0123456789"


@pytest_asyncio.fixture(loop_scope="session")
async def sso() -> AsyncIterator[tuple[FakeOidcProvider, Control]]:
    """A fake identity provider, and a gateway that offers it as "Corp SSO"."""
    async with FakeOidcProvider(client_id="waypost", client_secret=CLIENT_SECRET) as idp:
        entry: dict[str, Any] = {
            "name": "corp",
            "display_name": "Corp SSO",
            "issuer": idp.issuer,
            "client_id": "waypost",
            "client_secret": CLIENT_SECRET,
        }
        async with control(ui_settings(auth={"oidc": [entry]})) as api:
            yield idp, api


@pytest_asyncio.fixture(loop_scope="session")
async def sso_tab(browser: Browser, sso: tuple[FakeOidcProvider, Control]) -> AsyncIterator[Browsing]:
    async with open_tab(browser, sso[1].url, "sso") as tab:
        yield tab


async def test_single_sign_on_creates_the_account_and_signs_in(
    sso_tab: Browsing, sso: tuple[FakeOidcProvider, Control]
) -> None:
    idp, api = sso
    idp.email = "carol@corp.example"
    await sso_tab.open()
    await sso_tab.snap("login with sso")
    await sso_tab.page.get_by_role("link", name="Sign in with Corp SSO").click()
    await sso_tab.signed_in()
    await expect(sso_tab.page.get_by_text("carol@corp.example").first).to_be_visible()
    assert "access_token" not in sso_tab.page.url  # the tokens left the address bar
    await sso_tab.snap("signed in by sso")
    listed = (await api.get("/admin/users")).json()["data"]
    assert "carol@corp.example" in [u["email"] for u in listed]


async def test_a_refused_single_sign_on_leaves_the_browser_signed_out(
    sso_tab: Browsing, sso: tuple[FakeOidcProvider, Control]
) -> None:
    idp, _ = sso
    idp.deny = True
    await sso_tab.open()
    await sso_tab.page.get_by_role("link", name="Sign in with Corp SSO").click()
    await sso_tab.page.wait_for_load_state()
    await sso_tab.open()
    await expect(sso_tab.page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()
    await expect(sso_tab.page.get_by_role("button", name="Sign out")).to_have_count(0)
