"""``secret://name`` references: model settings name an encrypted secret instead of holding a key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from waypost.core.errors import BadRequest

SECRET_REF = "secret://"
SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_secret_name(name: str) -> str:
    """``name`` when valid; ``BadRequest`` naming the rule otherwise."""
    if not SECRET_NAME.match(name):
        raise BadRequest(
            f"invalid secret name {name!r}: 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    return name


def secret_ref(name: str) -> str:
    return SECRET_REF + name


def ref_name(value: Any) -> str | None:
    """The secret name when ``value`` is a whole ``secret://name`` string, else None."""
    if isinstance(value, str) and value.startswith(SECRET_REF):
        return value[len(SECRET_REF) :]
    return None


def refs_in(obj: Any) -> set[str]:
    """Names of every secret referenced anywhere in a nested dict/list."""
    found: set[str] = set()
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        else:
            name = ref_name(node)
            if name is not None:
                found.add(name)
    return found


def resolve_refs(obj: Any, lookup: Mapping[str, str], path: str = "") -> Any:
    """A copy of ``obj`` with each ``secret://name`` replaced by ``lookup[name]``.

    An unknown or malformed name raises ``BadRequest`` naming the field (``param``) and the secret.
    """
    if isinstance(obj, Mapping):
        return {k: resolve_refs(v, lookup, f"{path}.{k}" if path else str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [resolve_refs(v, lookup, f"{path}[{i}]") for i, v in enumerate(obj)]
    name = ref_name(obj)
    if name is None:
        return obj
    where = f"{path}: " if path else ""
    if not SECRET_NAME.match(name):
        raise BadRequest(f"{where}malformed secret reference {obj!r}", param=path or None)
    if name not in lookup:
        raise BadRequest(f"{where}secret {name!r} does not exist", param=path or None)
    return lookup[name]
