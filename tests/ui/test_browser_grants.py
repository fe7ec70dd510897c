"""The permissions editor: granting and revoking a user's and a group's permissions in the browser,
checked through the API."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from playwright.async_api import expect

from tests.control.client import Control
from tests.ui.browser import Browsing


async def test_a_permission_is_granted_to_and_revoked_from_a_user(tab: Browsing, api: Control) -> None:
    await api.login()
    dana = await api.person("dana@example.com")
    await tab.log_in()
    await tab.go("Users")
    await tab.page.get_by_role("button", name="Permissions of dana@example.com").click()
    editor = tab.page.get_by_role("region", name="Permissions of dana@example.com")
    await editor.get_by_label("Permission to grant to dana@example.com").select_option("usage.view")
    await editor.get_by_role("button", name="Grant to dana@example.com").click()
    await expect(editor.get_by_role("button", name="Revoke usage.view from dana@example.com")).to_be_visible()
    granted = (await api.get(f"/admin/users/{dana.id}/permissions")).json()
    assert granted["direct"] == ["usage.view"]
    await tab.snap("granted")

    await editor.get_by_role("button", name="Revoke usage.view from dana@example.com").click()
    await expect(editor.get_by_text("none granted directly")).to_be_visible()
    assert (await api.get(f"/admin/users/{dana.id}/permissions")).json()["direct"] == []


async def test_a_permission_is_granted_to_a_group(tab: Browsing, api: Control) -> None:
    await api.login()
    assert (await api.post("/admin/groups", {"name": "auditors"})).status_code == 201
    await tab.log_in()
    await tab.go("Groups")
    editor = tab.page.get_by_role("region", name="Permissions of auditors")
    if not await editor.count():  # the group's details open from its row
        await tab.page.get_by_role("button", name="auditors").first.click()
    await editor.get_by_label("Permission to grant to auditors").select_option("audit.view")
    await editor.get_by_role("button", name="Grant to auditors").click()
    await expect(editor.get_by_role("button", name="Revoke audit.view from auditors")).to_be_visible()
    assert (await api.get("/admin/groups/auditors/permissions")).json()["direct"] == ["audit.view"]
