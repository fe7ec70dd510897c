"""The rules page: a dry run of a draft rule on a sample request, in the browser."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("playwright")

from playwright.async_api import expect

from tests.control.client import Control
from tests.ui.browser import Browsing

DRAFT = {
    "name": "no-passwords",
    "conditions": [{"type": "content", "operator": "contains", "value": "password"}],
    "action": {"type": "block", "message": "no passwords in prompts"},
}
SAMPLE = {"model": "echo", "messages": [{"role": "user", "content": "my password is hunter2"}]}


async def test_a_dry_run_shows_what_a_draft_rule_would_do(tab: Browsing) -> None:
    await tab.log_in()
    await tab.go("Rules")
    await tab.page.get_by_label("Rule to try").fill(json.dumps(DRAFT))
    await tab.page.get_by_label("Sample request").fill(json.dumps(SAMPLE))
    await tab.page.get_by_role("button", name="Run dry run").click()
    result = tab.page.get_by_role("region", name="Dry-run result")
    await expect(result).to_contain_text("no passwords in prompts")
    await tab.snap("dry run")


async def test_a_draft_that_is_not_json_is_refused_before_sending(tab: Browsing) -> None:
    await tab.log_in()
    await tab.go("Rules")
    await tab.page.get_by_label("Rule to try").fill("{not json")
    await tab.page.get_by_label("Sample request").fill(json.dumps(SAMPLE))
    await tab.page.get_by_role("button", name="Run dry run").click()
    await expect(tab.page.get_by_role("alert")).to_contain_text("The rule to try is not valid JSON")
    await expect(tab.page.get_by_role("region", name="Dry-run result")).to_have_count(0)


async def test_a_rule_is_deleted_after_confirmation(tab: Browsing, api: Control) -> None:
    await api.login()
    created = await api.post("/admin/rules", json={**DRAFT, "name": "to-be-deleted"})
    assert created.status_code == 201, created.text
    tab.page.once("dialog", lambda dialog: dialog.accept())
    await tab.log_in()
    await tab.go("Rules")
    await tab.page.get_by_role("button", name="Delete to-be-deleted").click()
    await expect(tab.page.get_by_role("cell", name="to-be-deleted", exact=True)).to_have_count(0)
    names = [r["name"] for r in (await api.get("/admin/rules")).json()["data"]]
    assert "to-be-deleted" not in names
