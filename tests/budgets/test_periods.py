"""Budget periods: calendar-aligned in the budget's time zone, rolling in 24 steps, or total."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from waypost.pipeline.budget_periods import STEPS, check_period, span

PARIS = ZoneInfo("Europe/Paris")


def at(text: str, tz: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "now", "start", "reset"),
    [
        ("daily", "2026-03-14 23:30", "2026-03-13 23:00", "2026-03-14 23:00"),  # Paris is UTC+1 in March
        ("weekly", "2026-03-14 10:00", "2026-03-08 23:00", "2026-03-15 23:00"),  # from Monday 9 March
        ("monthly", "2026-03-14 10:00", "2026-02-28 23:00", "2026-03-31 22:00"),  # summer time from 29 March
        ("quarterly", "2026-12-31 23:59", "2026-09-30 22:00", "2026-12-31 23:00"),  # into the next year
    ],
)
def test_a_calendar_period_starts_and_resets_at_local_midnight(
    period: str, now: str, start: str, reset: str
) -> None:
    s = span(period, False, PARIS, at(now))

    assert (s.start, s.resets_at) == (utc(start), utc(reset))
    assert s.first == s.bucket  # only the current period counts


def test_the_next_calendar_period_is_a_new_bucket() -> None:
    march = span("monthly", False, PARIS, at("2026-03-31 23:59"))
    april = span("monthly", False, PARIS, at("2026-04-01 00:00"))

    assert april.bucket == march.bucket + 1 == april.first
    assert march.valid_until == at("2026-04-01 00:00")


def test_a_day_is_counted_in_the_budgets_own_time_zone() -> None:
    moment = at("2026-06-01 03:00", UTC)

    tokyo = span("daily", False, ZoneInfo("Asia/Tokyo"), moment)  # already noon on 1 June
    new_york = span("daily", False, ZoneInfo("America/New_York"), moment)  # still 31 May

    assert tokyo.start == utc("2026-05-31 15:00")
    assert new_york.start == utc("2026-05-31 04:00")


def test_a_rolling_window_drops_its_oldest_step_first() -> None:
    now = at("2026-03-14 10:30", UTC)

    s = span("daily", True, PARIS, now)

    assert s.step == 3600 and s.bucket - s.first == STEPS - 1
    assert s.start == utc("2026-03-13 11:00")
    assert s.resets_at == utc("2026-03-13 12:00")  # when the oldest hour leaves the window
    assert len(s.ranges()) == STEPS


def test_a_total_budget_never_resets() -> None:
    s = span("total", False, PARIS, at("2026-03-14 10:30"))

    assert (s.bucket, s.first, s.start, s.resets_at) == (0, 0, None, None)


def test_a_total_budget_cannot_be_rolling() -> None:
    with pytest.raises(ValueError, match="cannot be rolling"):
        check_period("total", True)
    with pytest.raises(ValueError, match="valid periods"):
        check_period("yearly", False)
