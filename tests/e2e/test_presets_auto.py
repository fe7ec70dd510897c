"""OpenAI-compatible presets (providers as data) and ``provider: auto`` selection, through a real
gateway loaded from a YAML file like an operator's. Specified by docs/providers/presets.md."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, auth_section, serve
from waypost.providers.presets import builtin_presets
from waypost.settings import load_settings

USER: Any = [{"role": "user", "content": "hi"}]
NO_RETRY = {"max_retries": 0}


@asynccontextmanager
async def gateway(
    tmp_path: Path, models: list[dict[str, Any]], environ: Mapping[str, str], **sections: Any
) -> AsyncIterator[openai.AsyncOpenAI]:
    """A gateway from a config file (read with ``environ`` as its environment) and an SDK client."""
    doc = {
        "auth": auth_section(),
        "security": {"allow_private_targets": True},
        "logging": {"level": "warning"},
        "models": models,
        **sections,
    }
    path = tmp_path / "waypost.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    async with (
        serve(load_settings(path, environ)) as url,
        openai.AsyncOpenAI(
            base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        ) as client,
    ):
        yield client


async def ask(client: openai.AsyncOpenAI, name: str) -> tuple[str, Any]:
    raw = await client.chat.completions.with_raw_response.create(model=name, messages=USER)
    return raw.parse().choices[0].message.content or "", raw.headers


def priced(name: str, fake: OpenAIUpstream, price: float | None, **extra: Any) -> dict[str, Any]:
    """A plain OpenAI-compatible model at ``fake``, with input and output both at ``price``."""
    entry: dict[str, Any] = {
        "name": name,
        "provider": "openai",
        "base_url": fake.url + "/v1",
        "retry": NO_RETRY,
    }
    if fake.api_key:
        entry["api_key"] = fake.api_key
    if price is not None:
        entry["prices"] = {"input": price, "output": price}
    return {**entry, **extra}


@pytest.fixture
async def cheap() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream(api_key="sk-cheap-upstream") as fake:
        fake.default_reply = Reply(text="from cheap")
        yield fake


@pytest.fixture
async def dear() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream(api_key="sk-dear-upstream") as fake:
        fake.default_reply = Reply(text="from dear")
        yield fake


# -- presets ---------------------------------------------------------------------------------------


async def test_preset_model_takes_its_key_from_the_presets_variable(
    tmp_path: Path, cheap: OpenAIUpstream
) -> None:
    models = [{"name": "deepseek", "provider": "deepseek", "base_url": cheap.url + "/v1"}]
    async with gateway(tmp_path, models, {"DEEPSEEK_API_KEY": "sk-cheap-upstream"}) as client:
        text, headers = await ask(client, "deepseek")
    assert text == "from cheap"
    assert cheap.last.headers["authorization"] == "Bearer sk-cheap-upstream"
    assert cheap.last.json["model"] == "deepseek-chat"  # the preset's default model
    assert headers["x-waypost-provider"] == "openai"


async def test_preset_model_under_another_name_sends_its_upstream_model(
    tmp_path: Path, cheap: OpenAIUpstream
) -> None:
    models: list[dict[str, Any]] = [
        {
            "name": "thinker",
            "provider": "deepseek",
            "base_url": cheap.url + "/v1",
            "upstream_model": "deepseek-reasoner",
        }
    ]
    async with gateway(tmp_path, models, {"DEEPSEEK_API_KEY": "sk-cheap-upstream"}) as client:
        await ask(client, "thinker")
    assert cheap.last.json["model"] == "deepseek-reasoner"


async def test_an_explicit_key_wins_over_the_presets_variable(tmp_path: Path, cheap: OpenAIUpstream) -> None:
    models: list[dict[str, Any]] = [
        {"name": "groq", "provider": "groq", "base_url": cheap.url + "/v1", "api_key": "sk-cheap-upstream"}
    ]
    async with gateway(tmp_path, models, {"GROQ_API_KEY": "sk-from-the-environment"}) as client:
        text, _ = await ask(client, "groq")
    assert text == "from cheap"
    assert cheap.last.headers["authorization"] == "Bearer sk-cheap-upstream"


async def test_user_defined_preset_in_config_is_served_with_no_code(
    tmp_path: Path, cheap: OpenAIUpstream
) -> None:
    presets = {
        "acme": {
            "base_url": cheap.url + "/v1",
            "api_key_env": "ACME_KEY",
            "default_model": "acme-large-1",
            "headers": {"X-Acme-Team": "core"},
            "prices": {"acme-large-1": {"input": 1, "output": 2}},
        }
    }
    models = [{"name": "acme", "provider": "acme"}]
    async with gateway(tmp_path, models, {"ACME_KEY": "sk-cheap-upstream"}, presets=presets) as client:
        text, _ = await ask(client, "acme")
    assert text == "from cheap"
    received = cheap.last
    assert received.json["model"] == "acme-large-1"
    assert received.headers["authorization"] == "Bearer sk-cheap-upstream"
    assert received.headers["x-acme-team"] == "core"


async def test_preset_model_serves_an_anthropic_client_too(tmp_path: Path, cheap: OpenAIUpstream) -> None:
    models = [{"name": "mistral", "provider": "mistral", "base_url": cheap.url + "/v1"}]
    doc = {
        "auth": auth_section(),
        "security": {"allow_private_targets": True},
        "logging": {"level": "warning"},
        "models": models,
    }
    path = tmp_path / "waypost.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    async with (
        serve(load_settings(path, {"MISTRAL_API_KEY": "sk-cheap-upstream"})) as url,
        anthropic.AsyncAnthropic(
            base_url=url, api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
        ) as client,
    ):
        message = await client.messages.create(model="mistral", max_tokens=64, messages=USER)
    assert message.content[0].type == "text" and message.content[0].text == "from cheap"
    assert cheap.last.json["model"] == "mistral-small-latest"


def test_every_bundled_preset_is_documented_as_it_is_configured() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "providers" / "presets.md").read_text(encoding="utf-8")
    rows = {
        cells[0].strip("` "): [c.strip("` ") for c in cells[1:4]]
        for line in doc.splitlines()
        if line.startswith("| `") and len(cells := line.strip("|").split("|")) >= 6
    }
    for name, preset in builtin_presets().items():
        expected = [preset["base_url"], preset.get("api_key_env") or "none", preset["default_model"]]
        assert rows.get(name) == expected, name


# -- auto ------------------------------------------------------------------------------------------


async def test_auto_tries_the_cheapest_candidate_first(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["dear", "cheap"]},
        priced("dear", dear, 10.0),
        priced("cheap", cheap, 0.5),
    ]
    async with gateway(tmp_path, models, {}) as client:
        text, headers = await ask(client, "best")
    assert text == "from cheap"
    assert headers["x-waypost-deployment"] == "cheap"
    assert dear.hits == 0


async def test_auto_skips_candidates_without_credentials(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    async with OpenAIUpstream(api_key="sk-never-configured") as keyless:
        models: list[dict[str, Any]] = [
            {"name": "best", "provider": "auto", "candidates": ["keyless", "groq", "dear"]},
            priced("keyless", keyless, 0.0, api_key=None),  # cheapest of all, but no key
            {"name": "groq", "provider": "groq"},  # GROQ_API_KEY is not set
            priced("dear", dear, 10.0),
        ]
        async with gateway(tmp_path, models, {}) as client:
            text, headers = await ask(client, "best")
        assert keyless.hits == 0
    assert text == "from dear"
    assert "x-waypost-attempts" not in headers  # nothing else was tried first


async def test_a_failing_candidate_falls_back_to_the_next(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    cheap.enqueue(Reply(status=503))
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["dear", "cheap"]},
        priced("dear", dear, 10.0),
        priced("cheap", cheap, 0.5),
    ]
    async with gateway(tmp_path, models, {}) as client:
        text, headers = await ask(client, "best")
    assert text == "from dear"
    assert headers["x-waypost-deployment"] == "dear"
    assert headers["x-waypost-attempts"] == "2"
    assert (cheap.hits, dear.hits) == (1, 1)


async def test_a_failing_candidate_falls_back_before_a_stream_begins(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    cheap.enqueue(Reply(status=500))
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["cheap", "dear"]},
        priced("dear", dear, 10.0),
        priced("cheap", cheap, 0.5),
    ]
    async with gateway(tmp_path, models, {}) as client:
        stream = await client.chat.completions.create(model="best", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "from dear"


async def test_listed_order_keeps_the_candidates_order(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["dear", "cheap"], "order": "listed"},
        priced("dear", dear, 10.0),
        priced("cheap", cheap, 0.5),
    ]
    async with gateway(tmp_path, models, {}) as client:
        text, _ = await ask(client, "best")
    assert text == "from dear"
    assert cheap.hits == 0


async def test_candidates_without_prices_come_after_priced_ones(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["unpriced", "dear"]},
        priced("unpriced", cheap, None),
        priced("dear", dear, 10.0),
    ]
    async with gateway(tmp_path, models, {}) as client:
        text, _ = await ask(client, "best")
    assert text == "from dear"


async def test_preset_prices_decide_the_order(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    # groq's llama-3.3-70b-versatile lists above deepseek-chat in presets.yaml.
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["groq", "deepseek"]},
        {"name": "groq", "provider": "groq", "base_url": dear.url + "/v1"},
        {"name": "deepseek", "provider": "deepseek", "base_url": cheap.url + "/v1"},
    ]
    environ = {"GROQ_API_KEY": "sk-dear-upstream", "DEEPSEEK_API_KEY": "sk-cheap-upstream"}
    async with gateway(tmp_path, models, environ) as client:
        text, headers = await ask(client, "best")
    assert text == "from cheap"
    assert headers["x-waypost-deployment"] == "deepseek"


async def test_auto_with_no_usable_candidate_is_a_404_saying_why(tmp_path: Path) -> None:
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["groq", "deepseek"]},
        {"name": "groq", "provider": "groq"},
        {"name": "deepseek", "provider": "deepseek"},
    ]
    async with gateway(tmp_path, models, {}) as client:
        with pytest.raises(openai.NotFoundError) as err:
            await client.chat.completions.create(model="best", messages=USER)
    assert "no usable candidate" in err.value.message
    assert "credentials" in err.value.message


async def test_auto_with_no_usable_candidate_is_a_404_for_anthropic_clients_too(tmp_path: Path) -> None:
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["groq"]},
        {"name": "groq", "provider": "groq"},
    ]
    doc = {
        "auth": auth_section(),
        "security": {"allow_private_targets": True},
        "logging": {"level": "warning"},
        "models": models,
    }
    path = tmp_path / "waypost.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    async with (
        serve(load_settings(path, {})) as url,
        anthropic.AsyncAnthropic(base_url=url, api_key=GATEWAY_KEY, max_retries=0) as client,
    ):
        with pytest.raises(anthropic.NotFoundError) as err:
            await client.messages.create(model="best", max_tokens=64, messages=USER)
    assert "no usable candidate" in err.value.message


async def test_a_local_preset_needs_no_key(tmp_path: Path) -> None:
    async with OpenAIUpstream() as local:  # a vLLM-like server that takes no key
        models: list[dict[str, Any]] = [
            {"name": "best", "provider": "auto", "candidates": ["vllm"]},
            {"name": "vllm", "provider": "vllm", "base_url": local.url + "/v1"},
        ]
        async with gateway(tmp_path, models, {}) as client:
            text, _ = await ask(client, "best")
        assert local.last.json["model"] == "default"
    assert text == "echo: hi"
    assert "authorization" not in local.last.headers


async def test_a_local_preset_on_the_ipv6_loopback_without_a_port_counts_as_usable(
    tmp_path: Path, dear: OpenAIUpstream
) -> None:
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["v6", "dear"], "order": "listed"},
        {
            "name": "v6",
            "provider": "vllm",
            "base_url": "http://[::1]/v1",
            "retry": NO_RETRY,
            "timeouts": {"connect": 1},
        },
        priced("dear", dear, 10.0),
    ]
    async with gateway(tmp_path, models, {}) as client:
        text, headers = await ask(client, "best")
    assert text == "from dear"
    assert headers["x-waypost-attempts"] == "2"  # v6 was tried first (nothing listens there)


async def test_a_key_given_as_a_configured_header_counts_as_credentials(
    tmp_path: Path, cheap: OpenAIUpstream, dear: OpenAIUpstream
) -> None:
    header_auth = priced(
        "cheap", cheap, 0.5, api_key=None, headers={"Authorization": "Bearer sk-cheap-upstream"}
    )
    models: list[dict[str, Any]] = [
        {"name": "best", "provider": "auto", "candidates": ["dear", "cheap"]},
        priced("dear", dear, 10.0),
        header_auth,
    ]
    async with gateway(tmp_path, models, {}) as client:
        text, _ = await ask(client, "best")
    assert text == "from cheap"


async def test_any_credential_header_counts_as_credentials_as_it_is_scrubbed(
    tmp_path: Path, dear: OpenAIUpstream
) -> None:
    # The same rule as for what is scrubbed from upstream text (docs/providers.md): an API
    # gateway's own key header counts, not only the four best-known ones.
    async with OpenAIUpstream() as apim:
        apim.default_reply = Reply(text="from apim")
        models: list[dict[str, Any]] = [
            {"name": "best", "provider": "auto", "candidates": ["dear", "apim"]},
            priced("dear", dear, 10.0),
            priced("apim", apim, 0.5, headers={"Ocp-Apim-Subscription-Key": "apim-key-0123456789"}),
        ]
        async with gateway(tmp_path, models, {}) as client:
            text, _ = await ask(client, "best")
        assert apim.last.headers["ocp-apim-subscription-key"] == "apim-key-0123456789"
    assert text == "from apim"
