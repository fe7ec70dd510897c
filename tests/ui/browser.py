"""Debian's Chromium driven by Playwright, and one tab of it on a gateway's UI: what the UI tests
(tests/ui) and the README's screenshots (``python -m tests.ui.screenshots``) share."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from tests.harness import ADMIN_EMAIL, ADMIN_PASSWORD, model, settings
from waypost.settings import Settings

CHROMIUM = os.environ.get("WAYPOST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
# Run as root in a sandbox without a screen; the rest keeps Chromium off the network (this machine's
# closed network refuses its background connections, and a test must reach only the gateway).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (never a browser Playwright downloads)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


def ui_settings(**sections: Any) -> Settings:
    """A gateway with one mock model (``echo``) and the administrator of tests.harness."""
    return settings(model("echo", "mock"), **sections)


class Browsing:
    """One browser tab on a gateway's UI, with what a test does in it: visit, log in, photograph."""

    def __init__(self, page: Page, url: str, name: str) -> None:
        self.page = page
        self.url = url
        self.name = name
        self.shots = 0
        self.errors: list[str] = []
        for old in ARTIFACTS.glob(f"{name}-*.png"):  # an earlier run's pictures of this test
            old.unlink()
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        # A refused script or style (Content-Security-Policy) is a defect of the page itself.
        if message.type == "error" and "Content Security Policy" in message.text:
            self.errors.append(message.text)

    @property
    def nav(self) -> Locator:
        """The main navigation (pages may have navigations of their own, such as a pager)."""
        return self.page.get_by_role("navigation", name="Main")

    async def open(self, route: str = "") -> None:
        """Open ``/ui/<route>`` as a fresh page load."""
        url = f"{self.url}/ui/{route.lstrip('/')}"
        response = await self.page.goto(url)
        assert response is not None and response.ok, (
            f"{url}: {response and response.status} (is the UI built?)"
        )

    async def log_in(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
        """Sign in with e-mail and password on the login page, and wait for the signed-in shell."""
        await self.open()
        await self.page.get_by_label("E-mail", exact=True).fill(email)
        await self.page.get_by_label("Password", exact=True).fill(password)
        await self.page.get_by_role("button", name="Sign in", exact=True).click()
        await self.signed_in()

    async def signed_in(self) -> None:
        await self.page.get_by_role("button", name="Sign out").wait_for()

    async def go(self, link: str) -> None:
        """Follow a link of the navigation, as a person would, and wait for the page's heading."""
        await self.nav.get_by_role("link", name=link, exact=True).click()
        await self.page.get_by_role("heading", level=1).first.wait_for()
        await self.settled()

    async def settled(self) -> None:
        """Wait until nothing on the page is loading (the UI marks loading parts ``aria-busy``)."""
        await expect(self.page.locator("[aria-busy=true]")).to_have_count(0, timeout=SETTLE_TIMEOUT_MS)

    async def snap(self, label: str) -> Path:
        """A full-page screenshot in tests/ui/artifacts, named after the test and ``label``."""
        self.shots += 1
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{slug(label)}.png"
        await self.page.screenshot(path=path, full_page=True)
        return path


# How long a page may take to load everything it shows. A wait, not a measurement: a page with several
# reports behind it (Usage) on a machine running the rest of the suite on both cores can take seconds.
SETTLE_TIMEOUT_MS = 30_000
# Every other expectation waits as long as the browser's own actions do (``set_default_timeout`` below).
expect.set_options(timeout=10_000)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "page"


@asynccontextmanager
async def open_tab(browser: Browser, url: str, name: str) -> AsyncIterator[Browsing]:
    """A fresh browser context and page on the gateway at ``url`` (a second one in a test is a second
    person); photographed once more at the end, and failing if the page threw or broke its
    Content-Security-Policy."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(10_000)
    browsing = Browsing(await context.new_page(), url, name)
    try:
        yield browsing
        await browsing.snap("last")
    finally:
        await context.close()
    assert not browsing.errors, browsing.errors
