"""What the deployment files may set: the paths of Waypost's settings, and the few ``WAYPOST_*``
variables that are not settings, as the code itself names them."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from waypost.security.crypto import generate_key
from waypost.settings import Settings
from waypost.settings_loading import ENV_PREFIX, deep_merge

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "waypost"

# What the chart's Secret holds, in the shape Waypost expects of each variable.
SECRET_SAMPLES = {
    "WAYPOST_DATABASE__URL": "postgresql://waypost:pw@postgres:5432/waypost",
    "WAYPOST_AUTH__JWT_SECRET": "j" * 40,
    "WAYPOST_SECURITY__ENCRYPTION_KEYS": f'["{generate_key()}"]',
    "WAYPOST_ADMIN_PASSWORD": "a-long-and-unguessable-passphrase-42",
    "WAYPOST_STATE__REDIS_URL": "redis://redis:6379/0",
    "WAYPOST_METRICS__TOKEN": "m" * 24,
    "WAYPOST_DATABASE__POSTGRES_SCHEMA": "waypost",
}


def _field(model: type[BaseModel], name: str) -> Any:
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info.annotation
    return None


def _choices(annotation: Any) -> list[Any]:
    """The types an annotation allows, ``None`` left out (``X | None`` -> ``[X]``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if origin is typing.Annotated:
        return _choices(typing.get_args(annotation)[0])
    return [annotation]


def settings_path_exists(parts: list[str], annotation: Any = Settings) -> bool:
    """Whether ``parts`` (``["models", "0", "api_key"]``) names a setting: model fields by name or
    alias, list items by number, mapping values by any key."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    for choice in _choices(annotation):
        origin = typing.get_origin(choice)
        if isinstance(choice, type) and issubclass(choice, BaseModel):
            inner = _field(choice, head)
            if inner is not None and settings_path_exists(rest, inner):
                return True
        elif origin is list and head.isdigit():
            if settings_path_exists(rest, typing.get_args(choice)[0]):
                return True
        elif origin is dict and settings_path_exists(rest, typing.get_args(choice)[1]):
            return True
    return False


def env_var_names_a_setting(name: str) -> bool:
    """``WAYPOST_SERVER__PORT`` -> ``server.port``, as ``apply_env_overrides`` reads it."""
    parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
    return name.startswith(ENV_PREFIX) and settings_path_exists(parts)


_SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "src" / "waypost").rglob("*.py"))


def waypost_reads(name: str) -> bool:
    """Whether Waypost's code reads ``name`` as a variable of its own (``WAYPOST_ADMIN_PASSWORD``,
    ``WAYPOST_CONFIG``) rather than as a settings override: it names it as a string."""
    return re.search(rf"[\"']{re.escape(name)}[\"']", _SOURCE) is not None


def unknown_waypost_variables(names: list[str]) -> list[str]:
    """The ``WAYPOST_*`` names that are neither a setting nor a variable Waypost reads."""
    return sorted(n for n in names if not env_var_names_a_setting(n) and not waypost_reads(n))


def helm_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Values as Helm coalesces them: mappings merge, lists and scalars replace, and a null in
    the user's values removes the chart's default."""
    merged = deep_merge(base, over)

    def prune(node: Any, overlay: Any) -> Any:
        if not isinstance(node, dict) or not isinstance(overlay, dict):
            return node
        return {
            k: prune(v, overlay.get(k)) for k, v in node.items() if not (k in overlay and overlay[k] is None)
        }

    return prune(merged, over)
