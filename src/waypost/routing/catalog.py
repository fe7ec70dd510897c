"""One model registry for models declared in the config file and models created at run time.

Config-file models are read-only through the API; database models are reloaded every
``auth.cache_ttl`` seconds (and at once in the worker that changed them). ``secret://name``
values are decrypted here, just before the registry that hands settings to providers is built,
and live only in memory.

A reload reads the database on the event loop (asynchronously) and does the rest, validating
every model, resolving secrets and building the registry (tens of milliseconds with a thousand
models), in a thread; the new state is swapped in at once. Requests keep being served meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from waypost.core.errors import BadRequest
from waypost.providers.registry import build_providers
from waypost.routing.registry import ModelRegistry
from waypost.security.crypto import SecretBox
from waypost.security.secret_refs import refs_in, resolve_refs
from waypost.settings import ModelSettings, Settings

if TYPE_CHECKING:
    from waypost.providers.http import HttpClient
    from waypost.routing.router import Router
    from waypost.store import Store
    from waypost.store.records import AssignmentRecord, ModelRecord

log = logging.getLogger("waypost.catalog")

Source = Literal["config", "database"]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    settings: ModelSettings  # as declared: secret references unresolved
    source: Source
    public: bool
    assignments: tuple[AssignmentRecord, ...]


class ModelCatalog:
    def __init__(
        self, settings: Settings, store: Store, secrets: SecretBox, router: Router, http: HttpClient
    ):
        self._settings = settings
        self._store = store
        self._secrets = secrets
        self._router = router
        self._http = http
        self._entries: list[CatalogEntry] = [
            CatalogEntry(m.name, m, "config", m.public, ()) for m in settings.models
        ]
        self._public = frozenset(m.name for m in settings.models if m.public)
        self._lock = asyncio.Lock()
        self._fingerprint: tuple[Any, ...] | None = None  # what the last reload read

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries)

    def entry(self, name: str) -> CatalogEntry | None:
        return next((e for e in self._entries if e.name == name), None)

    def public_names(self) -> frozenset[str]:
        return self._public

    async def reload(self) -> None:
        """Read database models, assignments and secrets; swap in a new registry if any changed."""
        async with self._lock:
            records = await self._store.models.list()
            assignments = await self._store.assignments.list()
            secrets = await self._store.secrets.list()
            fingerprint = (
                tuple((r.name, r.updated_at, r.public) for r in records),
                tuple(assignments),
                tuple((s.name, s.updated_at) for s in secrets),
            )
            if fingerprint == self._fingerprint:
                return
            by_model: dict[str, list[AssignmentRecord]] = {}
            for a in assignments:
                by_model.setdefault(a.model_name, []).append(a)
            config_names = {m.name for m in self._settings.models}
            # The config file wins a name clash (the API refuses to create one).
            stored = [r for r in records if r.name not in config_names]
            declared: list[tuple[ModelSettings, Source, bool]] = [
                (m, "config", m.public) for m in self._settings.models
            ]
            validated = await asyncio.to_thread(self._validate_stored, stored)
            declared += [(m, "database", m.public) for m in validated]
            usable = await self._usable([m for m, _source, _public in declared])
            registry = await asyncio.to_thread(ModelRegistry, usable, None, self._router.registry.prices)
            self._entries = [
                CatalogEntry(m.name, m, source, public, tuple(by_model.get(m.name, ())))
                for m, source, public in declared
            ]
            self._public = frozenset(m.name for m, _, public in declared if public)
            missing = {m.provider for m in usable} - set(self._router.providers)
            if missing:
                self._router.providers = {**self._router.providers, **build_providers(missing, self._http)}
            self._router.registry = registry
            self._fingerprint = fingerprint

    async def use_settings(self, settings: Settings) -> None:
        """Take the config file's models (and presets) from ``settings`` and rebuild the registry
        with them and the database's (a reload of the config file: api/reload.py)."""
        async with self._lock:
            self._settings = settings
            self._fingerprint = None  # rebuilt although the database did not change
        await self.reload()

    def _validate_stored(self, records: list[ModelRecord]) -> list[ModelSettings]:
        """The database models as settings, validated in one pass with the config file's; only when
        that fails is each validated on its own, so one bad row disables only itself."""
        configs = [({**r.config, "public": r.public}, r.name) for r in records]
        declared = [m.model_dump(exclude_unset=True) for m in self._settings.models]
        try:
            return self._validate_many(configs, declared)
        except BadRequest:
            pass
        out = []
        for config, name in configs:
            try:
                out.append(self.validate(config, name))
            except BadRequest as err:
                log.error("database model %r is invalid and is skipped: %s", name, err.message)
        return out

    async def _usable(self, models: list[ModelSettings]) -> list[ModelSettings]:
        """``models`` with their secret references resolved; a model whose secret is missing or
        unreadable is left out (and logged). The per-model work runs in a thread."""
        raws, refs = await asyncio.to_thread(_dumped_with_refs, models)
        ciphertexts = {name: await self._store.secrets.ciphertext(name) for name in set().union(*refs)}
        return await asyncio.to_thread(self._resolve_all, models, raws, refs, ciphertexts)

    def _resolve_all(
        self,
        models: list[ModelSettings],
        raws: list[dict[str, Any]],
        refs: list[set[str]],
        ciphertexts: dict[str, str | None],
    ) -> list[ModelSettings]:
        usable = []
        for model, raw, names in zip(models, raws, refs, strict=True):
            if not names:
                usable.append(model)
                continue
            try:
                values = {}
                for name in names:
                    ciphertext = ciphertexts[name]
                    if ciphertext is None:
                        raise BadRequest(f"the secret {name!r} it references does not exist")
                    values[name] = self._secrets.decrypt(ciphertext)
                usable.append(ModelSettings.model_validate(resolve_refs(raw, values)))
            except Exception as err:  # a missing or unreadable secret disables only this model
                log.error("model %r is disabled: %s", model.name, getattr(err, "message", err))
        return usable

    def validate(self, config: dict[str, Any], name: str) -> ModelSettings:
        """Validate a model's fields as the config file would, against the models that exist
        (fallbacks and candidates must name them). Raises ``BadRequest`` naming the field."""
        others = [e.settings.model_dump(exclude_unset=True) for e in self._entries if e.name != name]
        return self._validate_many([(config, name)], others)[-1]

    def _validate_many(
        self, configs: list[tuple[dict[str, Any], str]], others: list[dict[str, Any]]
    ) -> list[ModelSettings]:
        """Validate ``configs`` (fields, name) together, beside the already valid ``others``."""
        doc = {
            "server": {"host": "127.0.0.1"},
            "presets": {k: v.model_dump() for k, v in self._settings.presets.items()},
            "models": [*others, *({**config, "name": name} for config, name in configs)],
        }
        try:
            settings = Settings.model_validate(doc)
        except ValidationError as exc:
            raise BadRequest(_field_message(exc, len(others))) from None
        return settings.models[len(others) :]

    async def run_refresher(self, every: float) -> None:
        """The background loop the lifespan starts: pick up changes made by other workers."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.reload()
            except Exception:
                log.warning("could not reload models from the database", exc_info=True)


def _dumped_with_refs(models: list[ModelSettings]) -> tuple[list[dict[str, Any]], list[set[str]]]:
    raws = [m.model_dump(exclude_unset=True) for m in models]
    return raws, [refs_in(raw) for raw in raws]


def _field_message(exc: ValidationError, index: int) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
        if loc[:2] == ["models", str(index)]:
            loc = loc[2:]
        msg = re.sub(rf"^models\[{index}\]\.", "", err["msg"].removeprefix("Value error, "))
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts)
