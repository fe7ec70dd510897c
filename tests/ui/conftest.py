"""End-to-end tests of the web UI in headless Chromium: Debian's build (``scripts/install-chromium``,
run by ``make test``), driven by Playwright through ``executable_path``. Playwright's own browser
download is never used.

One browser per worker session, a fresh browser context (so a fresh per-tab session) and page per test,
and a fresh gateway per test. Every page a test looks at is photographed into ``tests/ui/artifacts/``
(git-ignored), so a failure can be seen, not only read.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from tests.control.client import Control, control

if TYPE_CHECKING:
    from playwright.async_api import Browser

    from tests.ui.browser import Browsing

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The browser lives in the session's event loop, so every browser test runs in that loop too.
    for item in items:
        path = Path(str(item.path))
        if path.parent == HERE and path.name.startswith("test_browser_"):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    # Imported here: the other tests of this folder (serving, the build) need no browser.
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the UI tests need the playwright package (pip install -e '.[dev]')")
    from tests.ui.browser import CHROMIUM, chromium

    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-chromium (make test does)")
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="session")
async def api() -> AsyncIterator[Control]:
    """A fresh gateway (fresh database) serving the UI, and an API client for it."""
    from tests.ui.browser import ui_settings

    async with control(ui_settings()) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def tab(browser: Browser, api: Control, request: pytest.FixtureRequest) -> AsyncIterator[Browsing]:
    """A browser tab on ``api``'s gateway, named after the test for its screenshots."""
    from tests.ui.browser import open_tab, slug

    async with open_tab(browser, api.url, slug(request.node.name)) as browsing:
        yield browsing
