"""One permission matrix, run through the API and through the browser: for every person and every
admin control, the UI shows the control exactly when the API allows its action.

Only the matrix itself is written down (who holds what, which control goes with which action); both
sides are measured, and any disagreement is reported as a list, so a hidden control the API allows
and a shown control the API refuses are both failures.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

pytest.importorskip("playwright")

from playwright.async_api import Browser, expect

from tests.control.client import PASSWORD, Control, Person
from tests.ui.browser import Browsing, open_tab

PEOPLE: dict[str, tuple[str, ...]] = {
    "nobody": (),
    "user-viewer": ("user.view",),
    "user-granter": ("user.view", "user.modify"),
    "token-viewer": ("token.view",),
    "token-revoker": ("token.view", "token.delete"),
    "rule-viewer": ("rule.view",),
    "rule-editor": ("rule.view", "rule.modify"),
    "rule-deleter": ("rule.view", "rule.delete"),
    "usage-viewer": ("usage.view",),
    "usage-auditor": ("usage.view", "audit.view"),
    "auditor": ("audit.view",),
    "model-viewer": ("model.view",),
    "group-viewer": ("group.view",),
    "group-granter": ("group.view", "group.modify"),
    "secret-viewer": ("secret.view",),
    "budget-and-limit-viewer": ("budget.view", "limit.view"),
}
GRANTEE = (
    "grantee@example.com"  # granted permissions by the matrix: not the victim, whose acts it would change
)
GROUP = "matrix-group"
RULE = {
    "name": "no-red",
    "weight": 5,
    "conditions": [{"type": "header", "header": "X-Team", "operator": "exact", "value": "red"}],
    "action": {"type": "block", "message": "paused"},
}


@dataclass
class World:
    """What the controls act on: another person's token for each person to try revoking."""

    api: Control
    victim: Person
    grantee: Person
    victim_tokens: dict[str, str]  # person -> id of a token of the victim's, named "of-<person>"


async def _nav_link(tab: Browsing, name: str) -> bool:
    return await tab.nav.get_by_role("link", name=name, exact=True).count() > 0


async def _on_page(tab: Browsing, link: str, control: Callable[[Browsing], Awaitable[bool]]) -> bool:
    """Whether ``control`` is shown on the page behind ``link`` (not shown if the page is not)."""
    if not await _nav_link(tab, link):
        return False
    await tab.go(link)
    await tab.snap(link)
    return await control(tab)


async def _revoke_button(tab: Browsing, person: str) -> bool:
    await tab.page.get_by_role("cell", name=f"of-{person}", exact=True).wait_for()
    return await tab.page.get_by_role("button", name=f"Revoke of-{person}").count() > 0


async def _rule_delete_button(tab: Browsing) -> bool:
    await tab.page.get_by_role("cell", name="no-red", exact=True).wait_for()
    return await tab.page.get_by_role("button", name="Delete no-red").count() > 0


async def _user_grant_button(tab: Browsing) -> bool:
    await tab.page.get_by_role("button", name=f"Permissions of {GRANTEE}").click()
    editor = tab.page.get_by_role("region", name=f"Permissions of {GRANTEE}")
    await editor.get_by_role("list", name=f"Granted directly to {GRANTEE}").wait_for()
    return await editor.get_by_role("button", name=f"Grant to {GRANTEE}").count() > 0


async def _group_grant_button(tab: Browsing) -> bool:
    await tab.page.get_by_role("button", name=f"Open {GROUP}").click()
    editor = tab.page.get_by_role("region", name=f"Permissions of {GROUP}")
    await editor.get_by_role("list", name=f"Granted directly to {GROUP}").wait_for()
    return await editor.get_by_role("button", name=f"Grant to {GROUP}").count() > 0


def _one_held(person: str) -> list[str]:
    """A permission ``person`` holds (granting needs holding it), or one for those who hold none."""
    return list(PEOPLE.get(person, ())[:1]) or ["user.view"]


async def _rule_save_button(tab: Browsing) -> bool:
    await tab.page.get_by_role("button", name=re.compile(r"^(Edit|Show) no-red$")).click()
    await tab.page.get_by_label("Rule no-red as JSON").wait_for()
    return await tab.page.get_by_role("button", name="Save rule no-red").count() > 0


@dataclass(frozen=True)
class AdminControl:
    """One admin control: how the browser finds it, and the API action it stands for."""

    name: str
    shown: Callable[[Browsing, str], Awaitable[bool]]
    act: Callable[[World, str, str], Awaitable[int]]  # (world, person, their access token) -> status


def page(link: str, path: str) -> AdminControl:
    """An admin page: its link in the navigation, and reading what it lists."""
    return AdminControl(
        f"{link} page",
        lambda tab, _: _nav_link(tab, link),
        lambda w, _, token: _status(w.api.get(path, token=token)),
    )


async def _audit_log(tab: Browsing) -> bool:
    return await tab.page.get_by_role("heading", name="Audit log").count() > 0


