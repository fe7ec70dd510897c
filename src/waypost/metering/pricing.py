"""What a call cost: its canonical usage times the prices that apply, in integer micro-dollars.

Prices are USD per million tokens, so ``tokens x price`` is micro-dollars. The arithmetic is on
integers (each price scaled to 12 decimal places), so a cost is exact until it is rounded: each
breakdown component half-even on its own, the total half-even once, after the markup.

Canonical ``Usage.input_tokens`` includes cache reads and writes; the uncached part is what is
left after taking both out. Cache reads are billed at the cache-read price, cache writes at the
cache-write price, and the subset written for an hour (Anthropic) at the 1-hour price. Tiers
replace the prices when the whole prompt (input tokens, cached or not) is longer than a tier's
threshold; the tier applies to every token of the call, as providers bill it.

Where the prices come from (``PriceBook.quote``): the model's own ``prices`` (config file or
database), else its preset's, else the bundled catalogue (``data/prices.yaml``), else
``metering.default_prices`` when ``metering.unpriced`` is ``default``; else none (unpriced).
See docs/metering.md, "Prices and cost".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from waypost.core.context import Cost
from waypost.core.types import Usage
from waypost.providers.presets import builtin_presets
from waypost.settings import ModelSettings, Prices, PriceTier, Settings

CATALOGUE_FILE = Path(__file__).with_name("data") / "prices.yaml"
COMPONENTS = ("input", "cache_read", "cache_write", "cache_write_1h", "output")
SCALE = 10**12  # prices are kept to 12 decimal places of a dollar per million tokens
MEMO_SIZE = 4096  # (model, upstream name) pairs remembered per price book; then it starts over

# Suffixes that name a dated snapshot or version of a model priced like the model itself, e.g.
# claude-sonnet-4-5-20250929, gpt-4o-2024-08-06, mistral-large-2411, anthropic.claude-...-v1:0.
_SUFFIX = re.compile(r"(?:[-@]\d{8}|-\d{4}-\d{2}-\d{2}|-\d{4}|-0\d\d|-latest|-v\d+(?::\d+)?)$")
# Bedrock's cross-region inference profiles (us.anthropic.claude-...) cost what the model costs
# in-region; ``global.`` profiles have prices of their own where AWS lists them.
_REGION = re.compile(r"^(?:us|eu|apac|au|jp|ca|in|us-gov)\.")
_GLOBAL = "global."


# -- the arithmetic --------------------------------------------------------------------------------


def _scaled(price: float) -> int:
    """USD per million tokens as an integer number of 1e-12 USD per million tokens."""
    # repr() gives the shortest decimal that reads back as the same float: the price as written.
    return int((Decimal(repr(price)) * SCALE).to_integral_value(ROUND_HALF_EVEN))


def _rates(prices: Prices) -> tuple[int, ...]:
    """The five component rates (``COMPONENTS`` order); unset cache prices fall back as documented."""
    inp = _scaled(prices.input)
    read = inp if prices.cache_read is None else _scaled(prices.cache_read)
    write = inp if prices.cache_write is None else _scaled(prices.cache_write)
    write_1h = write if prices.cache_write_1h is None else _scaled(prices.cache_write_1h)
    return (inp, read, write, write_1h, _scaled(prices.output))


def _with_tier(prices: Prices, tier: PriceTier) -> Prices:
    """The prices above a tier's threshold: the tier's where it sets them, else the base's own
    (so a cache price neither sets still falls back to the tier's input price)."""
    fields = ("input", "output", "cache_read", "cache_write", "cache_write_1h")
    changed = {k: getattr(tier, k) for k in fields if getattr(tier, k) is not None}
    return prices.model_copy(update={**changed, "tiers": []})


def _round(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even (both non-negative)."""
    quotient, rest = divmod(numerator, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and quotient % 2):
        quotient += 1
    return quotient


def _counts(usage: Usage) -> tuple[int, int, int, int, int]:
    """Tokens per component: uncached input, cache reads, 5-minute writes, 1-hour writes, output."""
    read = max(0, usage.cache_read_tokens)
    write = max(0, usage.cache_write_tokens)
    write_1h = min(max(0, usage.cache_write_1h_tokens), write)
    uncached = max(0, usage.input_tokens - read - write)
    return (uncached, read, write - write_1h, write_1h, max(0, usage.output_tokens))


@dataclass(frozen=True, slots=True)
class Quote:
    """The prices that apply to one model and where they came from: ``model config``,
    ``database``, ``preset NAME``, ``catalogue DATE (URL)`` or ``metering.default_prices``."""

    prices: Prices
    source: str
    preset: str | None = None  # the model's preset: a markup set for it wins over its provider's
    # (threshold, rates) from the highest tier down, then (0, base rates): read by ``rates_for``.
    _table: tuple[tuple[int, tuple[int, ...]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tiers = [(t.above_input_tokens, _rates(_with_tier(self.prices, t))) for t in self.prices.tiers]
        object.__setattr__(self, "_table", (*reversed(tiers), (0, _rates(self.prices))))

    def rates_for(self, input_tokens: int) -> tuple[int, ...]:
        """The component rates for a prompt of ``input_tokens`` (cache reads and writes included)."""
        table = self._table
        if len(table) > 1:
            for threshold, rates in table:
                if input_tokens > threshold:
                    return rates
        return table[-1][1]

    def exact_total(self, usage: Usage) -> int:
        """The exact cost in 1e-12 micro-dollars (``exact``'s total, without the parts)."""
        uncached, read, write, write_1h, output = _counts(usage)
        r = self.rates_for(usage.input_tokens)
        return uncached * r[0] + read * r[1] + write * r[2] + write_1h * r[3] + output * r[4]

    def exact(self, usage: Usage) -> tuple[int, list[tuple[str, int]]]:
        """The exact cost in 1e-12 micro-dollars, in total and per component used."""
        rates = self.rates_for(usage.input_tokens)
        parts: list[tuple[str, int]] = []
        total = 0
        if usage.cache_read_tokens <= 0 and usage.cache_write_tokens <= 0:
            # The usual usage, no cache tokens: ``_counts`` gives the input and output alone.
            if usage.input_tokens > 0:
                total = usage.input_tokens * rates[0]
                parts.append(("input", total))
            if usage.output_tokens > 0:
                part = usage.output_tokens * rates[4]
                parts.append(("output", part))
                total += part
            return total, parts
        for name, n, rate in zip(COMPONENTS, _counts(usage), rates):  # noqa: B905 (both have 5)
            if n:
                part = n * rate
                parts.append((name, part))
                total += part
        return total, parts


# -- the bundled catalogue -------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    input: float = Field(ge=0)
    output: float = Field(0.0, ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    cache_write_1h: float | None = Field(None, ge=0)
    tiers: list[PriceTier] = Field(default_factory=list)
    source: str | None = None  # overrides the provider's
    note: str | None = None

    def prices(self) -> Prices:
        return Prices.model_validate(
            self.model_dump(
                include={"input", "output", "cache_read", "cache_write", "cache_write_1h", "tiers"}
            )
        )


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: date
    seeded_from: str | None = None
    sources: dict[str, str]
    # A provider billed at another's list prices (azure -> openai, openai-api preset -> openai).
    same_prices_as: dict[str, str] = Field(default_factory=dict)
    # A provider that routes ``vendor/model`` names at the vendor's prices (openrouter).
    vendors: dict[str, dict[str, str]] = Field(default_factory=dict)
    models: list[_Entry]

    @field_validator("sources")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for provider, url in value.items():
            if not url.startswith("https://"):
                raise ValueError(f"{provider}: the source must be an https:// URL")
        return value


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    provider: str
    model: str
    aliases: tuple[str, ...]
    prices: Prices
    source: str  # a public URL
    note: str | None
    quote: Quote  # source "catalogue DATE (URL)"


class CatalogueError(ValueError):
    """The catalogue file is malformed (a packaging or editing mistake)."""


@dataclass
class Catalogue:
    """The bundled, dated price list: entries by provider and by (lower-cased) name or alias."""

    date: date
    seeded_from: str | None
    entries: list[CatalogueEntry]
    same_prices_as: dict[str, str]
    vendors: dict[str, dict[str, str]]
    _by_name: dict[str, dict[str, CatalogueEntry]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any, where: str = "prices.yaml") -> Catalogue:
        try:
            doc = _File.model_validate(data)
        except ValidationError as exc:
            raise CatalogueError(f"{where}: {exc}") from None
        entries: list[CatalogueEntry] = []
        by_name: dict[str, dict[str, CatalogueEntry]] = {}
        for raw in doc.models:
            source = raw.source or doc.sources.get(raw.provider)
            if source is None:
                raise CatalogueError(f"{where}: {raw.provider}/{raw.model} has no source")
            try:
                prices = raw.prices()
            except ValidationError as exc:
                raise CatalogueError(f"{where}: {raw.provider}/{raw.model}: {exc}") from None
            entry = CatalogueEntry(
                raw.provider,
                raw.model,
                tuple(raw.aliases),
                prices,
                source,
                raw.note,
                Quote(prices, f"catalogue {doc.date.isoformat()} ({source})"),
            )
            entries.append(entry)
            table = by_name.setdefault(raw.provider, {})
            for name in (raw.model, *raw.aliases):
                key = name.lower()
                if key in table:
                    raise CatalogueError(f"{where}: {raw.provider}/{name} is listed twice")
                table[key] = entry
        # A listed name without its date or version suffix finds its entry too (an undated
        # Bedrock id, a new snapshot of it), unless two entries with other prices share it.
        stems: dict[tuple[str, str], CatalogueEntry | None] = {}
        for entry in entries:
            for name in (entry.model, *entry.aliases):
                for stem in _stems(name.lower()):
                    seen = stems.setdefault((entry.provider, stem), entry)
                    if seen is not None and seen.prices != entry.prices:
                        stems[(entry.provider, stem)] = None  # ambiguous: priced by neither
        for (provider, stem), found in stems.items():
            if found is not None:
                by_name[provider].setdefault(stem, found)
        return cls(doc.date, doc.seeded_from, entries, doc.same_prices_as, doc.vendors, by_name)

    def providers(self) -> list[str]:
        return sorted(self._by_name)

    def lookup(self, provider: str, name: str) -> CatalogueEntry | None:
        """The entry for ``name`` as ``provider`` serves it: exact name or alias first, then
        without a cross-region prefix and dated or version suffixes; ``vendor/model`` names of a
        routing provider at the vendor's prices."""
        table = self._by_name.get(self.same_prices_as.get(provider, provider))
        lowered = name.lower().removeprefix("models/")  # Gemini's own resource form
        if table:
            for candidate in _candidates(lowered):
                entry = table.get(candidate)
                if entry is not None:
                    return entry
        routes = self.vendors.get(provider)
        if routes and "/" in lowered:
            vendor, rest = lowered.split("/", 1)
            target = routes.get(vendor)
            if target is not None and target != provider:
                return self.lookup(target, rest)
        return None

    def find(self, name: str, provider: str | None = None) -> list[CatalogueEntry]:
        """Every provider's entry for ``name`` (or only ``provider``'s), for ``waypost prices show``."""
        names = [provider] if provider else sorted({*self._by_name, *self.same_prices_as, *self.vendors})
        found: list[CatalogueEntry] = []
        for p in names:
            entry = self.lookup(p, name)
            if entry is not None and entry not in found:
                found.append(entry)
        return found


def _stems(name: str) -> Iterator[str]:
    """``name`` without its dated or version suffixes, one suffix at a time."""
    while True:
        shorter = _SUFFIX.sub("", name)
        if shorter == name or not shorter:
            return
        name = shorter
        yield name


def _candidates(name: str) -> Iterator[str]:
    """The names to look ``name`` up by, most specific first."""
    yield name
    regional = _REGION.sub("", name)
    if regional != name:
        yield regional
    stem = regional
    for stem in _stems(regional):
        yield stem
    if stem.startswith(_GLOBAL):  # a global profile AWS lists no price for: its regional price
        yield from _candidates(stem.removeprefix(_GLOBAL))


@cache
def bundled_catalogue() -> Catalogue:
    """The catalogue shipped in the package, read once per process."""
    with CATALOGUE_FILE.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return Catalogue.parse(data, str(CATALOGUE_FILE))


# -- the price book ----------------------------------------------------------------------------------


class PriceBook:
    """Which prices apply to a model, and what a usage costs at them. Built once at start;
    ``quote`` and ``cost`` do no I/O and remember what they looked up."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        config_models: Iterable[str] = (),
        preset_prices: Mapping[str, Mapping[str, Prices]] | None = None,
        markup_percent: Mapping[str, float] | None = None,
        default_prices: Prices | None = None,
    ) -> None:
        self.catalogue = catalogue
        self._config_models = frozenset(config_models)
        self._preset_prices = {k: dict(v) for k, v in (preset_prices or {}).items()}
        self.markup_percent = dict(markup_percent or {})
        # percent -> the (numerator, denominator) of the factor (100 + percent) / 100, exactly
        self._factors = {k: _factor(v) for k, v in self.markup_percent.items()}
        self._default = Quote(default_prices, "metering.default_prices") if default_prices else None
        self._memo: dict[tuple[str, str, str | None, str], tuple[Prices | None, Quote | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceBook:
        presets: dict[str, dict[str, Prices]] = {}
        for name, body in builtin_presets().items():
            raw = body.get("prices") or {}
            presets[name] = {m: Prices.model_validate(p) for m, p in raw.items()}
        for name, preset in settings.presets.items():
            presets[name] = dict(preset.prices)
        metering = settings.metering
        return cls(
            bundled_catalogue(),
            config_models=(m.name for m in settings.models),
            preset_prices=presets,
            markup_percent=metering.markup_percent,
            default_prices=metering.default_prices if metering.unpriced == "default" else None,
        )

    def quote(self, model: ModelSettings, upstream_model: str) -> Quote | None:
        """The prices for ``model`` serving ``upstream_model``: its own, its preset's, the
        catalogue's, the configured default; ``None`` when there are none."""
        key = (model.name, model.provider, model.preset, upstream_model)
        known = self._memo.get(key)
        # A reloaded database model is a new object: its prices are looked at again.
        if known is not None and known[0] is model.prices:
            return known[1]
        found = self._find(model, upstream_model)
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = (model.prices, found)
        return found

    def prices_of(self, model: ModelSettings) -> Prices | None:
        """The prices that apply to ``model`` serving its own upstream model (for ordering
        ``auto`` candidates by price), or None."""
        quote = self.quote(model, model.upstream_model or model.name)
        return quote.prices if quote is not None else None

    def _find(self, model: ModelSettings, upstream_model: str) -> Quote | None:
        if model.prices is not None:
            return Quote(model.prices, self._own_source(model, upstream_model), model.preset)
        entry = self.catalogue_entry(model, upstream_model)
        if entry is not None:
            return Quote(entry.prices, entry.quote.source, model.preset)
        if self._default is not None:
            return Quote(self._default.prices, self._default.source, model.preset)
        return None

    def catalogue_entry(self, model: ModelSettings, upstream_model: str) -> CatalogueEntry | None:
        """The catalogue's entry for the model's provider (or preset) and upstream name."""
        provider = model.preset or model.provider
        return self.catalogue.lookup(provider, upstream_model)

    def _own_source(self, model: ModelSettings, upstream_model: str) -> str:
        if model.preset is not None:
            table = self._preset_prices.get(model.preset, {})
            if table.get(model.upstream_model or model.name) == model.prices:
                return f"preset {model.preset}"
        return "model config" if model.name in self._config_models else "database"

    def markup_for(self, quote: Quote, provider: str) -> float:
        """The markup percent that applies: the preset's if set, else the provider type's."""
        if quote.preset is not None and quote.preset in self.markup_percent:
            return self.markup_percent[quote.preset]
        return self.markup_percent.get(provider, 0.0)

    def micros(self, usage: Usage, quote: Quote, provider: str) -> int:
        """``cost(...).total_micros`` without the breakdown."""
        return self._marked(quote.exact_total(usage), quote, provider)

    def reservation_micros(self, prompt: int, output: int, quote: Quote, provider: str) -> int:
        """``micros`` of ``prompt`` uncached input tokens and ``output`` tokens, without a
        ``Usage``: what a budget's reservation needs, per request."""
        rates = quote.rates_for(prompt)
        return self._marked(max(0, prompt) * rates[0] + max(0, output) * rates[4], quote, provider)

    def _marked(self, total: int, quote: Quote, provider: str) -> int:
        """An exact total (1e-12 micro-dollars) in micro-dollars, with the markup that applies."""
        factor = self._factor_of(quote, provider)
        if factor is None:
            return _round(total, SCALE)
        num, den = factor
        return _round(total * num, SCALE * den)

    def _factor_of(self, quote: Quote, provider: str) -> tuple[int, int] | None:
        """The markup of the model's preset, else of ``provider`` (its type), as a fraction."""
        factor = None
        if quote.preset is not None:
            factor = self._factors.get(quote.preset)
        if factor is None:
            factor = self._factors.get(provider)
        return factor

    def cost(self, usage: Usage, quote: Quote | None, provider: str) -> Cost:
        """What ``usage`` cost at ``quote``, with the markup of the model's preset or
        ``provider`` (its type). The breakdown holds each component used (before markup) and,
        with a markup, ``markup``: the total minus the rounded cost before it."""
        if quote is None:
            return Cost(0, {}, False, "none")  # a new one: callers may add to its breakdown
        total, parts = quote.exact(usage)
        breakdown = {name: _round(p, SCALE) for name, p in parts}
        factor = self._factor_of(quote, provider)
        if factor is None:
            return Cost(_round(total, SCALE), breakdown, True, quote.source)
        num, den = factor
        marked = _round(total * num, SCALE * den)
        breakdown["markup"] = marked - _round(total, SCALE)
        return Cost(marked, breakdown, True, quote.source)


def _factor(percent: float) -> tuple[int, int]:
    num, den = Decimal(repr(percent)).as_integer_ratio()
    return (100 * den + num, 100 * den)
