"""Name resolution remembers each requested name (bounded) and disables models without their
credentials."""

from __future__ import annotations

from typing import Any

import pytest

from waypost.core.errors import ModelDisabled, ModelNotFound
from waypost.routing import registry as registry_module
from waypost.routing.registry import ModelRegistry
from waypost.settings import ModelSettings, load_settings


def models(*entries: dict[str, Any]) -> list[ModelSettings]:
    return [ModelSettings.model_validate(e) for e in entries]


CATALOGUE = models(
    {"name": "exact", "provider": "mock"},
    *({"name": f"family-{i}", "provider": "mock", "match": f"family-{i}-.*"} for i in range(50)),
    {"name": "aliased", "provider": "mock", "match": "gpt-.*", "upstream_model": "real-model"},
)


def test_a_remembered_name_resolves_as_the_first_time() -> None:
    reg = ModelRegistry(CATALOGUE, environ={})
    first = reg.resolve("family-49-large")
    assert (first.name, first.upstream_model) == ("family-49", "family-49-large")
    assert reg.resolve("family-49-large") == first
    assert reg.resolve("gpt-4o").upstream_model == "real-model"
    assert [d.name for d in reg.chain("family-49-large")] == ["family-49"]
    # The chain handed out is the caller's to change: the memo keeps its own.
    reg.chain("exact").clear()
    assert [d.name for d in reg.chain("exact")] == ["exact"]


def test_an_unknown_name_is_remembered_and_still_an_error_each_time() -> None:
    reg = ModelRegistry(CATALOGUE, environ={})
    for _ in range(2):
        with pytest.raises(ModelNotFound, match="'nope'"):
            reg.resolve("nope")
        with pytest.raises(ModelNotFound, match="'nope'"):
            reg.chain("nope")
    assert reg.resolve("exact").name == "exact"


def test_a_new_catalogue_resolves_afresh() -> None:
    old = ModelRegistry(CATALOGUE, environ={})
    assert old.resolve("gpt-4o").name == "aliased"
    new = ModelRegistry(models({"name": "gpt-4o", "provider": "mock"}, *CATALOGUE[1:]), environ={})
    assert new.resolve("gpt-4o").name == "gpt-4o"


def test_the_memo_stays_bounded_with_many_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "MEMO_SIZE", 64)
    reg = ModelRegistry(CATALOGUE, environ={})
    for i in range(1000):
        with pytest.raises(ModelNotFound):
            reg.chain(f"scanner-{i}")
        assert reg.resolve(f"family-{i % 50}-x").name == f"family-{i % 50}"
    assert len(reg._resolved) <= 64 and len(reg._chains) <= 64


KEYED = {"name": "keyed", "provider": "openai", "api_key": "sk-keyed-0123456789"}


def test_a_model_without_credentials_is_disabled_and_left_out_of_chains() -> None:
    reg = ModelRegistry(
        models(
            {"name": "remote", "provider": "openai", "fallbacks": ["keyed", "claude"]},
            {"name": "claude", "provider": "anthropic"},
            KEYED,
            {"name": "local", "provider": "openai", "base_url": "http://127.0.0.1:8080/v1"},
            {"name": "own", "provider": "openai", "base_url": "https://llm.internal.example/v1"},
        ),
        environ={},
    )
    assert [d.name for d in reg.chain("remote")] == ["keyed"]
    with pytest.raises(ModelDisabled, match="'claude' is disabled: missing credential"):
        reg.chain("claude")
    # A server of one's own may take no key: it stays enabled.
    assert set(reg.disabled()) == {"remote", "claude"}


def test_a_preset_without_its_key_variable_names_the_variable() -> None:
    doc = {
        "name": "groq",
        "provider": "openai",
        "preset": "groq",
        "base_url": "https://api.groq.com/openai/v1",
    }
    reg = ModelRegistry(models(doc), environ={})
    assert reg.disabled() == {
        "groq": "missing credential: GROQ_API_KEY is not set and the model has no api_key"
    }
    with pytest.raises(ModelDisabled, match="GROQ_API_KEY"):
        reg.chain("groq")


def test_an_env_reference_that_came_out_empty_names_its_variable(tmp_path: Any) -> None:
    path = tmp_path / "waypost.yaml"
    path.write_text(
        "models:\n"
        "  - {name: unset, provider: openai, api_key: 'env://WP_UNSET_KEY,'}\n"
        "  - {name: blank, provider: openai, api_key: 'env://WP_BLANK_KEY'}\n"
        "  - {name: keyed, provider: openai, api_key: 'env://WP_SET_KEY'}\n"
        "  - {name: other, provider: openai, headers: {X-Team: 'env://WP_UNSET_TEAM,'}}\n"
    )
    config = load_settings(path, environ={"WP_BLANK_KEY": "", "WP_SET_KEY": "sk-set"})
    assert [m.key_variable for m in config.models] == ["WP_UNSET_KEY", "WP_BLANK_KEY", None, None]
    disabled = ModelRegistry(config.models, environ={}).disabled()
    assert (
        disabled["unset"]
        == "missing credential: WP_UNSET_KEY is unset or empty (api_key: env://WP_UNSET_KEY)"
    )
    assert "WP_BLANK_KEY" in disabled["blank"] and "keyed" not in disabled
    assert disabled["other"].startswith("missing credential: no api_key")


def test_auto_orders_candidates_by_the_price_book_catalogue_included() -> None:
    """Candidates priced only by the bundled catalogue are ordered by those prices (their own
    ``prices`` would be None), before a candidate with no price anywhere."""
    from waypost.metering.pricing import PriceBook
    from waypost.settings import Settings

    entries = [
        {"name": "unknown", "provider": "openai", "api_key": "k", "upstream_model": "no-such-model-anywhere"},
        {"name": "big", "provider": "openai", "api_key": "k", "upstream_model": "gpt-4o"},
        {"name": "small", "provider": "openai", "api_key": "k", "upstream_model": "gpt-4o-mini"},
        {"name": "pick", "provider": "auto", "candidates": ["unknown", "big", "small"]},
    ]
    settings = Settings.model_validate({"models": entries})
    own = ModelRegistry(settings.models, environ={})
    assert [d.name for d in own.chain("pick")] == ["unknown", "big", "small"]  # no own prices: list order
    book = PriceBook.from_settings(settings)
    priced = ModelRegistry(settings.models, environ={}, prices=book.prices_of)
    assert [d.name for d in priced.chain("pick")] == ["small", "big", "unknown"]
