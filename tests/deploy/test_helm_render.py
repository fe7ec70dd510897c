"""The chart rendered by Helm itself, where the Helm SDK for Python (``helm-python-sdk``, Helm's
Go code as a shared library) is installed: the ConfigMap Waypost reads and the variables the pods
get are the ones the other tests check from the values and templates. Skipped without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.settings_paths import CHART, SECRET_SAMPLES, unknown_waypost_variables
from waypost.settings import load_settings

EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))


def render(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each kind's rendered objects."""
    helm = pytest.importorskip(
        "helm_python", reason="the Helm SDK (pip install helm-python-sdk) is not installed"
    )
    manifests = helm.Chart.load(str(CHART)).render(values, name="waypost", namespace="llm", is_install=True)
    out: dict[str, list[dict[str, Any]]] = {}
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc:
                    out.setdefault(doc["kind"], []).append(doc)
    return out


def example_values(example: Path) -> dict[str, Any]:
    return yaml.safe_load(example.read_text(encoding="utf-8"))


def container_env(pod_spec: dict[str, Any]) -> list[str]:
    return [e["name"] for c in pod_spec["containers"] for e in c.get("env") or []]


@pytest.mark.optional_tool("helm-python-sdk")
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_rendered_release_gives_waypost_only_settings_it_has(example: Path, tmp_path: Path) -> None:
    objects = render(example_values(example))
    (configmap,) = objects["ConfigMap"]
    (deployment,) = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    names = container_env(pod)
    assert unknown_waypost_variables([n for n in names if n.startswith("WAYPOST_")]) == []

    config = tmp_path / "waypost.yaml"
    config.write_text(configmap["data"]["waypost.yaml"], encoding="utf-8")
    environ = {n: SECRET_SAMPLES.get(n, "sk-sample-key") for n in names}
    settings = load_settings(config, environ=environ)

    (container,) = pod["containers"]
    assert container["ports"][0]["containerPort"] == settings.server.port
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > stop + settings.server.shutdown_grace


@pytest.mark.optional_tool("helm-python-sdk")
def test_the_migration_job_runs_as_a_hook_outside_the_service() -> None:
    objects = render(example_values(CHART / "examples" / "single-replica.yaml"))
    (job,) = objects["Job"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    # The chart's own Secret is a hook made before it, since the Job reads it.
    (secret,) = objects["Secret"]
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    (service,) = objects["Service"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= job_labels.items()


@pytest.mark.optional_tool("helm-python-sdk")
def test_a_release_without_secrets_is_refused_naming_the_value() -> None:
    helm = pytest.importorskip(
        "helm_python", reason="the Helm SDK (pip install helm-python-sdk) is not installed"
    )
    with pytest.raises(helm.HelmRenderError, match=r"secrets\.values\.databaseUrl is required"):
        render({})
