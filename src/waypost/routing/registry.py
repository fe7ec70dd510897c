"""Model resolution: exact names first, then full-match regex patterns in config order.

A registry is built for one catalogue (a changed catalogue builds a new one), so it remembers
each requested name's resolution and fallback chain: a name matched by the last of a thousand
patterns is scanned for once, not on every request. The memo is bounded (``MEMO_SIZE`` names,
then it starts over) so that random names from a scanner cannot grow it. A model without its
credentials is disabled: never in a chain, so never called, retried or fallen back to.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from waypost.core.errors import GatewayError, ModelDisabled, ModelNotFound
from waypost.providers.base import Deployment
from waypost.providers.credentials import CREDENTIAL_NAME
from waypost.providers.kinds import DEFAULT_BASE_URLS, PROVIDER_KINDS
from waypost.providers.presets import builtin_presets
from waypost.settings import DeploymentSettings, ModelSettings, Prices, is_loopback

T = TypeVar("T")
PriceOf = Callable[[ModelSettings], Prices | None]
MAX_CHAIN = 8  # a model plus at most seven fallbacks, however the lists nest
MEMO_SIZE = 4096  # names remembered per catalogue; past it the memo starts over


class ModelRegistry:
    def __init__(
        self,
        models: list[ModelSettings],
        environ: Mapping[str, str] | None = None,
        prices: PriceOf | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        # What a model costs, for ordering ``auto`` candidates cheapest first: its own prices, or
        # (given by the app) the price book's, which knows presets and the bundled catalogue.
        self.prices: PriceOf = prices or _own_prices
        self._exact = {m.name: m for m in models}
        self._patterns = [(re.compile(m.match), m) for m in models if m.match]
        self.models = list(models)
        # Per requested name: its deployment (None: no such model), and its chain or the error.
        self._resolved: dict[str, Deployment | None] = {}
        self._chains: dict[str, list[Deployment] | GatewayError] = {}
        self._disabled: dict[str, str] | None = None
        # A model with ``deployments:``: each one's full settings (the model's, overridden).
        self._expanded = {m.name: expand(m) for m in models if m.deployments}

    def resolve(self, name: str) -> Deployment:
        try:
            dep = self._resolved[name]
        except KeyError:
            dep = _remember(self._resolved, name, self._lookup(name))
        if dep is None:
            raise ModelNotFound(
                f"The model {name!r} does not exist or you do not have access to it.", param="model"
            )
        return dep

    def _lookup(self, name: str) -> Deployment | None:
        settings = self._exact.get(name)
        if settings is not None:
            return Deployment(settings, settings.upstream_model or name)
        for pattern, settings in self._patterns:
            if pattern.fullmatch(name):
                # A pattern forwards the name the caller asked for unless it aliases explicitly.
                return Deployment(settings, settings.upstream_model or name)
        return None

    def disabled(self) -> dict[str, str]:
        """The models that cannot be called, each with why (``/health``, ``waypost models list``)."""
        if self._disabled is None:
            found = {m.name: self._missing(m) for m in self.models if m.provider != "auto"}
            self._disabled = {name: reason for name, reason in found.items() if reason is not None}
        return self._disabled

    def chain(self, name: str) -> list[Deployment]:
        """The deployment for ``name`` and its fallbacks (breadth first, each model at most once),
        without the disabled ones. An ``auto`` model stands for its usable candidates, cheapest
        first unless listed."""
        try:
            known = self._chains[name]
        except KeyError:
            try:
                known = self._build_chain(name)
            except GatewayError as err:
                known = err
            _remember(self._chains, name, known)
        if isinstance(known, GatewayError):
            # A fresh exception each time (one raised again would gather tracebacks).
            raise type(known)(known.message, param=known.param)
        return list(known)

    def _build_chain(self, name: str) -> list[Deployment]:
        first = self.resolve(name)
        seen = {first.name}
        models = 0  # in the chain so far: each model's usable deployments count as one
        if first.provider == "auto":
            out = []
            queue = [*self._auto_candidates(first.settings), *first.settings.fallbacks]
        else:
            out = self.usable(first.settings, first.upstream_model)
            models = 1 if out else 0
            queue = list(first.settings.fallbacks)
        while queue and models < MAX_CHAIN:
            fallback = queue.pop(0)
            if fallback in seen:
                continue
            seen.add(fallback)
            settings = self._exact[fallback]
            if settings.provider == "auto":
                queue.extend(self._auto_candidates(settings))
            elif found := self.usable(settings, settings.upstream_model or settings.name):
                out.extend(found)
                models += 1
            queue.extend(settings.fallbacks)
        if not out:
            if first.provider == "auto":
                raise ModelNotFound(
                    f"The model {name!r} has no usable candidate: none of them has credentials configured.",
                    param="model",
                )
            reason = self._missing(first.settings)
            also = "; none of its fallbacks has credentials either" if first.settings.fallbacks else ""
            raise ModelDisabled(f"The model {name!r} is disabled: {reason}{also}.", param="model")
        return out

    def _auto_candidates(self, auto: ModelSettings) -> list[str]:
        usable = [c for c in auto.candidates if any(has_credentials(s, self._environ) for s in self._all(c))]
        if auto.order == "listed":
            return usable
        # Stable: ties keep list order.
        return sorted(usable, key=lambda c: _price_rank(self.prices(self._exact[c])))

    def usable(self, settings: ModelSettings, upstream: str) -> list[Deployment]:
        """The deployments of a model that have their credentials, in configured order;
        ``upstream``: the upstream model name of those that set none."""
        expanded = self._expanded.get(settings.name)
        if expanded is None:
            ok = missing_credentials(settings, self._environ) is None
            return [Deployment(settings, upstream)] if ok else []
        return [
            _deployment(label, own, dep, upstream, len(expanded))
            for label, own, dep in expanded
            if missing_credentials(dep, self._environ) is None
        ]

    def deployments(self) -> list[tuple[Deployment, str | None]]:
        """Every deployment of every model (``auto`` ones stand for others), each with why it
        cannot be called (None: it can): what /health lists."""
        out = []
        for m in self.models:
            if m.provider == "auto":
                continue
            upstream = m.upstream_model or m.name
            expanded = self._expanded.get(m.name) or [("", None, m)]
            for label, own, dep in expanded:
                found = _deployment(label, own, dep, upstream, len(expanded))
                out.append((found, missing_credentials(dep, self._environ)))
        return out

    def _all(self, name: str) -> list[ModelSettings]:
        """The settings of each of a model's deployments (the model's own without ``deployments:``)."""
        expanded = self._expanded.get(name)
        return [dep for _label, _own, dep in expanded] if expanded else [self._exact[name]]

    def _missing(self, settings: ModelSettings) -> str | None:
        """Why no deployment of a model can be called (the first one's reason), or None."""
        reasons = [missing_credentials(s, self._environ) for s in self._all(settings.name)]
        return None if None in reasons else reasons[0]


Expanded = tuple[str, DeploymentSettings | None, ModelSettings]


def _deployment(
    label: str, own: DeploymentSettings | None, settings: ModelSettings, upstream: str, pool: int
) -> Deployment:
    if own is None:
        return Deployment(settings, upstream)
    return Deployment(settings, settings.upstream_model or upstream, label, own.weight, pool, own.region)


def expand(model: ModelSettings) -> list[Expanded]:
    """Each deployment of ``model`` (label, its own settings, the settings it runs with): the
    model's settings with the deployment's fields in place of its own."""
    out: list[Expanded] = []
    for label, dep in zip(model.deployment_labels(), model.deployments, strict=True):
        update = {**dep.overrides(model.provider, model.preset, model.headers), "deployments": []}
        settings = model.model_copy(update=update)
        if "api_key" in update:
            settings._key_variable = None  # the model's empty env:// variable is not this key's
        out.append((label, dep, settings))
    return out


def destinations(model: ModelSettings) -> list[tuple[str, ModelSettings]]:
    """The settings of each endpoint a model calls, with the key path naming it ("" for the
    model's own, "deployments[1]." ...): what the outbound URL checks go through."""
    out = [("", model)]
    for j, (_label, own, dep) in enumerate(expand(model)):
        if own is not None and own.model_fields_set & {"provider", "base_url", "aws"}:
            out.append((f"deployments[{j}].", dep))
    return out


_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def _remember(memo: dict[str, T], name: str, value: T) -> T:
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[name] = value
    return value


def missing_credentials(settings: ModelSettings, environ: Mapping[str, str]) -> str | None:
    """Why a model cannot be called (naming the variable or key to set, never a value), or None.
    Stricter than nothing, looser than ``auto``: a model of one's own server (a loopback address,
    or any address but the provider's or preset's public API) may take no key, so it is called;
    ``auto`` still prefers candidates that have one."""
    if has_credentials(settings, environ) or _may_be_keyless(settings):
        return None
    if settings.provider == "bedrock":
        return "no AWS credentials (aws.access_key_id or aws.profile, or AWS_ACCESS_KEY_ID / AWS_PROFILE)"
    if settings.key_variable:  # api_key: env://VAR, with VAR unset or empty
        return f"missing credential: {settings.key_variable} is unset or empty (api_key: env://{settings.key_variable})"
    key_env = (builtin_presets().get(settings.preset) or {}).get("api_key_env") if settings.preset else None
    if key_env:
        return f"missing credential: {key_env} is not set and the model has no api_key"
    return "missing credential: no api_key (an env:// reference whose variable is unset gives none)"


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


def _own_prices(settings: ModelSettings) -> Prices | None:
    return settings.prices


def _price_rank(prices: Prices | None) -> tuple[int, float]:
    if prices is None:
        return (1, 0.0)  # unknown prices go after every priced candidate
    return (0, prices.input + prices.output)


def _may_be_keyless(settings: ModelSettings) -> bool:
    """A server of one's own may take no key: one on a loopback address, or at any address other
    than the provider's or preset's public API. Azure always needs a key or a credential header."""
    url = settings.base_url
    if url is None or settings.provider == "azure":
        return False
    if _is_local(url):
        return True
    preset = builtin_presets().get(settings.preset) if settings.preset else None
    public = preset.get("base_url") if preset else DEFAULT_BASE_URLS.get(settings.provider)
    return public is None or url.rstrip("/") != str(public).rstrip("/")