CONTROLS = [
    page("Users", "/admin/users"),
    page("All tokens", "/admin/tokens"),
    page("Rules", "/admin/rules"),
    page("Usage", "/admin/usage/summary"),
    page("Models", "/admin/models"),
    page("Groups", "/admin/groups"),
    page("Secrets", "/admin/secrets"),
    page("Budgets", "/admin/budgets"),
    page("Rate limits", "/admin/limits"),
    AdminControl(
        "revoking another person's token",
        lambda tab, person: _on_page(tab, "All tokens", lambda t: _revoke_button(t, person)),
        lambda w, person, token: _status(
            w.api.delete(f"/admin/tokens/{w.victim_tokens[person]}", token=token)
        ),
    ),
    AdminControl(
        "saving a rule",
        lambda tab, _: _on_page(tab, "Rules", _rule_save_button),
        lambda w, _, token: _status(w.api.patch("/admin/rules/no-red", {"weight": 5}, token=token)),
    ),
    AdminControl(
        "deleting a rule",  # a rule that does not exist: 404 when allowed, 403 when not
        lambda tab, _: _on_page(tab, "Rules", _rule_delete_button),
        lambda w, _, token: _status(w.api.delete("/admin/rules/no-such-rule", token=token)),
    ),
    AdminControl(
        "granting a user a permission",
        lambda tab, _: _on_page(tab, "Users", _user_grant_button),
        lambda w, person, token: _status(
            w.api.post(
                f"/admin/users/{w.grantee.id}/permissions",
                {"permissions": _one_held(person)},
                token=token,
            )
        ),
    ),
    AdminControl(
        "granting a group a permission",
        lambda tab, _: _on_page(tab, "Groups", _group_grant_button),
        lambda w, person, token: _status(
            w.api.post(f"/admin/groups/{GROUP}/permissions", {"permissions": _one_held(person)}, token=token)
        ),
    ),
    AdminControl(
        "reading the audit log",
        lambda tab, _: _on_page(tab, "Audit log", _audit_log),
        lambda w, _, token: _status(w.api.get("/admin/audit-logs", token=token)),
    ),
]


async def _status(call: Awaitable[httpx.Response]) -> int:
    return (await call).status_code


def _allowed(status: int) -> bool:
    assert status < 500 and status != 401, f"the action itself failed: {status}"
    return status != 403


async def test_the_ui_shows_exactly_the_controls_the_api_allows(browser: Browser, api: Control) -> None:
    assert (await api.post("/admin/rules", RULE)).status_code == 201
    assert (await api.post("/admin/groups", {"name": GROUP})).status_code == 201
    victim = await api.person("victim@example.com")
    world = World(api, victim, await api.person(GRANTEE), {})
    people: dict[str, Person | None] = {
        "admin": None,
        **{name: await api.person(f"{name}@example.com", permissions=held) for name, held in PEOPLE.items()},
    }
    for name in people:
        made = await api.post("/me/tokens", {"name": f"of-{name}"}, token=victim.token)
        assert made.status_code == 201, made.text
        world.victim_tokens[name] = made.json()["id"]

    tabs_at_once = asyncio.Semaphore(3)  # a few tabs at a time: 2 cores also run the gateway

    async def look(name: str, person: Person | None) -> dict[str, bool]:
        """What the UI shows ``name``, in a tab of their own."""
        async with tabs_at_once, open_tab(browser, api.url, f"matrix-{name}") as tab:
            await (tab.log_in(person.email, PASSWORD) if person else tab.log_in())
            return {control.name: await control.shown(tab, name) for control in CONTROLS}

    seen = await asyncio.gather(*(look(name, person) for name, person in people.items()))
    disagreements = []
    for (name, person), shown in zip(people.items(), seen, strict=True):
        token = person.token if person else (await api.login()).json()["access_token"]
        for control in CONTROLS:
            allowed = _allowed(await control.act(world, name, token))
            if shown[control.name] != allowed:
                disagreements.append(
                    f"{name}: {control.name}: UI shows={shown[control.name]}, API allows={allowed}"
                )
    assert not disagreements, "\n".join(disagreements)


async def test_a_person_without_permissions_sees_no_administration(tab: Browsing, api: Control) -> None:
    plain = await api.person("plain@example.com")
    await tab.log_in(plain.email, PASSWORD)
    await expect(tab.nav.get_by_role("link", name="My tokens", exact=True)).to_be_visible()
    await expect(tab.page.get_by_role("list", name="Administration")).to_have_count(0)
    await expect(tab.page.get_by_text("Administration")).to_have_count(0)
    await tab.snap("no administration")

    await tab.open("admin/users")  # an admin page's address, typed in: not shown either
    await expect(tab.page.get_by_role("heading", level=1)).to_have_text("My tokens")
    await expect(tab.page.get_by_role("heading", name="Users")).to_have_count(0)
