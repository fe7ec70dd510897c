"""Refresh the README's screenshots: ``make screenshots`` (``python -m tests.ui.screenshots``).

Starts a gateway on a fresh database with a little made-up usage, signs in as the administrator in
Debian's headless Chromium, and photographs pages into docs/screenshots/. No real data, no real token.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.control.client import control
from tests.ui.browser import chromium, open_tab, ui_settings
from tests.usage_rows import insert, request_row

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Made-up traffic of the last two weeks: (days ago, model, requests, dollars each).
TRAFFIC = [
    (d, m, n, c)
    for d in range(1, 15)
    for m, n, c in (("gpt-4o", 3 + d % 4, 0.02), ("claude-sonnet", 2, 0.05))
]


async def refresh() -> list[Path]:
    DOCS.mkdir(parents=True, exist_ok=True)
    async with control(ui_settings()) as api, chromium() as browser:
        for name in ("laptop", "ci-pipeline", "notebook"):
            assert (await api.post("/me/tokens", {"name": name})).status_code == 201
        now = datetime.now(UTC)
        rows = [
            request_row(
                created_at=now - timedelta(days=days, hours=i),
                model=m,
                requested_model=m,
                cost_micros=int(c * 1e6),
            )
            for days, m, n, c in TRAFFIC
            for i in range(n)
        ]
        await insert(api.container.store, rows)
        written = []
        async with open_tab(browser, api.url, "readme") as tab:
            await tab.log_in()
            for link, file in (
                ("My tokens", "tokens.png"),
                ("Usage", "usage.png"),
                ("My usage", "my-usage.png"),
            ):
                await tab.go(link)
                await tab.page.screenshot(path=DOCS / file, full_page=False)
                written.append(DOCS / file)
        return written


if __name__ == "__main__":
    for path in asyncio.run(refresh()):
        print(path)
