"""The GenAI semantic conventions Waypost follows are pinned (pyproject.toml) and every name it
emits is checked against that release's published registry: the anchors have drifted before
(``gen_ai.system`` became ``gen_ai.provider.name``; the GenAI names then moved to a registry of
their own), and a name that drifts out of the registry fails here, not on a dashboard."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from opentelemetry.semconv.schemas import Schemas

from tests.observability import genai_registry
from waypost.observability import tracing, tracing_attributes

ROOT = Path(__file__).parents[2]


def names_in(module: object) -> set[str]:
    """The attribute names a module declares (its upper-case string constants)."""
    return {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str) and "." in v}


def test_the_semantic_conventions_release_is_pinned_and_installed() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("opentelemetry-semantic-conventions")]
    assert len(pins) == 1 and "==" in pins[0], pins
    assert importlib.metadata.version("opentelemetry-semantic-conventions") == pins[0].split("==")[1]


def test_the_schema_url_spans_carry_is_one_the_pinned_release_publishes() -> None:
    assert tracing.SCHEMA_URL in {s.value for s in Schemas}


def test_every_attribute_name_waypost_declares_is_current_in_the_registry() -> None:
    registry = genai_registry.attributes()
    names = {n for n in names_in(tracing_attributes) if not n.startswith("waypost.")}
    assert {"gen_ai.provider.name", "gen_ai.usage.cache_read.input_tokens"} <= names
    assert [p for n in sorted(names) if (p := genai_registry.problem(n, registry))] == []


def test_the_metric_names_are_current_in_the_registry() -> None:
    source = (ROOT / "src/waypost/observability/tracing.py").read_text()
    metrics = set(re.findall(r'"(gen_ai\.client\.[a-z_.]+)"', source))
    assert metrics == {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
    registry = genai_registry.metrics()
    assert [p for n in sorted(metrics) if (p := genai_registry.problem(n, registry))] == []


def test_the_check_refuses_a_deprecated_name_and_an_unknown_one() -> None:
    registry = genai_registry.attributes()
    deprecated = genai_registry.problem("gen_ai.system", registry)
    assert deprecated is not None and "Replaced by `gen_ai.provider.name`" in deprecated
    assert genai_registry.problem("gen_ai.usage.prompt_tokens", registry) is not None
    assert genai_registry.problem("gen_ai.usage.cached_tokens", registry) == (
        "gen_ai.usage.cached_tokens: not in the registry"
    )


def test_waypost_own_attributes_stay_in_their_namespace() -> None:
    ours = {n for n in names_in(tracing_attributes) if n.startswith("waypost.")}
    assert ours and all(n not in genai_registry.attributes() for n in ours)
