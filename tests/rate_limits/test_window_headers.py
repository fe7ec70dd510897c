"""The allowance headers of a request that counted in one window (``window_headers``, the common
case) are exactly those the general function gives for several windows (``allowance_headers``),
in both providers' formats: the same names, values and order."""

from __future__ import annotations

import random

from waypost.pipeline.rate_book import live_window
from waypost.pipeline.rate_headers import allowance_headers, window_headers
from waypost.settings import RateLimitWindow
from waypost.state.rate import NONE, Level

PERIODS = ("second", "minute", "hour", "day")


def test_one_windows_headers_match_the_general_function_on_random_windows() -> None:
    rng = random.Random(11)
    for _ in range(5000):
        limits = {
            name: rng.choice([None, 1, 5, 100, 10**6, rng.randint(1, 10**7)])
            for name in ("requests", "tokens", "input_tokens", "output_tokens")
        }
        if all(v is None for v in limits.values()):
            limits["requests"] = rng.randint(1, 1000)
        window = live_window(RateLimitWindow.model_validate({"per": rng.choice(PERIODS), **limits}))
        now = 1_800_000_000 + rng.random() * 10**6
        bucket = window.bucket(now)
        used = tuple(
            0 if cap == NONE else rng.choice([0, cap, cap + 3, rng.randint(0, cap)]) for cap in window.limits
        )
        newest = rng.choice([NONE, bucket, bucket - rng.randint(0, 59), bucket - 70])
        level = Level(used, newest)
        for anthropic in (False, True):
            ours: dict[str, str] = {"x-request-id": "kept"}
            window_headers(anthropic, window, level, now, ours)
            theirs = {"x-request-id": "kept", **allowance_headers(anthropic, [window], [level], now)}
            assert list(ours.items()) == list(theirs.items()), (window.limits, level, now, anthropic)
