"""``waypost prices list|show``: what a model costs and where the price comes from, offline, from
the config file and the bundled catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from waypost.cli.main import app
from waypost.metering.pricing import bundled_catalogue

DATE = bundled_catalogue().date.isoformat()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["prices", *args], env={"WAYPOST_CONFIG": None})


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "waypost.yaml"
    doc: dict[str, Any] = {
        "metering": {"unpriced": "block", "markup_percent": {"anthropic": 12.5}},
        "models": [
            {
                "name": "claude",
                "provider": "anthropic",
                "api_key": "k",
                "upstream_model": "claude-sonnet-4-5-20250929",
            },
            {"name": "groq", "provider": "groq", "api_key": "k"},
            {
                "name": "house",
                "provider": "openai",
                "api_key": "k",
                "upstream_model": "house-llm",
                "prices": {"input": 0.4, "output": 1.6},
            },
            {"name": "local", "provider": "ollama", "upstream_model": "llama3"},
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_show_a_configured_model_priced_by_the_catalogue(config: str) -> None:
    out = ok("show", "claude", "--config", config)
    assert "claude-sonnet-4-5-20250929" in out
    assert f"catalogue {DATE} (https://www.anthropic.com/pricing#api)" in out
    assert "cache write 1h  6 USD / 1M tokens" in out
    assert ">200,000: input 6" in out
    assert "+12.5 %" in out


def test_show_says_when_prices_come_from_the_config_or_a_preset(config: str) -> None:
    house = json.loads(ok("show", "house", "--config", config, "--json"))
    assert house["source"] == "model config"
    assert house["prices"]["input"] == 0.4
    groq = json.loads(ok("show", "groq", "--config", config, "--json"))
    assert (groq["source"], groq["upstream_model"]) == ("preset groq", "llama-3.3-70b-versatile")


def test_show_an_unpriced_model_names_the_unpriced_rule(config: str) -> None:
    out = ok("show", "local", "--config", config)
    assert "none anywhere (metering.unpriced: block: refused (400))" in out
    answer = json.loads(ok("show", "local", "--config", config, "--json"))
    assert answer["source"] is None and answer["unpriced"] == "block"


def test_show_any_catalogue_model_without_a_config() -> None:
    out = ok("show", "gpt-4o-2024-08-06")
    assert "gpt-4o" in out and "2.5 USD / 1M tokens" in out
    assert "1.25 USD / 1M tokens" in out  # cache reads
    assert "cache write     2.5 USD / 1M tokens (unset: as input)" in out


def test_show_lists_each_provider_that_prices_a_name() -> None:
    answer = json.loads(ok("show", "claude-sonnet-4-5", "--json"))
    assert [a["provider"] for a in answer["data"]] == ["anthropic"]
    answer = json.loads(
        ok("show", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "--provider", "bedrock", "--json")
    )
    (bedrock,) = answer["data"]
    assert (bedrock["model"], bedrock["prices"]["input"]) == (
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        3.3,
    )
    assert bedrock["source"] == f"catalogue {DATE} (https://aws.amazon.com/bedrock/pricing/)"


def test_show_an_unknown_model_fails_saying_how_to_price_it() -> None:
    result = run("show", "no-such-model-anywhere")
    assert result.exit_code == 1
    assert "not a configured model and not in the bundled catalogue" in result.stderr


def test_list_filters_by_provider_and_model() -> None:
    answer = json.loads(ok("list", "--provider", "anthropic", "--model", "opus", "--json"))
    assert answer["date"] == DATE
    models = [row["model"] for row in answer["data"]]
    assert "claude-opus-4-8" in models
    assert all(row["provider"] == "anthropic" and "opus" in row["model"] for row in answer["data"])
    out = ok("list", "--provider", "azure", "--model", "gpt-4o-mini")  # Azure: OpenAI's prices
    assert "gpt-4o-mini" in out and "0.15" in out and f"catalogue of {DATE}" in out


def test_list_shows_configured_models_own_prices_first(config: str) -> None:
    answer = json.loads(ok("list", "--config", config, "--json"))
    first = answer["data"][:2]
    assert [(r["model"], r["source"]) for r in first] == [("groq", "preset groq"), ("house", "model config")]
    assert "house" in ok("list", "--config", config, "--model", "house")


def test_list_with_no_match_says_so() -> None:
    assert "No prices match." in ok("list", "--model", "zzz-nothing")
