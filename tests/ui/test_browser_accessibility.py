"""Accessibility of every page, checked in the browser: every control has a label or a name, text
has AA contrast against what is behind it, the keyboard reaches the skip link first and the
focused element is visibly marked, and nothing is wider than a phone's screen."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("playwright")

from tests.ui.browser import Browsing

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
