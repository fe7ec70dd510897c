"""The ``deployments`` of a model in the config file: what each inherits, and bad entries refused
with a message naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from waypost.routing.registry import expand
from waypost.settings import ConfigError, Settings, load_settings


def load(tmp_path: Path, *models: dict, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "waypost.yaml"
    path.write_text(yaml.safe_dump({"models": list(models)}))
    return load_settings(path, environ=environ or {})


def test_a_deployment_inherits_the_model_unless_it_names_another_provider(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        {
            "name": "pool",
            "provider": "openai",
            "api_key": "sk-model",
            "headers": {"X-Team": "blue"},
            "deployments": [
                {"name": "same", "base_url": "https://one.example/v1", "headers": {"X-Region": "eu"}},
                {"name": "other", "provider": "groq", "upstream_model": "llama"},
            ],
        },
        environ={"GROQ_API_KEY": "gsk-env"},
    )
    same, other = (s for _label, _own, s in expand(settings.models[0]))
    assert (same.api_key, same.base_url, same.headers) == (
        "sk-model",
        "https://one.example/v1",
        {"X-Team": "blue", "X-Region": "eu"},
    )
    # Another provider: the model's key and headers never go there; the preset's key does.
    assert (other.provider, other.preset, other.api_key, other.headers) == ("openai", "groq", "gsk-env", {})
    assert other.base_url == "https://api.groq.com/openai/v1"
    assert (same.upstream_model, other.upstream_model) == (None, "llama")


@pytest.mark.parametrize(
    ("deployments", "named"),
    [
        ([{"name": "a"}, {"name": "a"}], "models[0].deployments[1].name"),
        ([{"provider": "nowhere"}], "models[0].deployments[0].provider"),
        ([{"base_url": "https://user:pw@host/v1"}], "models[0].deployments[0].base_url"),
        ([{"weight": 0}], "models[0].deployments[0].weight"),
        ([{"colour": "red"}], "models[0].deployments[0].colour"),
    ],
)
def test_bad_deployments_are_refused_naming_the_key(tmp_path: Path, deployments: list, named: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, {"name": "pool", "provider": "openai", "api_key": "k", "deployments": deployments})
    assert named in str(exc.value)
