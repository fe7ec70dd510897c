"""Typed settings: raw models validated from YAML + ``WAYPOST_*`` environment overrides.

Loading is two-stage: the YAML document is merged with environment overrides and every
``env://VAR`` / ``env://VAR,default`` value is resolved; then the result is validated by the
pydantic models below (``extra="forbid"``). Any problem raises ``ConfigError`` whose message
names the offending key, e.g. ``models[1].retry.max_retries: Input should be a valid integer``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# Provider types with code behind them (any other ``provider`` value must name a preset) and
# their default base URLs come from the one table of provider types.
from waypost.providers.kinds import DEFAULT_BASE_URLS, PROVIDER_TYPES, TokenLimitField
from waypost.providers.presets import builtin_presets

# Loading lives in its own module; the names importers use stay importable from here.
from waypost.settings_loading import ENV_PREFIX as ENV_PREFIX
from waypost.settings_loading import SECRETS_FILE_NAME as SECRETS_FILE_NAME
from waypost.settings_loading import ConfigError as ConfigError
from waypost.settings_loading import (
    anchor_relative_files,
    blame_environment,
    env_override_paths,
    format_validation_error,
    read_document,
)
from waypost.settings_loading import apply_env_overrides as apply_env_overrides
from waypost.settings_loading import resolve_env_refs as resolve_env_refs
from waypost.settings_metering import AuditSettings as AuditSettings
from waypost.settings_metering import BudgetSettings as BudgetSettings
from waypost.settings_metering import MeteringSettings as MeteringSettings
from waypost.settings_metering import Prices as Prices
from waypost.settings_metering import PriceTier as PriceTier
from waypost.settings_metering import StateSettings as StateSettings
from waypost.settings_metering import _Strict
from waypost.settings_metrics import MetricsSettings as MetricsSettings
from waypost.settings_policy import CacheSettings as CacheSettings
from waypost.settings_policy import RateLimitDefinition as RateLimitDefinition
from waypost.settings_policy import RateLimitSettings as RateLimitSettings
from waypost.settings_policy import RateLimitWindow as RateLimitWindow
from waypost.settings_policy import RulesSettings as RulesSettings
from waypost.settings_responses import ResponsesSettings as ResponsesSettings
from waypost.settings_routing import AwsSettings as AwsSettings
from waypost.settings_routing import DeploymentSettings, valid_headers
from waypost.settings_routing import EjectionSettings as EjectionSettings
from waypost.settings_routing import RetryBudgetSettings as RetryBudgetSettings
from waypost.settings_routing import RoutingSettings as RoutingSettings
from waypost.settings_routing import Strategy as Strategy
from waypost.settings_routing import plain_http_url as _plain_http_url
from waypost.settings_rules import RuleSpec as RuleSpec
from waypost.settings_server import DatabaseSettings as DatabaseSettings
from waypost.settings_server import LoggingSettings as LoggingSettings
from waypost.settings_server import ServerSettings as ServerSettings
from waypost.settings_tracing import TracingSettings as TracingSettings
from waypost.settings_transforms import CONTENT_MEMBERS as CONTENT_MEMBERS
from waypost.settings_transforms import GATEWAY_MEMBERS as GATEWAY_MEMBERS
from waypost.settings_transforms import HeaderRuleSettings as HeaderRuleSettings
from waypost.settings_transforms import JsonPathAdd as JsonPathAdd
from waypost.settings_transforms import JsonPathDrop as JsonPathDrop
from waypost.settings_transforms import RegexReplace as RegexReplace
from waypost.settings_transforms import TransformSettings as TransformSettings
from waypost.settings_transforms import protected_header as protected_header


class Timeouts(_Strict):
    """Seconds. ``first_byte`` bounds the wait for the upstream's response headers,
    ``idle`` the silence between two stream chunks, ``total`` the whole upstream call."""

    connect: float = Field(10.0, gt=0)
    first_byte: float = Field(300.0, gt=0)
    idle: float = Field(60.0, gt=0)
    total: float = Field(900.0, gt=0)


class RetryPolicy(_Strict):
    max_retries: int = Field(2, ge=0, le=10)
    status_codes: list[int] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504, 529])
    initial_delay: float = Field(0.5, ge=0)
    backoff_factor: float = Field(2.0, ge=1)
    max_delay: float = Field(8.0, ge=0)
    respect_retry_after: bool = True


class MockSettings(_Strict):
    """Behaviour of the built-in ``mock`` provider (deterministic, for demos and tests)."""

    reply: str | None = None  # fixed reply; default echoes the last user message
    chunks: int | None = Field(None, ge=1)  # stream the reply in this many deltas (default: one per word)
    latency_ms: float = Field(0.0, ge=0)
    chunk_delay_ms: float = Field(0.0, ge=0)
    tool_arguments: dict[str, Any] | None = None  # arguments used when the mock calls a tool


class PresetSettings(_Strict):
    """An OpenAI-compatible provider described as data (see providers/presets.yaml)."""

    base_url: str
    api_key_env: str | None = None
    default_model: str | None = None
    features: list[str] = Field(default_factory=list)
    max_tokens_field: TokenLimitField | None = None  # see docs/providers/openai-compatible.md
    responses_api: bool | None = None  # its server takes /responses (docs/responses.md)
    prices: dict[str, Prices] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        return _plain_http_url(value) or value


class ModelSettings(_Strict):
    name: str = Field(min_length=1)
    provider: str = Field(min_length=1)  # a type in PROVIDER_TYPES or a preset name
    preset: str | None = None  # set when ``provider`` named a preset (then provider is "openai")
    base_url: str | None = None
    api_key: str | None = None
    upstream_model: str | None = None
    match: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    verify_tls: bool = True
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    fallbacks: list[str] = Field(default_factory=list)
    default_max_tokens: int = Field(4096, ge=1)
    # The model's own maximum output (tokens), when known: a request asking for more is refused.
    max_output_tokens: int | None = Field(None, ge=1)
    # OpenAI dialect: the field that carries the token limit; None: the provider's (kinds.py).
    max_tokens_field: TokenLimitField | None = None
    responses_api: bool | None = None  # OpenAI dialect: serves /responses (None: api.openai.com only)
    mock: MockSettings = Field(default_factory=MockSettings)
    aws: AwsSettings | None = None  # bedrock
    api_version: str | None = None  # azure: the api-version query value; gemini: the path version
    prices: Prices | None = None
    candidates: list[str] = Field(default_factory=list)  # auto: the models to choose from
    order: Literal["cheapest", "listed"] = "cheapest"  # auto: how candidates are ordered
    public: bool = False  # usable by every caller; otherwise only by assigned users and groups
    # The model's own header rules and transformations, after the global ones (docs/policy.md).
    header_rules: HeaderRuleSettings | None = None
    transformations: TransformSettings = Field(default_factory=TransformSettings)
    # Several places the model runs, each overriding the fields it sets (docs/configuration.md,
    # "Deployments"); empty: the model's own fields are its one deployment.
    deployments: list[DeploymentSettings] = Field(default_factory=list, max_length=64)
    strategy: Strategy = "weighted"  # how a request picks among the deployments
    # The variable of an ``api_key: env://VAR`` that came out empty (set by ``load_settings``),
    # so a model disabled for want of a key names the variable to set.
    _key_variable: str | None = PrivateAttr(default=None)

    @property
    def key_variable(self) -> str | None:
        return self._key_variable

    @field_validator("match")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    @field_validator("base_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return _plain_http_url(value)

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return valid_headers(value)

    @model_validator(mode="after")
    def _default_within_maximum(self) -> ModelSettings:
        # The default fills requests that name no max_tokens, so it may not exceed the maximum.
        ceiling = self.max_output_tokens
        if ceiling is not None and self.default_max_tokens > ceiling:
            if "default_max_tokens" in self.model_fields_set:
                raise ValueError(
                    f"default_max_tokens ({self.default_max_tokens}) is above max_output_tokens ({ceiling})"
                )
            self.default_max_tokens = ceiling
        return self

    def deployment_labels(self) -> list[str]:
        """What /health, metrics and the shared ejection state call each deployment: its name, or
        its place in the list."""
        return [d.name or str(i) for i, d in enumerate(self.deployments)]

    @property
    def target_model(self) -> str:
        return self.upstream_model or self.name

    def resolved_base_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider, "")


class PasswordHashing(_Strict):
    """Argon2id parameters (RFC 9106's second recommended option by default)."""

    time_cost: int = Field(3, ge=1, le=20)
    memory_kib: int = Field(65536, ge=8)
    parallelism: int = Field(4, ge=1, le=16)


class OidcProviderSettings(_Strict):
    """One OpenID Connect identity provider for single sign-on (authorization code + PKCE)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    display_name: str | None = None
    issuer: str  # discovery: {issuer}/.well-known/openid-configuration
    client_id: str = Field(min_length=1)
    client_secret: str | None = None  # confidential clients; public clients rely on PKCE alone
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    redirect_uri: str | None = (
        None  # default: {server.public_url or the request's origin}/auth/oidc/{name}/callback
    )
    auto_create_users: bool = True
    default_role: Literal["user", "gateway"] = "user"
    allowed_domains: list[str] = Field(default_factory=list)  # e-mail domains; empty: any
    email_claim: str = "email"

    @field_validator("issuer")
    @classmethod
    def _valid_issuer(cls, value: str) -> str:
        return _plain_http_url(value) or value


class AuthSettings(_Strict):
    """Who may call. Callers use API tokens (``Authorization: Bearer``, ``x-api-key`` or
    ``api-key``); people log in for a short-lived JWT. ``open`` (loopback only) lets calls with no
    token through as the bootstrap admin."""

    open: bool = False
    # HMAC keys shorter than the hash are weak. Unset (loopback only): a random one is generated on
    # first start and kept in ``security.secrets_file``.
    jwt_secret: str | None = Field(None, min_length=32)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_ttl: int = Field(900, ge=30, le=86400)  # seconds
    refresh_token_ttl: int = Field(30 * 86400, ge=300)
    cache_ttl: float = Field(
        10.0, ge=0, le=3600
    )  # how long a token, a user's access, the model list are cached
    admin_email: str = "admin@localhost"
    admin_password: str | None = None  # first start only; usually $WAYPOST_ADMIN_PASSWORD
    password_hashing: PasswordHashing = Field(default_factory=PasswordHashing)
    oidc: list[OidcProviderSettings] = Field(default_factory=list)


class SecuritySettings(_Strict):
    """Secret encryption and the outbound URL guard."""

    # Fernet keys (``waypost secrets generate-key``). The first encrypts; the others still decrypt,
    # so a key is rotated by putting the new one first and running ``waypost secrets rotate``.
    # Empty (loopback only): a random key is generated on first start and kept in ``secrets_file``.
    encryption_keys: list[str] = Field(default_factory=list)
    # Where generated secrets are kept (mode 0600). Unset: beside the SQLite database, otherwise
    # beside the config file (the current directory without one).
    secrets_file: str | None = None
    allow_private_targets: bool = False  # allow loopback/private/link-local upstreams (never metadata)
    allowed_base_urls: list[str] = Field(default_factory=list)  # glob patterns; empty: any public URL
    # Body fields that would steer a downstream proxy (api_base, api_key, extra_body, *_config...):
    # dropped (named in X-Waypost-Dropped) or refused with a 400. See docs/configuration.md.
    steering_fields: Literal["drop", "refuse"] = "drop"

    @field_validator("encryption_keys")
    @classmethod
    def _fernet_keys(cls, value: list[str]) -> list[str]:
        import base64
        import binascii

        for i, key in enumerate(value):
            try:
                raw = base64.urlsafe_b64decode(key.encode())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"[{i}] is not a Fernet key (32 url-safe base64-encoded bytes)")
        return value


class LimitsSettings(_Strict):
    """Upper bounds on request fields, so every request has a bounded worst case. A request above
    one is refused with a 400 naming the field (docs/configuration.md, "Request limits")."""

    max_output_tokens: int = Field(131072, ge=1)  # max_tokens & co.; a model's own maximum may be lower
    max_choices: int = Field(128, ge=1)  # n (x best_of x prompts on legacy completions)
    max_messages: int = Field(100_000, ge=1)
    max_tools: int = Field(1024, ge=1)
    max_stop_sequences: int = Field(64, ge=1)
    max_embedding_inputs: int = Field(2048, ge=1)
    max_embedding_dimensions: int = Field(8192, ge=1)


class Settings(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    metering: MeteringSettings = Field(default_factory=MeteringSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    header_rules: HeaderRuleSettings = Field(default_factory=HeaderRuleSettings)
    transformations: TransformSettings = Field(default_factory=TransformSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    presets: dict[str, PresetSettings] = Field(default_factory=dict)
    models: list[ModelSettings] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _apply_presets(cls, data: Any, info: ValidationInfo) -> Any:
        """A model whose provider names a preset becomes an ``openai`` model with the preset's
        defaults; the key comes from the preset's environment variable unless set."""
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            return data
        environ = (info.context or {}).get("environ", os.environ)
        user = data.get("presets")
        presets: dict[str, Any] = {**builtin_presets(), **(user if isinstance(user, dict) else {})}
        models = []
        for entry in data["models"]:
            provider = entry.get("provider") if isinstance(entry, dict) else None
            if (
                isinstance(provider, str)
                and provider not in PROVIDER_TYPES
                and isinstance(presets.get(provider), dict)
            ):
                entry = _with_preset(entry, provider, presets[provider], environ)
            if isinstance(entry, dict) and isinstance(entry.get("deployments"), list):
                deployments = [_deployment_preset(d, presets, environ) for d in entry["deployments"]]
                entry = {**entry, "deployments": deployments}
            models.append(entry)
        return {**data, "models": models}

    @model_validator(mode="before")
    @classmethod
    def _grace_moved(cls, data: Any) -> Any:
        """``audit.shutdown_grace`` (deprecated) sets ``server.shutdown_grace`` when that is unset."""
        if not isinstance(data, dict):
            return data
        audit, server = data.get("audit"), data.get("server")
        grace = audit.get("shutdown_grace") if isinstance(audit, dict) else None
        if not isinstance(grace, (int, float)) or not 0 <= grace <= 3600:
            return data  # absent; or invalid, which its own key reports
        server = server if isinstance(server, dict) else {}
        if "shutdown_grace" in server:
            return data  # the new key wins; the start-up warning names the old one
        return {**data, "server": {**server, "shutdown_grace": grace}}

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        problems = cross_check_problems(
            self.model_dump(include={"server", "auth", "security", "presets", "models"})
        )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def loopback_only(self) -> bool:
        """Bound to loopback: development defaults (open mode, default secrets) are allowed."""
        return is_loopback(self.server.host)

    @property
    def open_mode(self) -> bool:
        return self.auth.open


def _with_preset(
    entry: dict[str, Any], name: str, preset: dict[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    out = _preset_endpoint(entry, name, preset, environ)
    if out.get("upstream_model") is None and out.get("match") is None and out.get("name") == name:
        out["upstream_model"] = preset.get("default_model")
    target = out.get("upstream_model") or out.get("name")
    prices = preset.get("prices") or {}
    if out.get("prices") is None and isinstance(prices, dict) and target in prices:
        out["prices"] = prices[target]
    return out


def _deployment_preset(entry: Any, presets: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """A deployment whose provider names a preset: an ``openai`` one with the preset's endpoint."""
    name = entry.get("provider") if isinstance(entry, dict) else None
    preset = presets.get(name) if isinstance(name, str) and name not in PROVIDER_TYPES else None
    if not isinstance(preset, dict) or not isinstance(name, str):
        return entry
    return _preset_endpoint(entry, name, preset, environ)


def _preset_endpoint(
    entry: dict[str, Any], name: str, preset: dict[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """``entry`` (a model or a deployment) as an ``openai`` one with the preset's endpoint."""
    out = {**entry, "provider": "openai", "preset": name}
    out.setdefault("base_url", preset.get("base_url"))
    key_env = preset.get("api_key_env")
    if out.get("api_key") is None and key_env and environ.get(key_env):
        out["api_key"] = environ[key_env]
    if preset.get("headers"):
        out["headers"] = {**preset["headers"], **(out.get("headers") or {})}
    defaults = {k: preset[k] for k in ("max_tokens_field", "responses_api") if preset.get(k) is not None}
    return {**defaults, **out}  # the entry's own values first


def cross_check_problems(doc: Mapping[str, Any]) -> list[str]:
    """Every problem between settings (model names, providers, candidates, fallbacks, what is
    required off loopback), each naming its key. Works on the plain document, so that a file
    with other errors still gets these reported in the same run."""

    def section(name: str) -> Mapping[str, Any]:
        value = doc.get(name)
        return value if isinstance(value, Mapping) else {}

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    problems: list[str] = []
    presets = section("presets")
    known_providers = {*PROVIDER_TYPES, *builtin_presets(), *presets}
    entries = [
        m if isinstance(m, Mapping) else {}
        for m in doc.get("models") or []
        if isinstance(doc.get("models"), list)
    ]
    names: dict[str, int] = {}
    providers: dict[str, str] = {}
    for i, model in enumerate(entries):
        name, provider = text(model.get("name")), text(model.get("provider"))
        if name in names:
            problems.append(f"models[{i}].name: duplicate model name {name!r}")
        elif name:
            names[name], providers[name] = i, provider
        if provider and provider not in known_providers:
            known = ", ".join([*PROVIDER_TYPES, *sorted({*builtin_presets(), *presets})])
            problems.append(f"models[{i}].provider: unknown provider {provider!r}; known: {known}")
        if provider == "azure" and not model.get("base_url"):
            problems.append(
                f"models[{i}].base_url: azure needs the resource URL (https://NAME.openai.azure.com)"
            )
        if provider == "auto" and not model.get("candidates"):
            problems.append(f"models[{i}].candidates: an auto model needs the models to choose from")
        deployments = model.get("deployments")
        labels: set[str] = set()
        for j, dep in enumerate(deployments if isinstance(deployments, list) else []):
            dep = dep if isinstance(dep, Mapping) else {}
            where, own, label = (
                f"models[{i}].deployments[{j}]",
                text(dep.get("provider")),
                dep.get("name") or str(j),
            )
            if label in labels:
                problems.append(f"{where}.name: {label!r} names another deployment of the model")
            labels.add(label)
            if provider == "auto" or own == "auto":
                problems.append(f"{where}: an auto model picks among models, it has no deployments")
            elif own and own not in known_providers:
                problems.append(f"{where}.provider: unknown provider {own!r}")
            elif (own or provider) == "azure" and not (
                dep.get("base_url") or (not own and model.get("base_url"))
            ):
                problems.append(f"{where}.base_url: azure needs the resource URL")
    for i, model in enumerate(entries):
        candidates, fallbacks = model.get("candidates") or [], model.get("fallbacks") or []
        for j, candidate in enumerate(candidates if isinstance(candidates, list) else []):
            if candidate not in names or providers.get(candidate) == "auto":
                problems.append(f"models[{i}].candidates[{j}]: {candidate!r} is not a non-auto model")
        for j, fallback in enumerate(fallbacks if isinstance(fallbacks, list) else []):
            if fallback not in names:
                problems.append(f"models[{i}].fallbacks[{j}]: unknown model {fallback!r}")
            elif fallback == model.get("name"):
                problems.append(f"models[{i}].fallbacks[{j}]: a model cannot fall back to itself")
    host = text(section("server").get("host")) or ServerSettings.model_fields["host"].default
    if not is_loopback(host):
        where = f"server.host is {host!r}, not a loopback address"
        auth, security = section("auth"), section("security")
        if auth.get("open") is True:
            problems.append(f"auth.open: an open gateway is only allowed on loopback ({where})")
        if not auth.get("jwt_secret"):
            problems.append(f"auth.jwt_secret: a secret is required ({where})")
        if not security.get("encryption_keys"):
            problems.append(f"security.encryption_keys: a key is required ({where})")
    return problems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- loading (the document itself is assembled in settings_loading) -----------------------------


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load, override, resolve and validate. Raises ``ConfigError`` naming the offending key."""
    environ = os.environ if environ is None else environ
    empty: dict[tuple[str | int, ...], str] = {}
    origins: dict[str, str] = {}  # keys set by the chosen environment section or the local file
    unresolved: dict[str, str] = {}  # env:// references that cannot be resolved, by key
    doc = read_document(path, environ, Settings.model_fields, empty, origins, unresolved)
    try:
        settings = Settings.model_validate(doc, context={"environ": environ})
        lines = list(unresolved.values())
    except ValidationError as exc:
        # Every problem in one run: the checks between settings, which pydantic runs only
        # once every field is valid, are run on the document too.
        lines = format_validation_error(exc).splitlines()
        lines += [line for line in cross_check_problems(doc) if line not in lines]
        # A key whose reference could not be resolved is reported as that, not as its null value.
        lines = [*unresolved.values(), *(ln for ln in lines if ln.split(": ", 1)[0] not in unresolved)]
    if lines:
        overrides = env_override_paths(environ, Settings.model_fields)
        lines, only_environment = blame_environment(lines, overrides, origins)
        raise ConfigError("\n".join(lines), only_environment=only_environment) from None
    for ref_path, var in empty.items():
        if len(ref_path) == 3 and ref_path[0] == "models" and ref_path[2] == "api_key":
            assert isinstance(ref_path[1], int)
            settings.models[ref_path[1]]._key_variable = var
    if path is not None:
        anchor_relative_files(settings, path)
    return settings
