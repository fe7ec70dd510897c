"""The permissions editor: granting and revoking a user's and a group's permissions in the browser,
each change checked through the API."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")

from playwright.async_api import expect

from tests.control.client import PASSWORD, Control
from tests.harness import ADMIN_EMAIL
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
    revoke = editor.get_by_role("button", name="Revoke usage.view from dana@example.com")
    await expect(revoke).to_be_visible()
    assert (await api.get(f"/admin/users/{dana.id}/permissions")).json()["direct"] == ["usage.view"]
    await tab.snap("granted")

    await revoke.click()
    await expect(editor.get_by_text("none granted directly")).to_be_visible()
    assert (await api.get(f"/admin/users/{dana.id}/permissions")).json()["direct"] == []


async def test_a_permission_is_granted_to_a_group(tab: Browsing, api: Control) -> None:
    await api.login()
    assert (await api.post("/admin/groups", {"name": "auditors"})).status_code == 201
    await tab.log_in()
    await tab.go("Groups")
    await tab.page.get_by_role("button", name="Open auditors").click()
    editor = tab.page.get_by_role("region", name="Permissions of auditors")
    await editor.get_by_label("Permission to grant to auditors").select_option("audit.view")
    await editor.get_by_role("button", name="Grant to auditors").click()
    await expect(editor.get_by_role("button", name="Revoke audit.view from auditors")).to_be_visible()
    assert (await api.get("/admin/groups/auditors/permissions")).json()["direct"] == ["audit.view"]


async def test_only_the_permissions_the_granter_holds_are_offered(tab: Browsing, api: Control) -> None:
    await api.login()
    await api.person("erin@example.com")
    granter = await api.person("granter@example.com", permissions=("user.view", "user.modify"))
    await tab.log_in(granter.email, PASSWORD)
    await tab.go("Users")
    await tab.page.get_by_role("button", name="Permissions of erin@example.com").click()
    choice = tab.page.get_by_label("Permission to grant to erin@example.com")
    await choice.wait_for()
    offered = await choice.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert offered == ["", "user.modify", "user.view"]


async def test_nobody_is_offered_to_change_their_own_permissions(tab: Browsing, api: Control) -> None:
    await api.login()
    await tab.log_in()
    await tab.go("Users")
    await tab.page.get_by_role("button", name=f"Permissions of {ADMIN_EMAIL}").click()
    editor = tab.page.get_by_role("region", name=f"Permissions of {ADMIN_EMAIL}")
    await expect(editor.get_by_text("Nobody can change their own permissions")).to_be_visible()
    await expect(editor.get_by_role("button", name=f"Grant to {ADMIN_EMAIL}")).to_have_count(0)
