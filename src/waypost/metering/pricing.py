"""The cost of one call, from its canonical usage and the model's prices (USD per million tokens).

Canonical ``Usage.input_tokens`` includes cache reads and writes, so the uncached part is what
remains after taking both out; each part is charged at its own price. Cache prices default to
the input price when a model sets none. The arithmetic is decimal, so the result is the
correctly rounded float of the exact cost (``0.0123`` means 0.0123, not 0.012300000000000002).
"""

from __future__ import annotations

from decimal import Decimal

from waypost.core.types import Usage
from waypost.settings import Prices

_MILLION = Decimal(1_000_000)


def _price(value: float) -> Decimal:
    # repr() gives the shortest decimal that reads back as the same float: the price as written.
    return Decimal(repr(value))


def cost_usd(usage: Usage, prices: Prices | None) -> float | None:
    """USD for ``usage`` at ``prices``; ``None`` when the model has no prices configured."""
    if prices is None:
        return None
    input_price = _price(prices.input)
    cache_read_price = input_price if prices.cache_read is None else _price(prices.cache_read)
    cache_write_price = input_price if prices.cache_write is None else _price(prices.cache_write)
    uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
    total = (
        uncached * input_price
        + usage.cache_read_tokens * cache_read_price
        + usage.cache_write_tokens * cache_write_price
        + usage.output_tokens * _price(prices.output)
    )
    return float(total / _MILLION)
