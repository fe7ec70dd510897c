"""Settings of routing at scale: a model's deployments (and what they share with models: the
AWS section, URL and header checks), and the ``routing`` section (outlier ejection, the retry
budget). docs/configuration.md, "Deployments"; ``waypost.settings`` re-exports every name: import
them from there."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from waypost.providers.kinds import TokenLimitField
from waypost.settings_metering import _Strict

# How a model with several deployments picks one (docs/configuration.md, "Deployments").
Strategy = Literal["weighted", "least-busy", "lowest-latency", "ordered"]

# A deployment's endpoint: what it inherits from its model only when it keeps the model's provider
# (a deployment on another provider would otherwise get an endpoint of the wrong kind).
ENDPOINT_FIELDS = (
    "preset",
    "base_url",
    "api_key",
    "headers",
    "aws",
    "api_version",
    "max_tokens_field",
    "responses_api",
)
# What a deployment says about itself rather than about the model settings it overrides.
OWN_FIELDS = ("name", "weight", "region")


def plain_http_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"^https?://[^/\s?#@]+(/[^\s?#]*)?$", value):
        # The value itself is not repeated: a query may hold a key (the error names the key path).
        raise ValueError("must be an http(s) URL without query, fragment or credentials")
    return value.rstrip("/") if value else value


HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def valid_headers(value: dict[str, str]) -> dict[str, str]:
    """``value`` when every name is a token and no value breaks the line; else ValueError."""
    for key, val in value.items():
        if not HEADER_NAME.fullmatch(key) or "\n" in val or "\r" in val:
            raise ValueError(f"invalid header {key!r}")
    return value


class AwsSettings(_Strict):
    """Bedrock credentials and endpoint. Unset keys fall back to the standard AWS chain
    (environment, shared config/credentials files with ``profile``, container and instance roles)."""

    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    endpoint_url: str | None = None  # a VPC endpoint, or a test server

    @field_validator("endpoint_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return plain_http_url(value)


class DeploymentSettings(_Strict):
    """One place a model runs (a key, a region, a provider): each field set replaces the model's."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$")
    provider: str | None = Field(None, min_length=1)  # a type or a preset, as a model's
    preset: str | None = None  # set when ``provider`` named a preset (then provider is "openai")
    base_url: str | None = None
    api_key: str | None = None
    upstream_model: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # added to the model's own
    aws: AwsSettings | None = None  # bedrock: another region or account
    api_version: str | None = None
    max_tokens_field: TokenLimitField | None = None
    responses_api: bool | None = None  # OpenAI dialect: whether it serves /responses
    weight: int = Field(1, ge=1, le=1000)  # ``weighted``: its share of the requests
    region: str | None = Field(None, max_length=64)  # shown by /health; routing ignores it

    @field_validator("base_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        return plain_http_url(value)

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return valid_headers(value)

    def overrides(self, provider: str, preset: str | None, headers: dict[str, str]) -> dict[str, Any]:
        """The fields this deployment replaces in a model of ``provider`` (``preset``) that sends
        ``headers``: its own, plus, on another provider or preset, the model's endpoint cleared."""
        fields = {k: getattr(self, k) for k in self.model_fields_set if k not in OWN_FIELDS}
        if self.provider is not None and (self.provider, self.preset) != (provider, preset):
            # Another provider or preset: nothing of the model's endpoint (its key above all) applies.
            return {**{k: None for k in ENDPOINT_FIELDS}, "headers": {}, **fields}
        fields["headers"] = {**headers, **self.headers}
        return fields


class EjectionSettings(_Strict):
    """Outlier ejection (docs/operations.md, "Deployment health"): a deployment that fails
    ``consecutive_failures`` times in a row (connect errors, timeouts, 5xx) is taken out of its
    model's rotation for ``base_seconds`` times its number of ejections, at most ``max_seconds``."""

    enabled: bool = True
    consecutive_failures: int = Field(5, ge=1, le=1000)
    base_seconds: float = Field(30.0, gt=0, le=3600)
    max_seconds: float = Field(300.0, gt=0, le=86400)
    # Never more than this share of a model's deployments out at once (a model of one is never ejected).
    max_ejected_share: float = Field(0.5, ge=0, le=1)
    # A 429 with Retry-After takes the deployment out for that long, at most this many seconds.
    max_cooldown_seconds: float = Field(300.0, ge=0, le=86400)
    # With ``state.backend: redis``: how often (seconds) each process reads the shared state.
    refresh_seconds: float = Field(1.0, gt=0, le=60)


class RetryBudgetSettings(_Strict):
    """Retries (another attempt after a failed one, on the same deployment or another) in flight
    at once in one process: at most ``ratio`` of the requests in flight there, or ``min_retries``
    when that is more, so an outage is not multiplied by the retries it causes."""

    ratio: float = Field(0.2, ge=0, le=10)
    min_retries: int = Field(3, ge=0, le=10000)


class RoutingSettings(_Strict):
    """How requests find a model (docs/configuration.md, "routing")."""

    # The model of chat, messages, legacy completion, /classify and /plan requests that name none.
    default_model: str | None = Field(None, min_length=1)
    ejection: EjectionSettings = Field(default_factory=EjectionSettings)
    retry_budget: RetryBudgetSettings = Field(default_factory=RetryBudgetSettings)
