"""Accessibility of every page, checked in the browser: every control has a label or a name, text
has AA contrast against what is behind it, the keyboard reaches the skip link first and the
focused element is visibly marked, and nothing is wider than a phone's screen. axe-core (npm's, pinned,
installed under .tools/axe by scripts/install-axe, which ``make test`` runs) checks every page and
opened panel against WCAG 2.1 A and AA; the keyboard closes panels with Escape and never loses focus."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright")

from playwright.async_api import expect

from tests.control.client import Control
from tests.ui.browser import Browsing
from tests.usage_rows import insert, request_row

AXE = Path(
    os.environ.get(
        "WAYPOST_AXE",
        Path(__file__).parents[2] / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js",
    )
)
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# Every page of an administrator's navigation.
PAGES = [
    "My models", "My tokens", "My usage", "Snippets", "My account", "Users", "All tokens", "Rules",
    "Usage", "Audit log", "Models", "Groups", "Secrets", "Budgets", "Rate limits", "Deployment health",
]  # fmt: skip

# Run in the page: the problems of its controls and text (a list of human-readable findings).
AUDIT = """() => {
  const problems = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const named = (el) => (el.getAttribute("aria-label") || "").trim() || (el.getAttribute("aria-labelledby") || "").trim();
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !visible(el)) continue;
    if (!(el.labels && el.labels.length) && !named(el)) problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!visible(el)) continue;
    if (!el.textContent.trim() && !named(el) && !el.title) problems.push(`nameless ${el.outerHTML.slice(0, 80)}`);
  }
  for (const el of document.querySelectorAll("img")) {
    if (!el.hasAttribute("alt")) problems.push(`image without alt ${el.outerHTML.slice(0, 80)}`);
  }
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const behind = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const [r, g, b, a] = rgb(getComputedStyle(node).backgroundColor);
      if (a === undefined || a > 0) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || seen.has(el) || !node.textContent.trim() || !visible(el)) continue;
    seen.add(el);
    if (el.closest(".visually-hidden, [aria-hidden=true], svg, option")) continue;
    const style = getComputedStyle(el);
    const fg = luminance(rgb(style.color)), bg = luminance(behind(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const large = parseFloat(style.fontSize) >= 24 || (parseFloat(style.fontSize) >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)} for "${node.textContent.trim().slice(0, 40)}" (${style.color} on ${behind(el)})`);
  }
  return problems;
}"""


async def _problems(tab: Browsing) -> list[Any]:
    found: list[Any] = await tab.page.evaluate(AUDIT)
    return found


async def test_every_page_has_labelled_controls_and_aa_contrast(tab: Browsing) -> None:
    await tab.open()
    login = await _problems(tab)
    await tab.log_in()
    problems = {"Sign in": login} if login else {}
    for title in PAGES:
        await tab.go(title)
        found = await _problems(tab)
        if found:
            problems[title] = found
    assert not problems, problems


async def test_the_keyboard_reaches_the_skip_link_first_and_focus_is_visible(tab: Browsing) -> None:
    await tab.log_in()
    await tab.open("tokens")  # a fresh load: nothing focused yet
    await tab.signed_in()
    await tab.page.keyboard.press("Tab")
    focused = await tab.page.evaluate(
        "() => { const el = document.activeElement; const s = getComputedStyle(el);"
        " return [el.textContent.trim(), s.outlineStyle, s.outlineWidth, s.boxShadow]; }"
    )
    text, outline_style, outline_width, shadow = focused
    assert text == "Skip to content"
    assert (outline_style != "none" and outline_width != "0px") or shadow != "none", focused
    await tab.page.keyboard.press("Enter")
    assert await tab.page.evaluate("() => document.activeElement.id") == "main"


@pytest.mark.parametrize("title", ["My tokens", "Usage", "Audit log", "Users"])
async def test_pages_fit_a_phones_width(tab: Browsing, title: str) -> None:
    await tab.page.set_viewport_size({"width": 375, "height": 800})
    await tab.log_in()
    await tab.page.goto(tab.page.url)  # the layout of a phone from the start
    await tab.signed_in()
    nav = tab.nav.get_by_role("link", name=title, exact=True)
    await nav.click()
    await tab.settled()
    width = await tab.page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1] + 1, f"{title}: the page is {width[0]} px wide on a {width[1]} px screen"


async def _axe(tab: Browsing) -> list[str]:
    """axe-core's WCAG 2.1 A and AA violations on the page as it is now, one line per element."""
    if not await tab.page.evaluate("() => typeof window.axe === 'object'"):
        # Evaluated by the browser's debugging protocol, which the page's Content-Security-Policy
        # (no inline script) does not govern; nothing is added to the page itself.
        await tab.page.evaluate(AXE.read_text(encoding="utf-8"))
    found: list[str] = await tab.page.evaluate(
        """async (tags) => {
          const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
          return result.violations.flatMap((v) =>
            v.nodes.map((n) => `${v.id} (${v.impact}): ${v.help} at ${n.target.join(" ")}`));
        }""",
        WCAG_AA,
    )
    return found


async def _seed(api: Control) -> None:
    """Something on every page: a group, a rule, a token, a budget and a request in the log."""
    await api.login()
    assert (await api.post("/admin/groups", {"name": "auditors"})).status_code == 201
    rule = {"name": "no-red", "weight": 5, "conditions": [{"type": "header", "header": "X-Team", "operator": "exact",
            "value": "red"}], "action": {"type": "block", "message": "paused"}}  # fmt: skip
    assert (await api.post("/admin/rules", rule)).status_code == 201
    assert (await api.post("/me/tokens", {"name": "laptop"})).status_code == 201
    await insert(api.container.store, [request_row(request_id="req-a11y", created_at=datetime.now(UTC))])


# A panel that a page's button opens, looked at by axe too: (page, the button's name).
PANELS = [
    ("Users", "Permissions of dana@example.com"),
    ("Groups", "Open auditors"),
    ("Rules", "Edit no-red"),
    ("Audit log", "Details of request req-a11y"),
]


async def test_axe_finds_no_wcag_aa_violation_on_any_page_or_panel(tab: Browsing, api: Control) -> None:
    if not AXE.is_file():
        pytest.skip(f"no axe-core at {AXE}: run scripts/install-axe (make test does)")
    await _seed(api)
    await api.person("dana@example.com")
    await tab.open()
    violations = {"Sign in": await _axe(tab)}
    await tab.log_in()
    for title in PAGES:
        await tab.go(title)
        violations[title] = await _axe(tab)
    for title, button in PANELS:
        await tab.go(title)
        await tab.page.get_by_role("button", name=button).click()
        await tab.settled()
        violations[f"{title}, {button}"] = await _axe(tab)
    found = {where: lines for where, lines in violations.items() if lines}
    assert not found, found


async def test_escape_closes_an_opened_panel_and_focus_returns_to_its_button(
    tab: Browsing, api: Control
) -> None:
    await _seed(api)
    await tab.log_in()
    await tab.go("Groups")
    opener = tab.page.get_by_role("button", name="Open auditors")
    await opener.focus()
    await tab.page.keyboard.press("Enter")
    editor = tab.page.get_by_label("group auditors as JSON")
    await editor.focus()  # inside the panel, as after tabbing into it
    await tab.page.keyboard.press("Escape")
    await expect(editor).to_have_count(0)
    await expect(opener).to_be_focused()
    await expect(opener).to_have_attribute("aria-expanded", "false")


async def test_moving_to_another_page_puts_the_focus_on_its_content(tab: Browsing) -> None:
    await tab.log_in()
    await tab.nav.get_by_role("link", name="Users", exact=True).focus()
    await tab.page.keyboard.press("Enter")
    await expect(tab.page.get_by_role("heading", level=1)).to_have_text("Users")
    await expect(tab.page.locator("#main")).to_be_focused()  # the page's effect runs after it is drawn
