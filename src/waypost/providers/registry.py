"""Provider objects for the provider types in use, built from the table in ``kinds``. Each class
is imported only when a model needs it: a gateway that uses no Bedrock model never loads botocore."""

from __future__ import annotations

import importlib

from waypost.providers.base import Provider
from waypost.providers.http import HttpClient
from waypost.providers.kinds import PROVIDER_KINDS


def build_providers(types: set[str], http: HttpClient) -> dict[str, Provider]:
    """One provider object per type in use; each takes the shared HTTP client."""
    out: dict[str, Provider] = {}
    for name in sorted(types):
        kind = PROVIDER_KINDS.get(name)
        if kind is None or kind.implementation is None:
            continue  # "auto" has no provider of its own
        module, _, cls = kind.implementation.partition(":")
        out[name] = getattr(importlib.import_module(module), cls)(http)
    return out
