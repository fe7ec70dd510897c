"""deploy/compose.yaml: it parses, starts what the issue names, every file it mounts exists, the
Waypost config it mounts loads with the environment it sets, and ``docker compose config``
accepts it where that tool exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.settings_paths import DEPLOY, REPO, unknown_waypost_variables
from waypost.security.crypto import generate_key
from waypost.settings import load_settings

COMPOSE_FILE = DEPLOY / "compose.yaml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]

# What a person exports before `docker compose up` (the file refuses to start without them).
USER_ENV = {
    "WAYPOST_JWT_SECRET": "s" * 40,
    "WAYPOST_ENCRYPTION_KEY": generate_key(),
    "WAYPOST_ADMIN_PASSWORD": "a-long-and-unguessable-passphrase-42",
}

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _INTERPOLATION.sub(one, text)


def test_the_stack_has_the_services_the_issue_names() -> None:
    assert {"waypost", "migrate", "postgres", "redis", "prometheus", "grafana", "jaeger"} <= set(SERVICES)


def test_migrations_run_once_before_the_gateway_starts() -> None:
    assert SERVICES["migrate"]["command"] == ["db", "upgrade"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["waypost"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def mounted_files() -> list[tuple[str, Path]]:
    """Every bind mount's source (a relative path), resolved beside compose.yaml."""
    out = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                out.append((name, (DEPLOY / source).resolve()))
    return out


@pytest.mark.parametrize(("service", "source"), mounted_files(), ids=lambda v: str(v))
def test_every_mounted_file_exists(service: str, source: Path) -> None:
    assert source.exists(), f"{service} mounts {source.relative_to(REPO)}, which does not exist"


def test_the_image_is_built_from_the_repository_dockerfile() -> None:
    build = SERVICES["waypost"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    dashboards = yaml.safe_load((provisioning / "dashboards" / "waypost.yaml").read_text())
    path = dashboards["providers"][0]["options"]["path"]
    assert any(v.endswith(f"{path}/waypost-dashboard.json:ro") for v in SERVICES["grafana"]["volumes"])


def test_the_dashboard_names_the_provisioned_datasource() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
    uid = yaml.safe_load(provisioning.read_text())["datasources"][0]["uid"]
    dashboard = json.loads((DEPLOY / "grafana" / "waypost-dashboard.json").read_text(encoding="utf-8"))

    def datasources(node: Any) -> list[Any]:
        if isinstance(node, dict):
            own = [node["datasource"]] if "datasource" in node else []
            return own + [d for v in node.values() for d in datasources(v)]
        return [d for v in node for d in datasources(v)] if isinstance(node, list) else []

    named = datasources(dashboard)
    assert named
    assert {d["uid"] if isinstance(d, dict) else d for d in named} == {uid}


def test_prometheus_scrapes_the_waypost_service() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = [
        t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]
    ]
    assert "waypost:4000" in targets, f"no scrape job targets the compose service waypost:4000 ({targets})"


def waypost_environment() -> dict[str, str]:
    environment: dict[str, str] = SERVICES["waypost"]["environment"]
    return {name: interpolate(str(value), USER_ENV) for name, value in environment.items()}


def test_every_waypost_variable_compose_sets_is_a_setting_or_read_by_waypost() -> None:
    names = [n for n in waypost_environment() if n.startswith("WAYPOST_")]
    assert names
    assert unknown_waypost_variables(names) == []


def test_the_mounted_waypost_config_loads_with_the_compose_environment() -> None:
    (mount,) = [v for v in SERVICES["waypost"]["volumes"] if v.endswith(":/etc/waypost/waypost.yaml:ro")]
    settings = load_settings(DEPLOY / mount.split(":", 1)[0], environ=waypost_environment())
    assert settings.database.url.startswith("postgresql://waypost:")
    assert settings.database.auto_migrate is False  # the migrate service does it
    assert settings.state.backend == "redis" and settings.state.redis_url.startswith("redis://redis:")
    assert settings.audit.spool_dir == "/var/lib/waypost/spool"
    assert not settings.loopback_only
    assert SERVICES["waypost"]["ports"] == [f"127.0.0.1:{settings.server.port}:{settings.server.port}"]


def test_the_secrets_must_be_given() -> None:
    with pytest.raises(KeyError, match="WAYPOST_JWT_SECRET"):
        interpolate(str(SERVICES["waypost"]["environment"]["WAYPOST_AUTH__JWT_SECRET"]), {})


def _docker_compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    return [docker, "compose"] if probe.returncode == 0 else None


@pytest.mark.optional_tool("docker compose")
def test_docker_compose_config_accepts_the_file() -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip("`docker compose` is not installed here (the Compose v2 plugin of the docker CLI)")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **USER_ENV},
    )
    assert result.returncode == 0, result.stderr
