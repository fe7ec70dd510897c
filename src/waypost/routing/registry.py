"""Model resolution: exact names first, then full-match regex patterns in config order."""

from __future__ import annotations

import re

from waypost.core.errors import ModelNotFound
from waypost.providers.base import Deployment
from waypost.settings import ModelSettings

MAX_CHAIN = 8  # a model plus at most seven fallbacks, however the lists nest


class ModelRegistry:
    def __init__(self, models: list[ModelSettings]) -> None:
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
        """The deployment for ``name`` and its fallbacks (breadth first, each model at most once)."""
        first = self.resolve(name)
        out = [first]
        seen = {first.name}
        queue = list(first.settings.fallbacks)
        while queue and len(out) < MAX_CHAIN:
            fallback = queue.pop(0)
            if fallback in seen:
                continue
            seen.add(fallback)
            settings = self._exact[fallback]
            out.append(Deployment(settings, settings.upstream_model or settings.name))
            queue.extend(settings.fallbacks)
        return out
