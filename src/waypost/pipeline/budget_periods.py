"""Budget periods: which part of time a budget counts now, and when that changes.

* Calendar-aligned (``rolling: false``) in the budget's time zone: a day from midnight, a week
  from Monday, a month from the 1st, a quarter from January, April, July or October 1st. The
  spend starts again from zero when the next one begins (``resets_at``).
* Rolling (``rolling: true``): the last 24 hours, 7 days, 30 days or 90 days, counted in 24 steps
  (an hour for a day, 7 hours for a week, ...): spend leaves the window one step at a time, the
  oldest step's at ``resets_at``. The window is between 23 and 24 steps long.
* ``total``: everything since the budget was created (or reset); it never resets by itself.

Counters (``state.counters``) number the buckets: calendar periods one bucket per period (the
day's ordinal, the Monday's, ``12 * year + month``, ``4 * year + quarter``), rolling ones one
per step of Unix time, ``total`` a single bucket 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("daily", "weekly", "monthly", "quarterly", "total")
ROLLING_SECONDS = {"daily": 86_400, "weekly": 7 * 86_400, "monthly": 30 * 86_400, "quarterly": 90 * 86_400}
STEPS = 24
KEEP_AFTER = 86_400  # a counter outlives its last period by a day (seconds)


@dataclass(frozen=True, slots=True)
class Span:
    """What a budget counts at one moment."""

    bucket: int  # where spend goes now
    first: int  # the oldest bucket that still counts
    start: datetime | None  # the window's start (None: since ever)
    resets_at: datetime | None  # when spend next leaves the window (None: never)
    valid_until: float  # Unix time until which ``bucket`` and ``first`` hold
    step: int | None  # rolling windows: seconds per bucket
    expires_at: int  # when a counter of this span may be dropped (0: never)

    def ranges(self) -> dict[int, tuple[datetime | None, datetime | None]]:
        """Each counting bucket's [start, end) in time (for reloading its spend)."""
        if self.step is None:
            return {self.bucket: (self.start, None)}
        return {
            b: (datetime.fromtimestamp(b * self.step, UTC), datetime.fromtimestamp((b + 1) * self.step, UTC))
            for b in range(self.first, self.bucket + 1)
        }


def check_period(period: str, rolling: bool) -> None:
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; valid periods: {', '.join(PERIODS)}")
    if rolling and period == "total":
        raise ValueError("a total budget cannot be rolling")


def span(period: str, rolling: bool, tz: ZoneInfo, now: float) -> Span:
    """The span of a ``period`` budget at Unix time ``now``."""
    if period == "total":
        return Span(0, 0, None, None, math.inf, None, 0)
    if rolling:
        step = ROLLING_SECONDS[period] // STEPS
        bucket = int(now // step)
        first = bucket - STEPS + 1
        until = (bucket + 1) * step
        return Span(
            bucket,
            first,
            datetime.fromtimestamp(first * step, UTC),
            datetime.fromtimestamp((first + 1) * step, UTC),
            until,
            step,
            until + ROLLING_SECONDS[period] + KEEP_AFTER,
        )
    today = datetime.fromtimestamp(now, tz).date()
    if period == "daily":
        begin, end, bucket = today, today + timedelta(days=1), today.toordinal()
    elif period == "weekly":
        begin = today - timedelta(days=today.weekday())
        end, bucket = begin + timedelta(days=7), begin.toordinal()
    elif period == "monthly":
        begin = today.replace(day=1)
        end = date(begin.year + (begin.month == 12), begin.month % 12 + 1, 1)
        bucket = 12 * begin.year + begin.month - 1
    elif period == "quarterly":
        quarter = (today.month - 1) // 3
        begin = date(today.year, 3 * quarter + 1, 1)
        end = date(today.year + (quarter == 3), (3 * quarter + 3) % 12 + 1, 1)
        bucket = 4 * today.year + quarter
    else:
        raise ValueError(f"unknown period {period!r}")
    start = datetime.combine(begin, time(0), tz).astimezone(UTC)
    reset = datetime.combine(end, time(0), tz).astimezone(UTC)
    return Span(bucket, bucket, start, reset, reset.timestamp(), None, int(reset.timestamp()) + KEEP_AFTER)


_WORDS = {"daily": "per day", "weekly": "per week", "monthly": "per month", "quarterly": "per quarter"}
_ROLLING_WORDS = {
    "daily": "per rolling 24 hours",
    "weekly": "per rolling 7 days",
    "monthly": "per rolling 30 days",
    "quarterly": "per rolling 90 days",
}


def period_words(period: str, rolling: bool) -> str:
    """``per month``, ``per rolling 30 days``, ``in total``."""
    if period == "total":
        return "in total"
    return (_ROLLING_WORDS if rolling else _WORDS)[period]
