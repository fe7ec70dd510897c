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
from waypost.settings import ModelSettings, Prices, is_loopback

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
            found = {m.name: missing_credentials(m, self._environ) for m in self.models}
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
        if first.provider == "auto":
            out = []
            queue = [*self._auto_candidates(first.settings), *first.settings.fallbacks]
        else:
            out = [first] if missing_credentials(first.settings, self._environ) is None else []
            queue = list(first.settings.fallbacks)
        while queue and len(out) < MAX_CHAIN:
            fallback = queue.pop(0)
            if fallback in seen:
                continue
            seen.add(fallback)
            settings = self._exact[fallback]
            if settings.provider == "auto":
                queue.extend(self._auto_candidates(settings))
            elif missing_credentials(settings, self._environ) is None:
                out.append(Deployment(settings, settings.upstream_model or settings.name))
            queue.extend(settings.fallbacks)
        if not out:
            if first.provider == "auto":
                raise ModelNotFound(
                    f"The model {name!r} has no usable candidate: none of them has credentials configured.",
                    param="model",
                )
            reason = missing_credentials(first.settings, self._environ)
            also = "; none of its fallbacks has credentials either" if first.settings.fallbacks else ""
            raise ModelDisabled(f"The model {name!r} is disabled: {reason}{also}.", param="model")
        return out

    def _auto_candidates(self, auto: ModelSettings) -> list[str]:
        usable = [c for c in auto.candidates if has_credentials(self._exact[c], self._environ)]
        if auto.order == "listed":
            return usable
        # Stable: ties keep list order.
        return sorted(usable, key=lambda c: _price_rank(self.prices(self._exact[c])))


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
