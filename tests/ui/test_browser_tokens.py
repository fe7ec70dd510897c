"""Signing in and managing one's own API tokens, in the browser."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from playwright.async_api import Dialog, expect

from tests.control.client import Control
from tests.harness import ADMIN_EMAIL
from tests.ui.browser import Browsing


async def test_signing_in_with_e_mail_and_password_opens_the_signed_in_shell(tab: Browsing) -> None:
    await tab.open()
    await tab.snap("login")
    await tab.log_in()
    await expect(tab.page.get_by_text(ADMIN_EMAIL).first).to_be_visible()
    await tab.snap("signed in")


async def test_a_wrong_password_is_refused_with_the_gateways_message(tab: Browsing) -> None:
    await tab.open()
    await tab.page.get_by_label("E-mail").fill(ADMIN_EMAIL)
    await tab.page.get_by_label("Password").fill("not-the-password")
    await tab.page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(tab.page.get_by_role("alert")).to_be_visible()
    await expect(tab.page.get_by_role("button", name="Sign out")).to_have_count(0)
    await tab.snap("refused")


async def test_a_new_token_is_shown_once_with_a_copy_button_and_works(tab: Browsing, api: Control) -> None:
    await tab.log_in()
    await tab.go("My tokens")
    await tab.page.get_by_label("Token name").fill("laptop")
    await tab.page.get_by_role("button", name="Create token").click()
    shown = tab.page.get_by_test_id("new-token")
    await expect(shown).to_be_visible()
    plaintext = (await shown.text_content() or "").strip()
    await tab.snap("token created")

    await tab.page.get_by_role("button", name="Copy token").click()
    assert await tab.page.evaluate("navigator.clipboard.readText()") == plaintext
    assert (await api.chat("echo", plaintext)).status_code == 200

    await tab.page.reload()  # shown once: never again, not even to its owner
    await expect(tab.page.get_by_role("cell", name="laptop", exact=True)).to_be_visible()
    assert plaintext not in await tab.page.content()


async def test_a_revoked_token_stops_working(tab: Browsing, api: Control) -> None:
    made = await api.post("/me/tokens", {"name": "old-ci"})
    assert made.status_code == 201, made.text
    plaintext = made.json()["token"]
    await tab.log_in()
    await tab.go("My tokens")
    await expect(tab.page.get_by_role("cell", name="old-ci", exact=True)).to_be_visible()

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    tab.page.once("dialog", accept)
    await tab.page.get_by_role("button", name="Revoke old-ci").click()
    await expect(tab.page.get_by_role("cell", name="old-ci", exact=True)).to_have_count(0)
    await tab.snap("revoked")
    assert (await api.chat("echo", plaintext)).status_code == 401


async def test_all_tokens_are_searched_and_paged_by_the_server(tab: Browsing, api: Control) -> None:
    for name in ("nightly-build", "nightly-deploy", "laptop"):
        assert (await api.post("/me/tokens", {"name": name})).status_code == 201
    searched: list[str] = []
    tab.page.on("request", lambda r: searched.append(r.url) if "/admin/tokens" in r.url else None)
    await tab.log_in()
    await tab.go("All tokens")
    await tab.page.get_by_label("Token name or prefix").fill("nightly")
    await tab.page.get_by_role("button", name="Filter").click()
    await expect(tab.page.get_by_role("cell", name="nightly-build", exact=True)).to_be_visible()
    await expect(tab.page.get_by_role("cell", name="nightly-deploy", exact=True)).to_be_visible()
    await expect(tab.page.get_by_role("cell", name="laptop", exact=True)).to_have_count(0)
    assert any("search=nightly" in url and "limit=50" in url for url in searched)
