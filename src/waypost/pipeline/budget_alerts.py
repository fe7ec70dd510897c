"""Budget alerts: when a request's settlement carries a budget's spend past one of its
thresholds (percent of its limit; ``budgets.alert_thresholds`` or the budget's own), a warning in
the log and, when a webhook is configured, a JSON POST to it through the gateway's outbound HTTP
client (the outbound URL guard applies; a failed delivery is logged, never retried).

Settlements are atomic, so exactly one request crosses each threshold: one alert per crossing,
whatever the number of workers (a rolling window's spend may fall back below and cross again).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from waypost.core.errors import GatewayError
from waypost.pipeline.budget_book import MICROS_PER_USD, LiveBudget, usd_text
from waypost.providers.http import HttpClient
from waypost.state.counters import Tally

log = logging.getLogger("waypost.budgets")

WEBHOOK_TIMEOUT = 5.0  # seconds


def percent(micros: int, tokens: int, budget: LiveBudget) -> float:
    """How much of the budget ``micros`` and ``tokens`` use: the larger share of its limits."""
    rec = budget.record
    share = 0.0
    if rec.limit_micros is not None:
        share = 100.0 * micros / rec.limit_micros if rec.limit_micros else (100.0 if micros else 0.0)
    if rec.limit_tokens is not None:
        of_tokens = 100.0 * tokens / rec.limit_tokens if rec.limit_tokens else (100.0 if tokens else 0.0)
        share = max(share, of_tokens)
    return max(share, 0.0)


class BudgetAlerts:
    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self._sending: set[asyncio.Task[None]] = set()

    def check(self, budget: LiveBudget, before: Tally, micros: int, tokens: int, now: float) -> None:
        """Alert for each threshold that spend went past, from ``before`` to ``before`` plus
        ``micros`` and ``tokens``."""
        if not budget.thresholds or (micros <= 0 and tokens <= 0):
            return
        spent_micros, spent_tokens = before.spent_micros + micros, before.spent_tokens + tokens
        rec, first = budget.record, budget.thresholds[0]
        # A zero limit is left to ``percent`` (any spend against it is 100 %, even a negative one).
        if (
            rec.limit_micros is None
            or (rec.limit_micros and 100 * spent_micros < (first - 1) * rec.limit_micros)
        ) and (
            rec.limit_tokens is None
            or (rec.limit_tokens and 100 * spent_tokens < (first - 1) * rec.limit_tokens)
        ):
            return  # the usual request: a whole percent short of the first threshold, in integers
        now_at = percent(spent_micros, spent_tokens, budget)
        if now_at < budget.thresholds[0]:  # (sorted) the usual request: no threshold reached yet
            return
        was = percent(before.spent_micros, before.spent_tokens, budget)
        for threshold in budget.thresholds:
            if was < threshold <= now_at:
                self.alert(budget, threshold, spent_micros, spent_tokens, now)

    def alert(
        self, budget: LiveBudget, threshold: int, spent_micros: int, spent_tokens: int, now: float
    ) -> None:
        rec = budget.record
        resets = budget.span(now).resets_at
        payload: dict[str, Any] = {
            "type": "budget.threshold",
            "budget": rec.name,
            "budget_id": rec.id,
            "scope": rec.scope,
            "target": budget.label,
            "threshold_percent": threshold,
            "period": rec.period,
            "rolling": rec.rolling,
            "limit_usd": None if rec.limit_micros is None else rec.limit_micros / MICROS_PER_USD,
            "spent_usd": spent_micros / MICROS_PER_USD,
            "limit_tokens": rec.limit_tokens,
            "spent_tokens": spent_tokens,
            "resets_at": resets.isoformat() if resets is not None else None,
            "at": datetime.fromtimestamp(now, UTC).isoformat(),
        }
        log.warning(
            "budget %s reached %d%%: %s spent%s",
            budget.describe(),
            threshold,
            usd_text(spent_micros),
            f", {spent_tokens:,} tokens" if rec.limit_tokens is not None else "",
            extra={"alert": payload},
        )
        if budget.webhook:
            task = asyncio.get_running_loop().create_task(self._deliver(budget.webhook, payload))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        what = "the budget alert webhook"
        try:
            status, _ = await self._http.request_json(
                "POST", url, json=payload, timeout=WEBHOOK_TIMEOUT, what=what
            )
        except GatewayError as err:
            if err.upstream_status is not None and 200 <= err.upstream_status < 300:
                return  # delivered; the answer was not JSON, which a webhook need not send
            log.warning("budget alert not delivered: %s", err.message, extra={"budget": payload["budget"]})
            return
        if status >= 300:
            log.warning(
                "budget alert not delivered: %s answered %d",
                what,
                status,
                extra={"budget": payload["budget"]},
            )

    async def drain(self) -> None:
        """Wait for the alerts being delivered (shutdown)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
