"""Model assignment in the browser: an administrator assigns a model to a person, who then sees it."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from playwright.async_api import Browser, expect

from tests.control.client import PASSWORD, Control
from tests.ui.browser import Browsing, open_tab


async def test_a_model_assigned_in_the_ui_appears_in_the_persons_models(
    tab: Browsing, browser: Browser, api: Control
) -> None:
    dana = await api.person("dana@example.com")
    async with open_tab(browser, api.url, "model-assignment-dana") as theirs:
        await theirs.log_in(dana.email, PASSWORD)
        await theirs.go("My models")
        await expect(theirs.page.get_by_role("cell", name="echo", exact=True)).to_have_count(0)
        await theirs.snap("before")

        await tab.log_in()
        await tab.go("Models")
        await tab.page.get_by_role("button", name="Open echo").click()
        assign = tab.page.get_by_role("region", name="Assign echo")
        await assign.get_by_label("User or group").fill(dana.email)
        await assign.get_by_role("button", name="Assign", exact=True).click()
        row = tab.page.get_by_role("row").filter(has=tab.page.get_by_role("cell", name="echo", exact=True))
        await expect(row.first).to_contain_text(dana.email)
        await tab.snap("assigned")

        await theirs.page.reload()
        await expect(theirs.page.get_by_role("cell", name="echo", exact=True)).to_be_visible()
        await theirs.snap("after")
    mine = await api.get("/me/models", token=dana.token)
    assert [m["name"] for m in mine.json()["data"]] == ["echo"]
