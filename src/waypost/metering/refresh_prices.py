"""Check the bundled price catalogue against ``genai-prices`` (a maintained, MIT-licensed price
database on PyPI), and draft entries for models to add. Never run by the gateway: a maintainer
runs it before a release, with ``genai-prices`` installed (``pip install -e '.[dev]'``)::

    python -m waypost.metering.refresh_prices                 # differences, exit 1 if any
    python -m waypost.metering.refresh_prices --missing       # also models the catalogue lacks
    python -m waypost.metering.refresh_prices --draft anthropic claude-opus-4-8

Prices are compared as they stand on the catalogue's ``date`` (``--on`` for another day). Where
genai-prices has prices by time of day (DeepSeek's peak hours), the one in force for most of the
day is taken. Only token prices are compared: per-request, per-search and per-image fees are not
part of the catalogue. The catalogue file is written by hand from these drafts: update its
``date`` when you have checked it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from waypost.metering.pricing import Catalogue, CatalogueEntry, bundled_catalogue
from waypost.settings import Prices

# Our provider (type or preset) -> genai-prices' provider id.
GENAI_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "bedrock": "aws",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "xai": "x-ai",
    "perplexity": "perplexity",
    "cerebras": "cerebras",
}
# genai-prices' price keys -> ours
KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
}


def _genai() -> Any:
    try:
        from genai_prices import data_snapshot, types
    except ImportError:
        sys.exit("genai-prices is not installed: pip install 'genai-prices>=0.2.3'")
    return data_snapshot, types


def genai_prices(provider: str, model: str, on: date) -> dict[str, Any] | None:
    """genai-prices' token prices for ``provider``'s ``model`` on the day ``on``, in the
    catalogue's fields; ``None`` when it does not know the model."""
    data_snapshot, types = _genai()
    genai_id = GENAI_PROVIDERS.get(provider)
    if genai_id is None:
        return None
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, genai_id, None)
    except LookupError:
        return None
    # Prices by time of day: the one in force for most hours; ties go to the dearer.
    seen: Counter[str] = Counter()
    by_key: dict[str, dict[str, Any]] = {}
    for hour in range(24):
        moment = datetime.combine(on, time(hour, 59), UTC)
        fields = _fields(info.get_prices(moment), types)
        key = repr(sorted(fields.items()))
        seen[key] += 1
        by_key[key] = fields
    best = max(seen, key=lambda k: (seen[k], by_key[k].get("input", 0)))
    return by_key[best] or None


def _fields(price: Any, types: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tiers: dict[int, dict[str, Any]] = {}
    for genai_key, ours in KEYS.items():
        value = getattr(price, genai_key, None)
        if value is None:
            continue
        if isinstance(value, types.TieredPrices):
            out[ours] = _num(value.base)
            for tier in value.tiers:
                tiers.setdefault(tier.start, {})[ours] = _num(tier.price)
        else:
            out[ours] = _num(value)
    if tiers:
        out["tiers"] = [{"above_input_tokens": start, **tiers[start]} for start in sorted(tiers)]
    return out


def _num(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def ours(entry: CatalogueEntry) -> dict[str, Any]:
    """An entry's prices in the same shape as ``genai_prices`` gives them."""
    return _plain(entry.prices)


def _plain(prices: Prices) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in prices.model_dump(exclude={"tiers"}).items() if v is not None}
    if not out.get("output"):
        out.pop("output", None)
    for k, v in out.items():
        out[k] = _num(Decimal(repr(v)))
    if prices.tiers:
        out["tiers"] = [
            {
                k: _num(Decimal(repr(v))) if k != "above_input_tokens" else v
                for k, v in t.model_dump().items()
                if v is not None
            }
            for t in prices.tiers
        ]
    return out


def differences(catalogue: Catalogue, on: date) -> Iterator[tuple[str, bool]]:
    """Each entry whose prices differ from genai-prices' (or that it lacks), and whether the
    difference counts: an entry with a ``note`` says why it differs, so it is only shown."""
    for entry in catalogue.entries:
        theirs = genai_prices(entry.provider, entry.model, on)
        if theirs is None and entry.provider == "bedrock":  # genai-prices names the US profile
            theirs = genai_prices(entry.provider, "us." + entry.model, on)
        if theirs is None:
            line = f"{entry.provider}/{entry.model}: not in genai-prices"
        elif ours(entry) != theirs:
            line = f"{entry.provider}/{entry.model}: catalogue {ours(entry)} != genai-prices {theirs}"
        else:
            continue
        yield (f"{line} (noted: {entry.note})", False) if entry.note else (line, True)


def missing(catalogue: Catalogue) -> Iterator[str]:
    """Current (not deprecated) models of our providers that the catalogue lacks."""
    data_snapshot, _ = _genai()
    by_id = {p.id: p for p in data_snapshot.get_snapshot().providers}
    for provider, genai_id in GENAI_PROVIDERS.items():
        if provider == "openrouter":
            continue  # hundreds of routes, priced through the vendors' entries
        for info in by_id[genai_id].models:
            if info.deprecated:
                continue
            if catalogue.lookup(provider, info.id) is None:
                yield f"{provider}/{info.id}"


def draft(provider: str, model: str, on: date) -> str:
    """A catalogue line for ``model`` from genai-prices, to check and paste."""
    theirs = genai_prices(provider, model, on)
    if theirs is None:
        return f"# {provider}/{model}: not in genai-prices"
    fields = ", ".join(f"{k}: {_flow(v)}" for k, v in theirs.items())
    return f"  - {{provider: {provider}, model: {model}, {fields}}}"


def _flow(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m waypost.metering.refresh_prices", description=__doc__)
    parser.add_argument("--on", type=date.fromisoformat, help="compare prices on this day (YYYY-MM-DD)")
    parser.add_argument("--missing", action="store_true", help="also list models the catalogue lacks")
    parser.add_argument("--draft", nargs="+", metavar=("PROVIDER", "MODEL"), help="print draft entries")
    args = parser.parse_args(argv)
    catalogue = bundled_catalogue()
    on = args.on or catalogue.date
    if args.draft:
        provider, *models = args.draft
        for model in models:
            print(draft(provider, model, on))
        return 0
    found = list(differences(catalogue, on))
    for line, _ in found:
        print(line)
    if args.missing:
        for name in missing(catalogue):
            print(f"missing: {name}")
    counted = sum(1 for _, counts in found if counts)
    print(
        f"{len(catalogue.entries)} entries checked against genai-prices on {on}: "
        f"{counted} differ, {len(found) - counted} noted"
    )
    return 1 if counted else 0


if __name__ == "__main__":
    sys.exit(main())
