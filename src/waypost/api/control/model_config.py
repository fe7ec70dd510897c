"""Credentials in a model's settings: stored as encrypted secrets, shown as references or a mask.

A model created through the API never keeps a key in its stored config: each plaintext credential
becomes the secret ``model.<name>.<field>`` and the config holds ``secret://model.<name>.<field>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from waypost.core.errors import BadRequest
from waypost.providers.credentials import AWS_CREDENTIALS, CREDENTIAL_NAME
from waypost.security.secret_refs import SECRET_REF

MASK = "********"


def credential_paths(config: dict[str, Any]) -> Iterator[tuple[str, ...]]:
    """The paths of every credential value present in ``config`` (a model's settings as a dict,
    or one of its ``deployments``, whose credentials are under ``deployments.<index>``)."""
    deployments = config.get("deployments")
    for i, dep in enumerate(deployments if isinstance(deployments, list) else []):
        if isinstance(dep, dict):
            yield from (("deployments", str(i), *path) for path in credential_paths(dep))
    if isinstance(config.get("api_key"), str):
        yield ("api_key",)
    aws = config.get("aws")
    if isinstance(aws, dict):
        for key in AWS_CREDENTIALS:
            if isinstance(aws.get(key), str):
                yield ("aws", key)
    headers = config.get("headers")
    if isinstance(headers, dict):
        for key, value in headers.items():
            if isinstance(value, str) and CREDENTIAL_NAME.search(key):
                yield ("headers", key)


def _get(config: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = config
    for part in path:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]  # a deployment, by its index
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _set(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = config
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[path[-1]] = value


def _copy(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: _copy(v) for k, v in config.items()}
    return [_copy(v) for v in config] if isinstance(config, list) else config


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every plaintext credential replaced by ``********`` (references stay)."""
    out = _copy(config)
    for path in credential_paths(out):
        value = _get(out, path)
        if not value.startswith(SECRET_REF):
            _set(out, path, MASK)
    return out


def secret_name(model: str, path: tuple[str, ...]) -> str:
    """``model.<name>.<field>``; header names are lower-cased (HTTP header names are not case-sensitive)."""
    # A header's name: lower-cased wherever it is (the model's headers, or a deployment's).
    parts = [p.lower() if "headers" in path[:i] else p for i, p in enumerate(path)]
    return f"model.{model}.{'.'.join(parts)}"


def extract_credentials(
    model: str, config: dict[str, Any], previous: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Replace each plaintext credential by a reference to ``model.<name>.<field>``.

    Returns the new config and the secrets to store (name → plaintext). A ``********`` value (what
    GET answers) keeps the credential ``previous`` had at that place.
    """
    out = _copy(config)
    plaintexts: dict[str, str] = {}
    for path in list(credential_paths(out)):
        value: str = _get(out, path)
        field = ".".join(path)
        if value == MASK:
            kept = _get(previous or {}, path)
            if not isinstance(kept, str):
                raise BadRequest(
                    f"{field}: '{MASK}' stands for the stored value, and there is none", param=field
                )
            _set(out, path, kept)
        elif not value.startswith(SECRET_REF):
            if not value:
                raise BadRequest(f"{field}: must not be empty", param=field)
            name = secret_name(model, path)
            plaintexts[name] = value
            _set(out, path, f"{SECRET_REF}{name}")
    return out, plaintexts
