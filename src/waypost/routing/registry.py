"""Model resolution: exact names first, then full-match regex patterns in config order."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from waypost.core.errors import ModelNotFound
from waypost.providers.base import Deployment
from waypost.providers.credentials import CREDENTIAL_NAME
from waypost.providers.kinds import PROVIDER_KINDS
from waypost.settings import ModelSettings, is_loopback

MAX_CHAIN = 8  # a model plus at most seven fallbacks, however the lists nest


class ModelRegistry:
    def __init__(self, models: list[ModelSettings], environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._exact = {m.name: m for m in models}
        self._patterns = [(re.compile(m.match), m) for m in models if m.match]
        self.models = list(models)

    def resolve(self, name: str) -> Deployment:
        settings = self._exact.get(name)
        if settings is not None:
            return Deployment(settings, settings.upstream_model or name)
        for pattern, settings in self._patterns:
            if pattern.fullmatch(name):
                # A pattern forwards the name the caller asked for unless it aliases explicitly.
                return Deployment(settings, settings.upstream_model or name)
        raise ModelNotFound(
            f"The model {name!r} does not exist or you do not have access to it.", param="model"
        )

    def chain(self, name: str) -> list[Deployment]:
        """The deployment for ``name`` and its fallbacks (breadth first, each model at most once).
        An ``auto`` model stands for its usable candidates, cheapest first unless listed."""
        first = self.resolve(name)
        seen = {first.name}
        if first.provider == "auto":
            out = []
            queue = [*self._auto_candidates(first.settings), *first.settings.fallbacks]
        else:
            out = [first]
            queue = list(first.settings.fallbacks)
        while queue and len(out) < MAX_CHAIN:
            fallback = queue.pop(0)
            if fallback in seen:
                continue
            seen.add(fallback)
            settings = self._exact[fallback]
            if settings.provider == "auto":
                queue.extend(self._auto_candidates(settings))
            else:
                out.append(Deployment(settings, settings.upstream_model or settings.name))
            queue.extend(settings.fallbacks)
        if not out:
            raise ModelNotFound(
                f"The model {name!r} has no usable candidate: none of them has credentials configured.",
                param="model",
            )
        return out

    def _auto_candidates(self, auto: ModelSettings) -> list[str]:
        usable = [c for c in auto.candidates if has_credentials(self._exact[c], self._environ)]
        if auto.order == "listed":
            return usable
        return sorted(usable, key=lambda c: _price_rank(self._exact[c]))  # stable: ties keep list order


_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def has_credentials(settings: ModelSettings, environ: Mapping[str, str]) -> bool:
    """Whether a model can be called at all: what ``auto`` selection checks."""
    kind = PROVIDER_KINDS.get(settings.provider)
    if kind is not None and not kind.needs_credentials:
        return True
    if settings.provider == "bedrock":
        aws = settings.aws
        if aws is not None and (aws.access_key_id or aws.profile):
            return True
        return any(environ.get(v) for v in _AWS_ENV)
    if settings.api_key:
        return True
    if any(CREDENTIAL_NAME.search(name) for name in settings.headers):
        return True  # a credential given as a configured header (e.g. an Entra ID token for Azure)
    # Presets on a loopback address (vllm, lmstudio, llamacpp, ...) need no key.
    return settings.preset is not None and settings.base_url is not None and _is_local(settings.base_url)


def _is_local(url: str) -> bool:
    # urlsplit handles bracketed IPv6 hosts with or without a port; any 127.x address is loopback.
    host = urlsplit(url).hostname
    return host is not None and is_loopback(host)


def _price_rank(settings: ModelSettings) -> tuple[int, float]:
    prices = settings.prices
    if prices is None:
        return (1, 0.0)  # unknown prices go after every priced candidate
    return (0, prices.input + prices.output)
