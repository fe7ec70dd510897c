"""Prices and cost (docs/metering.md, "Prices and cost"): each usage component at its own price,
exactly, in integer micro-dollars; where the prices come from; the bundled catalogue."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
import yaml

from waypost.core.types import Usage
from waypost.metering.pricing import (
    CATALOGUE_FILE,
    COMPONENTS,
    Catalogue,
    CatalogueError,
    PriceBook,
    Quote,
    _counts,
    bundled_catalogue,
)
from waypost.providers.presets import builtin_presets
from waypost.settings import ConfigError, MeteringSettings, ModelSettings, Prices, Settings

SONNET = {"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75, "cache_write_1h": 6}


def book(*models: dict[str, Any], **sections: Any) -> tuple[PriceBook, Settings]:
    settings = Settings.model_validate({"models": list(models), **sections})
    return PriceBook.from_settings(settings), settings


def priced(prices: dict[str, Any], usage: Usage, provider: str = "openai", **metering: Any) -> Any:
    pb, _ = book(metering=metering) if metering else book()
    return pb.cost(usage, Quote(Prices.model_validate(prices), "test"), provider)


def micros(parts: dict[str, tuple[int, float]]) -> Decimal:
    """The exact cost in micro-dollars: tokens x USD per million tokens, per component."""
    return sum((Decimal(n) * Decimal(str(p)) for n, p in parts.values()), Decimal(0))


def half_even(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_HALF_EVEN))


# -- the arithmetic ------------------------------------------------------------------------------


def test_each_component_at_its_own_price() -> None:
    # 10,000 prompt tokens: 6,000 read from the cache, 2,000 written (500 of them for an hour).
    usage = Usage(
        input_tokens=10_000,
        output_tokens=200,
        cache_read_tokens=6_000,
        cache_write_tokens=2_000,
        cache_write_1h_tokens=500,
        reasoning_tokens=150,
    )
    cost = priced(SONNET, usage)
    # uncached 2,000 x 3 + reads 6,000 x 0.3 + 5-minute writes 1,500 x 3.75 + 1-hour writes
    # 500 x 6 + output 200 x 15 (reasoning is part of output, not billed again)
    assert cost.breakdown == {
        "input": 6_000,
        "cache_read": 1_800,
        "cache_write": 5_625,
        "cache_write_1h": 3_000,
        "output": 3_000,
    }
    assert cost.total_micros == 19_425
    assert cost.priced and cost.source == "test"
    assert cost.usd == 0.019425


def test_cache_prices_fall_back_to_input_and_one_hour_writes_to_five_minute_writes() -> None:
    usage = Usage(
        input_tokens=1_000,
        output_tokens=0,
        cache_read_tokens=400,
        cache_write_tokens=300,
        cache_write_1h_tokens=100,
    )
    assert priced({"input": 2, "output": 8}, usage).total_micros == 2_000  # all 1,000 at the input price
    cost = priced({"input": 2, "output": 8, "cache_write": 2.5}, usage)
    assert cost.breakdown == {"input": 600, "cache_read": 800, "cache_write": 500, "cache_write_1h": 250}


def test_a_tier_prices_every_token_of_a_prompt_above_its_threshold() -> None:
    prices = {
        **SONNET,
        "tiers": [{"above_input_tokens": 200_000, "input": 6, "output": 22.5, "cache_read": 0.6}],
    }
    at = Usage(input_tokens=200_000, output_tokens=1_000, cache_read_tokens=150_000)
    above = Usage(input_tokens=200_001, output_tokens=1_000, cache_read_tokens=150_000)
    # the threshold counts the whole prompt, cache reads included; "above" is strictly more
    assert priced(prices, at).breakdown == {"input": 150_000, "cache_read": 45_000, "output": 15_000}
    assert priced(prices, above).breakdown == {"input": 300_006, "cache_read": 90_000, "output": 22_500}


def test_a_price_a_tier_leaves_out_keeps_its_base_value() -> None:
    prices = {"input": 1, "output": 2, "cache_read": 0.1, "tiers": [{"above_input_tokens": 10, "input": 5}]}
    cost = priced(prices, Usage(input_tokens=20, output_tokens=10, cache_read_tokens=10))
    assert cost.breakdown == {"input": 50, "cache_read": 1, "output": 20}


def test_a_cache_price_neither_sets_follows_the_tiers_input_price() -> None:
    prices = {"input": 1, "tiers": [{"above_input_tokens": 10, "input": 2}]}
    cost = priced(prices, Usage(input_tokens=20, cache_read_tokens=5, cache_write_tokens=5))
    assert cost.breakdown == {"input": 20, "cache_read": 10, "cache_write": 10}


def test_the_highest_tier_reached_applies() -> None:
    prices = {
        "input": 1,
        "tiers": [{"above_input_tokens": 100, "input": 2}, {"above_input_tokens": 1_000, "input": 3}],
    }
    assert [priced(prices, Usage(input_tokens=n)).total_micros for n in (100, 101, 1_000, 1_001)] == [
        100,
        202,
        2_000,
        3_003,
    ]


def test_the_total_is_rounded_half_even_once_and_each_component_on_its_own() -> None:
    # 0.5 micro-dollars of input and 0.5 of output: each component rounds to 0 (even), the total is 1
    cost = priced({"input": 0.5, "output": 0.5}, Usage(input_tokens=1, output_tokens=1))
    assert cost.breakdown == {"input": 0, "output": 0}
    assert cost.total_micros == 1
    assert priced({"input": 0.5}, Usage(input_tokens=1)).total_micros == 0  # 0.5 -> 0
    assert priced({"input": 0.5}, Usage(input_tokens=3)).total_micros == 2  # 1.5 -> 2
    assert priced({"input": 0.5}, Usage(input_tokens=5)).total_micros == 2  # 2.5 -> 2


def test_prices_are_exact_decimals_not_floats() -> None:
    # 0.1 + 0.2 is not 0.3 in binary floating point; here it is.
    cost = priced(
        {"input": 0.1, "output": 0.2}, Usage(input_tokens=1_000_000_000, output_tokens=1_000_000_000)
    )
    assert cost.total_micros == 300_000_000
    cost = priced({"input": 0.00875}, Usage(input_tokens=123_456_789))
    assert cost.total_micros == half_even(Decimal(123_456_789) * Decimal("0.00875"))


def test_random_usages_cost_exactly_usage_times_price() -> None:
    rng = random.Random(10)
    prices = {"input": 1.1, "output": 4.4, "cache_read": 0.275, "cache_write": 1.375, "cache_write_1h": 2.2}
    for _ in range(300):
        read, write = rng.randrange(0, 50_000), rng.randrange(0, 20_000)
        hour = rng.randrange(0, write + 1)
        uncached, out = rng.randrange(0, 100_000), rng.randrange(0, 30_000)
        usage = Usage(
            input_tokens=uncached + read + write,
            output_tokens=out,
            cache_read_tokens=read,
            cache_write_tokens=write,
            cache_write_1h_tokens=hour,
        )
        exact = micros(
            {
                "input": (uncached, 1.1),
                "read": (read, 0.275),
                "write": (write - hour, 1.375),
                "hour": (hour, 2.2),
                "output": (out, 4.4),
            }
        )
        assert priced(prices, usage).total_micros == half_even(exact)


def test_the_reservations_total_alone_is_the_costs_total() -> None:
    """``PriceBook.micros`` (what budgets reserve per request, without a breakdown) agrees with
    ``cost`` to the micro-dollar, tiers and markups included."""
    rng = random.Random(11)
    tiered = {**SONNET, "tiers": [{"above_input_tokens": 200_000, "input": 6, "output": 22.5}]}
    pb, _ = book(metering={"markup_percent": {"anthropic": 7.5, "groq": -5}})
    for prices in (SONNET, tiered, {"input": 0.59, "output": 0.79}):
        quote = Quote(Prices.model_validate(prices), "test")
        for _ in range(200):
            read, write = rng.randrange(0, 50_000), rng.randrange(0, 20_000)
            usage = Usage(
                input_tokens=rng.randrange(0, 400_000) + read + write,
                output_tokens=rng.randrange(0, 30_000),
                cache_read_tokens=read,
                cache_write_tokens=write,
                cache_write_1h_tokens=rng.randrange(0, write + 1),
            )
            for provider in ("anthropic", "groq", "openai"):
                assert pb.micros(usage, quote, provider) == pb.cost(usage, quote, provider).total_micros
            # A reservation's prompt and output alone (no cache tokens), without a Usage.
            prompt, output = usage.input_tokens, usage.output_tokens
            plain = Usage(input_tokens=prompt, output_tokens=output)
            for provider in ("anthropic", "groq", "openai"):
                assert pb.reservation_micros(prompt, output, quote, provider) == pb.micros(
                    plain, quote, provider
                )


def test_usage_without_cache_tokens_costs_what_the_components_say() -> None:
    """``Quote.exact`` takes a shortcut for usage with no cache tokens; it must agree with the
    component counts, negative and odd counts included."""
    rng = random.Random(5)
    tiered = {**SONNET, "tiers": [{"above_input_tokens": 200_000, "input": 6, "output": 22.5}]}
    for prices in (SONNET, tiered):
        quote = Quote(Prices.model_validate(prices), "test")
        for _ in range(500):
            usage = Usage(
                input_tokens=rng.randrange(-5, 400_000),
                output_tokens=rng.randrange(-5, 30_000),
                cache_read_tokens=rng.choice([0, -3]),
                cache_write_tokens=rng.choice([0, -1]),
                cache_write_1h_tokens=rng.choice([0, 7, -2]),
            )
            rates = quote.rates_for(usage.input_tokens)
            parts = [(n, c * r) for n, c, r in zip(COMPONENTS, _counts(usage), rates, strict=True) if c]
            assert quote.exact(usage) == (sum(p for _, p in parts), parts)


def test_inconsistent_counts_never_bill_a_negative_part() -> None:
    usage = Usage(input_tokens=100, cache_read_tokens=300, cache_write_tokens=10, cache_write_1h_tokens=50)
    cost = priced({"input": 1, "cache_read": 0.5}, usage)
    assert cost.breakdown == {"cache_read": 150, "cache_write_1h": 10}


def test_free_and_empty_usage_cost_zero_but_are_priced() -> None:
    cost = priced({"input": 0, "output": 0}, Usage(input_tokens=5, output_tokens=5))
    assert (cost.total_micros, cost.priced) == (0, True)
    assert priced(SONNET, Usage()).breakdown == {}


def test_no_quote_is_unpriced() -> None:
    pb, _ = book()
    cost = pb.cost(Usage(input_tokens=10), None, "openai")
    assert (cost.total_micros, cost.breakdown, cost.priced, cost.source) == (0, {}, False, "none")


# -- markup ----------------------------------------------------------------------------------------


def test_markup_by_provider_type_is_added_and_shown_in_the_breakdown() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100)  # 1,000 x 3 + 100 x 15 = 4,500
    cost = priced(SONNET, usage, "anthropic", markup_percent={"anthropic": 10, "openai": 50})
    assert cost.total_micros == 4_950
    assert cost.breakdown == {"input": 3_000, "output": 1_500, "markup": 450}
    assert priced(SONNET, usage, "bedrock", markup_percent={"anthropic": 10}).total_micros == 4_500


def test_a_discount_is_a_negative_markup_and_rounds_half_even() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=100)  # 590 + 79 = 669 micro-dollars
    cost = priced({"input": 0.59, "output": 0.79}, usage, "groq", markup_percent={"groq": -5})
    assert cost.total_micros == 636  # 635.55
    assert cost.breakdown["markup"] == -33
    assert priced({"input": 1}, Usage(input_tokens=7), "x", markup_percent={"x": -100}).total_micros == 0


def test_a_presets_markup_wins_over_its_provider_types() -> None:
    pb, settings = book(
        {"name": "groq", "provider": "groq", "api_key": "k"},
        {"name": "gpt", "provider": "openai", "api_key": "k", "prices": {"input": 1}},
        metering={"markup_percent": {"openai": 10, "groq": 20}},
    )
    groq, gpt = settings.models
    usage = Usage(input_tokens=1_000)
    # the preset model's provider type is openai; its preset's markup applies
    assert pb.cost(usage, pb.quote(groq, groq.target_model), groq.provider).total_micros == 708  # 590 x 1.2
    assert pb.cost(usage, pb.quote(gpt, gpt.target_model), gpt.provider).total_micros == 1_100


def test_markup_outside_minus_100_to_1000_percent_is_refused() -> None:
    with pytest.raises(ValueError, match=r"bedrock: -150.0 is outside -100..1000"):
        MeteringSettings.model_validate({"markup_percent": {"bedrock": -150}})


def test_tiers_must_ascend() -> None:
    with pytest.raises(ValueError, match="ascending"):
        Prices.model_validate(
            {
                "input": 1,
                "tiers": [{"above_input_tokens": 9, "input": 2}, {"above_input_tokens": 5, "input": 3}],
            }
        )


# -- where prices come from ------------------------------------------------------------------------


def test_a_models_own_prices_beat_the_catalogue() -> None:
    pb, settings = book(
        {
            "name": "gpt",
            "provider": "openai",
            "api_key": "k",
            "upstream_model": "gpt-4o",
            "prices": {"input": 9},
        }
    )
    quote = pb.quote(settings.models[0], "gpt-4o")
    assert quote is not None and (quote.source, quote.prices.input) == ("model config", 9)


def test_a_preset_models_prices_say_they_come_from_the_preset() -> None:
    pb, settings = book(
        {"name": "groq", "provider": "groq", "api_key": "k"},  # the preset's default model
        {"name": "mine", "provider": "mycloud", "api_key": "k", "upstream_model": "m1"},
        presets={
            "mycloud": {
                "base_url": "https://llm.example.com/v1",
                "prices": {"m1": {"input": 0.5, "output": 1}},
            }
        },
    )
    groq, mine = settings.models
    assert pb.quote(groq, groq.target_model).source == "preset groq"  # type: ignore[union-attr]
    assert pb.quote(mine, "m1").source == "preset mycloud"  # type: ignore[union-attr]


def test_a_model_that_is_not_in_the_config_file_is_a_database_model() -> None:
    pb, _ = book()
    stored = ModelSettings.model_validate({"name": "db", "provider": "openai", "prices": {"input": 1}})
    assert pb.quote(stored, "db").source == "database"  # type: ignore[union-attr]


def test_the_catalogue_prices_a_model_without_prices_and_names_its_date_and_source() -> None:
    pb, settings = book(
        {
            "name": "claude",
            "provider": "anthropic",
            "api_key": "k",
            "upstream_model": "claude-sonnet-4-5-20250929",
        }
    )
    quote = pb.quote(settings.models[0], "claude-sonnet-4-5-20250929")
    assert quote is not None
    assert (
        quote.source
        == f"catalogue {bundled_catalogue().date.isoformat()} (https://www.anthropic.com/pricing#api)"
    )
    assert (quote.prices.input, quote.prices.cache_write_1h) == (3, 6)


def test_a_pattern_model_is_priced_by_the_name_it_forwards() -> None:
    pb, settings = book({"name": "claude-any", "provider": "anthropic", "api_key": "k", "match": "claude-.*"})
    model = settings.models[0]
    assert pb.quote(model, "claude-opus-4-8").prices.input == 5  # type: ignore[union-attr]
    assert pb.quote(model, "claude-3-haiku-20240307").prices.input == 0.25  # type: ignore[union-attr]


def test_default_prices_apply_only_under_unpriced_default() -> None:
    entry = {"name": "x", "provider": "openai", "api_key": "k", "upstream_model": "in-house-llm"}
    pb, settings = book(entry, metering={"unpriced": "default", "default_prices": {"input": 1, "output": 2}})
    quote = pb.quote(settings.models[0], "in-house-llm")
    assert quote is not None and (quote.source, quote.prices.output) == ("metering.default_prices", 2)
    pb, settings = book(entry, metering={"default_prices": {"input": 1, "output": 2}})  # unpriced: allow
    assert pb.quote(settings.models[0], "in-house-llm") is None


def test_unpriced_default_without_default_prices_is_a_config_error() -> None:
    with pytest.raises((ConfigError, ValueError), match="default_prices"):
        Settings.model_validate({"metering": {"unpriced": "default"}})


def test_a_reloaded_database_model_with_new_prices_is_quoted_again() -> None:
    pb, _ = book()
    before = ModelSettings.model_validate({"name": "db", "provider": "openai", "prices": {"input": 1}})
    after = ModelSettings.model_validate({"name": "db", "provider": "openai", "prices": {"input": 2}})
    assert pb.quote(before, "db").prices.input == 1  # type: ignore[union-attr]
    assert pb.quote(before, "db") is pb.quote(before, "db")  # remembered
    assert pb.quote(after, "db").prices.input == 2  # type: ignore[union-attr]


# -- the bundled catalogue -------------------------------------------------------------------------


def test_the_catalogue_is_dated_sourced_and_read_once() -> None:
    catalogue = bundled_catalogue()
    assert catalogue is bundled_catalogue()
    assert catalogue.date.year >= 2026
    assert catalogue.entries and all(e.source.startswith("https://") for e in catalogue.entries)
    assert {"openai", "anthropic", "gemini", "bedrock", "mistral", "deepseek"} <= set(catalogue.providers())


@pytest.mark.parametrize(
    ("provider", "name", "model", "input_price"),
    [
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", 3),  # dated snapshot
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku", 0.8),
        ("openai", "gpt-4o-2024-08-06", "gpt-4o", 2.5),
        ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13", 5),  # a snapshot with its own price
        ("azure", "gpt-4o-mini", "gpt-4o-mini", 0.15),  # at OpenAI's prices
        ("openai-api", "gpt-4.1", "gpt-4.1", 2),
        ("gemini", "models/gemini-2.5-pro", "gemini-2.5-pro", 1.25),
        ("gemini", "gemini-2.0-flash-001", "gemini-2.0-flash", 0.1),
        (
            "bedrock",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            3.3,
        ),
        (
            "bedrock",
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            3.3,
        ),
        (
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            3,
        ),
        ("bedrock", "us.anthropic.claude-opus-4-6-v1:0", "anthropic.claude-opus-4-6-v1", 5.5),
        (
            "bedrock",
            "global.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            3,
        ),
        ("bedrock", "us.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", 0.8),
        ("mistral", "mistral-medium-2508", "mistral-medium", 0.4),
        ("deepseek", "deepseek-v4-flash", "deepseek-v4-flash", 0.15),
        ("openrouter", "anthropic/claude-sonnet-4.5", "claude-sonnet-4-5", 3),  # the vendor's price
        ("openrouter", "openai/gpt-4o-mini", "gpt-4o-mini", 0.15),
        ("groq", "LLAMA-3.3-70B-VERSATILE", "llama-3.3-70b-versatile", 0.59),  # names are case-blind
    ],
)
def test_catalogue_lookup(provider: str, name: str, model: str, input_price: float) -> None:
    entry = bundled_catalogue().lookup(provider, name)
    assert entry is not None and (entry.model, entry.prices.input) == (model, input_price)


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("openai", "no-such-priced-model"),
        ("openai", "claude-sonnet-4-5"),  # another provider's model
        ("ollama", "llama3"),  # local models have no list price
        ("mistral", "mistral-small-2501"),  # two listed snapshots with other prices share the stem
    ],
)
def test_catalogue_prices_nothing_it_cannot_tell(provider: str, name: str) -> None:
    assert bundled_catalogue().lookup(provider, name) is None


def test_every_bundled_preset_with_prices_is_in_the_catalogue() -> None:
    catalogue = bundled_catalogue()
    for name, preset in builtin_presets().items():
        for model in preset.get("prices") or {}:
            assert catalogue.lookup(name, model) is not None, f"{name}/{model}"


def _doc(**changes: Any) -> dict[str, Any]:
    doc = {
        "date": "2026-12-04",
        "sources": {"acme": "https://acme.example/pricing"},
        "models": [{"provider": "acme", "model": "a1", "input": 1, "output": 2}],
    }
    doc.update(changes)
    return doc


def test_a_malformed_catalogue_is_refused_naming_the_problem() -> None:
    assert Catalogue.parse(_doc()).lookup("acme", "a1") is not None
    twice = [
        {"provider": "acme", "model": "a1", "input": 1},
        {"provider": "acme", "model": "a2", "aliases": ["A1"], "input": 2},
    ]
    with pytest.raises(CatalogueError, match="acme/A1 is listed twice"):
        Catalogue.parse(_doc(models=twice))
    with pytest.raises(CatalogueError, match="other/b has no source"):
        Catalogue.parse(_doc(models=[{"provider": "other", "model": "b", "input": 1}]))
    with pytest.raises(CatalogueError, match="https://"):
        Catalogue.parse(_doc(sources={"acme": "http://acme.example"}))
    with pytest.raises(CatalogueError, match="input"):
        Catalogue.parse(_doc(models=[{"provider": "acme", "model": "a1", "input": -1}]))


def test_the_catalogue_file_is_plain_yaml_with_one_entry_per_model() -> None:
    data = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    assert len(data["models"]) == len(bundled_catalogue().entries)


# -- cross-check with genai-prices (a dev dependency) ----------------------------------------------


def test_the_catalogue_agrees_with_genai_prices() -> None:
    pytest.importorskip("genai_prices")
    from waypost.metering.refresh_prices import differences

    catalogue = bundled_catalogue()
    counted = [line for line, counts in differences(catalogue, catalogue.date) if counts]
    assert counted == []


@pytest.mark.parametrize(
    ("provider", "genai_provider", "model"),
    [
        ("anthropic", "anthropic", "claude-sonnet-4-5"),
        ("anthropic", "anthropic", "claude-haiku-5-5"),
        ("openai", "openai", "gpt-5.4"),
        ("gemini", "google", "gemini-2.5-pro"),
        ("bedrock", "aws", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("mistral", "mistral", "mistral-medium-latest"),
        ("deepseek", "deepseek", "deepseek-v4-pro"),
    ],
)
def test_costs_agree_with_genai_prices(provider: str, genai_provider: str, model: str) -> None:
    genai_prices = pytest.importorskip("genai_prices")
    catalogue = bundled_catalogue()
    entry = catalogue.lookup(provider, model)
    assert entry is not None
    pb, _ = book()
    when = datetime.combine(catalogue.date, datetime.min.time(), UTC).replace(hour=12)
    for prompt in (5_000, 150_000, 300_000):  # below and above the tiers of these models
        usage = Usage(
            input_tokens=prompt,
            output_tokens=2_000,
            cache_read_tokens=prompt // 2,
            cache_write_tokens=prompt // 10,
            cache_write_1h_tokens=prompt // 40,
        )
        theirs = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
            ),
            model,
            provider_id=genai_provider,
            genai_request_timestamp=when,
        )
        ours = pb.cost(usage, entry.quote, provider)
        assert ours.total_micros == half_even(theirs.total_price * 1_000_000), (model, prompt)
