"""cost_usd: each part of the usage at its own price, per million tokens, exactly."""

from __future__ import annotations

from waypost.core.types import Usage
from waypost.metering.pricing import cost_usd
from waypost.settings import Prices


def test_no_prices_means_unknown_cost() -> None:
    assert cost_usd(Usage(input_tokens=1000, output_tokens=10), None) is None


def test_input_and_output_at_their_prices() -> None:
    prices = Prices(input=0.15, output=0.6)
    # 1,000 x 0.15 + 500 x 0.6 = 450 micro-dollars
    assert cost_usd(Usage(input_tokens=1000, output_tokens=500), prices) == 0.00045


def test_cache_reads_and_writes_at_their_own_prices() -> None:
    prices = Prices(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)
    usage = Usage(input_tokens=10_000, output_tokens=200, cache_read_tokens=6_000, cache_write_tokens=2_000)
    # uncached 2,000 x 3 + reads 6,000 x 0.3 + writes 2,000 x 3.75 + output 200 x 15
    # = 6,000 + 1,800 + 7,500 + 3,000 = 18,300 micro-dollars
    assert cost_usd(usage, prices) == 0.0183


def test_cache_prices_default_to_the_input_price() -> None:
    prices = Prices(input=2.0, output=8.0)
    usage = Usage(input_tokens=1_000, output_tokens=100, cache_read_tokens=400, cache_write_tokens=100)
    # all 1,000 input tokens at 2 + 100 x 8 = 2,800 micro-dollars
    assert cost_usd(usage, prices) == 0.0028


def test_reasoning_tokens_are_charged_as_part_of_output() -> None:
    prices = Prices(input=1.0, output=4.0)
    usage = Usage(input_tokens=0, output_tokens=300, reasoning_tokens=250)
    assert cost_usd(usage, prices) == 0.0012


def test_inconsistent_cache_counts_never_make_a_negative_uncached_part() -> None:
    prices = Prices(input=1.0, output=0.0, cache_read=0.5)
    usage = Usage(input_tokens=100, cache_read_tokens=300)
    assert cost_usd(usage, prices) == 0.00015


def test_free_model_costs_zero() -> None:
    assert cost_usd(Usage(input_tokens=5, output_tokens=5), Prices()) == 0.0
