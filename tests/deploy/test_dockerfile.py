"""The Dockerfile, read as text (building it needs a Docker daemon, which tests do not have):
two stages, a non-root user, a health check on /health, ``waypost serve`` as the command, and a
default config that Waypost loads once the secrets are given."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from tests.deploy.settings_paths import REPO
from waypost.security.crypto import generate_key
from waypost.settings import load_settings

DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
# Instructions with their continuation lines joined.
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def instructions(keyword: str) -> list[str]:
    return [i[len(keyword) + 1 :] for i in INSTRUCTIONS if i.split(" ", 1)[0] == keyword]


def runtime_stage() -> list[str]:
    last_from = max(i for i, line in enumerate(INSTRUCTIONS) if line.startswith("FROM "))
    return INSTRUCTIONS[last_from:]


def test_the_image_is_built_in_two_stages_and_copies_only_the_environment() -> None:
    stages = instructions("FROM")
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    copies = [line for line in runtime_stage() if line.startswith("COPY ")]
    assert copies == [
        "COPY --from=build /opt/waypost /opt/waypost",
        "COPY deploy/docker/waypost.yaml /etc/waypost/waypost.yaml",
    ]


def test_the_server_runs_as_a_numeric_non_root_user() -> None:
    (user,) = [line for line in runtime_stage() if line.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_the_health_check_asks_health_without_curl() -> None:
    (check,) = instructions("HEALTHCHECK")
    assert '"python", "-c"' in check and "/health" in check and "curl" not in check
    assert "WAYPOST_SERVER__PORT', '4000'" in check


def test_the_entrypoint_serves_on_the_exposed_port() -> None:
    assert instructions("ENTRYPOINT") == ['["waypost"]']
    assert instructions("CMD") == ['["serve"]']
    assert instructions("EXPOSE") == ["4000"]


def test_the_build_context_holds_every_file_the_build_copies() -> None:
    """.dockerignore admits only what the build needs; each COPY source must be one of them."""
    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if p.strip() and not p.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    sources = [
        word for line in instructions("COPY") if not line.startswith("--from") for word in line.split()[:-1]
    ]
    assert sources == ["pyproject.toml", "README.md", "src", "deploy/docker/waypost.yaml"]
    for source in sources:
        assert (REPO / source).exists(), source
        assert included(source), f"{source} is excluded by .dockerignore"
    assert not included(".venv") and not included("tests")


def test_the_image_default_config_loads_off_loopback_once_the_secrets_are_given(tmp_path: Path) -> None:
    environ = {
        "WAYPOST_AUTH__JWT_SECRET": "j" * 40,
        "WAYPOST_SECURITY__ENCRYPTION_KEYS": f'["{generate_key()}"]',
        "WAYPOST_ADMIN_PASSWORD": "a-long-and-unguessable-passphrase-42",
    }
    settings = load_settings(REPO / "deploy" / "docker" / "waypost.yaml", environ=environ)
    assert settings.server.host == "0.0.0.0" and settings.server.port == 4000
    assert settings.database.url == "sqlite:////var/lib/waypost/waypost.db"
    assert settings.audit.spool_dir == "/var/lib/waypost/spool"
    assert "install -d -o waypost -g waypost -m 0750 /var/lib/waypost" in DOCKERFILE
