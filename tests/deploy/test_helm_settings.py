"""Every Waypost setting the chart sets exists in Waypost's settings: the ConfigMap's YAML (the
values' ``config`` block, loaded through Waypost's own loader) and the ``WAYPOST_*`` variables the
templates set. Helm is not needed: the ConfigMap is ``config`` as it is (checked below), and the
variables' names are read from the templates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.settings_paths import CHART, SECRET_SAMPLES, helm_merge, unknown_waypost_variables
from waypost.settings import Settings, load_settings

TEMPLATES = CHART / "templates"
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))


def template_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(TEMPLATES.iterdir()))


def chart_variables() -> list[str]:
    """Every environment variable name a template sets (``- name: WAYPOST_...``)."""
    return sorted(set(re.findall(r"-\s+name:\s*\"?(WAYPOST_[A-Z0-9_]+)", template_text())))


def values_of(example: Path | None) -> dict[str, Any]:
    if example is None:
        return DEFAULTS
    return helm_merge(DEFAULTS, yaml.safe_load(example.read_text(encoding="utf-8")))


def pod_environment(values: dict[str, Any]) -> dict[str, str]:
    """The variables a pod gets: the Secret's and one per ``providerKeys`` entry."""
    env = {name: SECRET_SAMPLES[name] for name in chart_variables()}
    env.update(dict.fromkeys(values.get("providerKeys") or {}, "sk-sample-key"))
    env.update({e["name"]: e["value"] for e in values.get("extraEnv") or [] if "value" in e})
    return env


def test_the_templates_set_the_secret_variables() -> None:
    names = chart_variables()
    assert {"WAYPOST_DATABASE__URL", "WAYPOST_AUTH__JWT_SECRET", "WAYPOST_SECURITY__ENCRYPTION_KEYS"} <= set(
        names
    )
    assert set(names) <= set(SECRET_SAMPLES), (
        f"add a sample value for {sorted(set(names) - set(SECRET_SAMPLES))}"
    )


def test_every_waypost_variable_the_templates_set_is_a_setting_or_read_by_waypost() -> None:
    assert unknown_waypost_variables(chart_variables()) == []


def test_an_unknown_variable_would_be_caught() -> None:
    assert unknown_waypost_variables(["WAYPOST_DATABASE__URI", "WAYPOST_MODELS__0__APIKEY"]) == [
        "WAYPOST_DATABASE__URI",
        "WAYPOST_MODELS__0__APIKEY",
    ]
    assert unknown_waypost_variables(["WAYPOST_MODELS__0__API_KEY", "WAYPOST_LOGGING__JSON"]) == []


def test_the_configmap_is_the_config_block_as_it_is() -> None:
    """What the tests below load is what the ConfigMap holds: ``config``, rendered whole."""
    configmap = (TEMPLATES / "configmap.yaml").read_text(encoding="utf-8")
    assert re.search(r"waypost\.yaml: \|\n\s*\{\{-? toYaml \.Values\.config \| nindent 4 \}\}", configmap)
    deployment = (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")
    assert "mountPath: /etc/waypost" in deployment
    assert '"--config", "/etc/waypost/waypost.yaml"' in deployment


@pytest.mark.parametrize("example", [None, *EXAMPLES], ids=lambda p: p.name if p else "values.yaml")
def test_the_rendered_config_loads_through_waypost_settings(example: Path | None, tmp_path: Path) -> None:
    values = values_of(example)
    config = tmp_path / "waypost.yaml"
    config.write_text(yaml.safe_dump(values["config"]), encoding="utf-8")
    settings = load_settings(config, environ=pod_environment(values))
    assert isinstance(settings, Settings)
    # A pod is reached from outside itself, so Waypost runs with its off-loopback checks on.
    assert not settings.loopback_only
    # The spool is on the pod's writable volume (the root filesystem and the config are read-only).
    assert settings.audit.spool_dir is not None
    assert settings.audit.spool_dir.startswith("/var/lib/waypost/")
    assert "mountPath: /var/lib/waypost\n" in (TEMPLATES / "deployment.yaml").read_text(encoding="utf-8")


def test_a_config_with_a_setting_waypost_lacks_would_be_refused(tmp_path: Path) -> None:
    from waypost.settings import ConfigError

    config = tmp_path / "waypost.yaml"
    config.write_text(yaml.safe_dump({**DEFAULTS["config"], "server": {"prot": 4000}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_settings(config, environ=pod_environment(DEFAULTS))


def test_the_grace_period_of_a_pod_outlasts_waypost_s_own() -> None:
    """terminationGracePeriodSeconds defaults to the preStop sleep + server.shutdown_grace + 15."""
    helper = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    assert ".shutdown_grace | default 30" in helper
    assert "add (.Values.preStopSleepSeconds | int) ($grace | ceil | int) 15" in helper
    assert Settings().server.shutdown_grace == 30
    assert DEFAULTS["terminationGracePeriodSeconds"] is None
