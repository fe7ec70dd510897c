"""The chart's values.schema.json: it accepts values.yaml and every documented example, refuses
values Helm would otherwise render into a broken release, and knows Waypost's settings sections."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.settings_paths import CHART, helm_merge
from waypost.settings import Settings

SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))


def problems(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(values)
    ]


def test_the_schema_is_a_valid_draft_7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_the_default_values_are_valid() -> None:
    assert problems(DEFAULTS) == []


def test_there_are_documented_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {"minimal.yaml", "production.yaml", "single-replica.yaml"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_is_valid_over_the_defaults(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    assert text.startswith("#"), "each example starts with a comment saying what it is for"
    assert problems(helm_merge(DEFAULTS, yaml.safe_load(text))) == []


def _with(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(DEFAULTS)
    *parents, last = path.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return values


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("replicaCount", "two", "replicaCount"),
        ("replicasCount", 2, "replicasCount"),  # a misspelt key is refused, not ignored
        ("config.sever", {"port": 4000}, "sever"),  # so is a settings section Waypost does not have
        ("config.server.port", 70000, "config.server.port"),
        ("image.pullPolicy", "Sometimes", "image.pullPolicy"),
        ("autoscaling.targetCPUUtilizationPercentage", 150, "autoscaling.targetCPUUtilizationPercentage"),
        ("secrets.values.jwtSecret", "too-short", "secrets.values.jwtSecret"),
        ("secrets.values.databaseUrl", "mysql://db/waypost", "secrets.values.databaseUrl"),
        ("providerKeys", {"OPENAI-KEY": {"key": "openai"}}, "providerKeys"),
        ("probes.readiness.path", "health/ready", "probes.readiness.path"),
        ("metrics.serviceMonitor.interval", "30 seconds", "metrics.serviceMonitor.interval"),
    ],
)
def test_bad_values_are_refused_naming_the_key(path: str, value: Any, named: str) -> None:
    found = problems(_with(path, value))
    assert found, f"{path}={value!r} was accepted"
    assert any(named in line for line in found), found


def test_config_sections_are_exactly_waypost_settings_sections() -> None:
    """A section the schema allows must exist in Waypost, and one Waypost has must be settable."""
    allowed = set(SCHEMA["properties"]["config"]["properties"]) - {"environments"}
    sections = {info.alias or name for name, info in Settings.model_fields.items()}
    assert allowed == sections, (
        f"values.schema.json config sections differ from Waypost's settings: "
        f"not in Waypost {sorted(allowed - sections)}, missing from the schema {sorted(sections - allowed)}"
    )
