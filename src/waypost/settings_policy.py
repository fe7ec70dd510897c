"""The settings sections of policy: ``rules``, ``rate_limits``, ``cache``, ``header_rules`` and
``transformations`` (docs/policy.md, docs/configuration.md). ``waypost.settings`` re-exports them:
import them from there."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from waypost.settings_metering import _Strict
from waypost.settings_rules import RuleSpec

__all__ = ["_Strict"]


class CacheSettings(_Strict):
    """The response cache (docs/policy.md, "The response cache"): exact-match answers of chat
    requests, per tenant, in memory or Redis (``state.backend``). Off by default."""

    enabled: bool = False
    # Whose answers a caller may receive: its own user's (``user``), or those of callers with the
    # very same groups (``group``; a user in no group keeps a tenant of its own).
    tenant: Literal["user", "group"] = "user"
    ttl: float = Field(3600.0, gt=0)  # seconds an answer is served
    # Per model (the name asked for, or the model entry it resolves to): its own TTL; 0: never cached.
    model_ttl: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    max_entry_bytes: int = Field(256 * 1024, ge=1024)  # a bigger answer is not stored
    max_total_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024)  # least recently used answers go first
    # Also cache requests that sample (temperature above 0, or unset: providers default to 1).
    sampled: bool = False
    # Identical requests arriving while the first is answered wait for its answer (in one process).
    coalesce: bool = True
    coalesce_timeout: float = Field(60.0, gt=0)  # seconds a waiting request waits before calling itself


RATE_PERIODS: dict[str, int] = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
RATE_LIMIT_SCOPES = ("token", "user", "group", "model", "default")
RATE_LIMIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]*$"


def _rate_period(value: Any) -> str | int:
    """``second``, ``minute``, ``hour``, ``day``, or a number of seconds up to a week."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, str) and value in RATE_PERIODS:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7 * 86400:
        return value
    raise ValueError("should be second, minute, hour, day or a number of seconds (1 to 604800)")


class RateLimitWindow(_Strict):
    """One rolling window of a rate limit: at most this many requests and tokens in any span of
    ``per`` (docs/policy.md, "Rate limits"). Tokens are input and output together; ``input_tokens``
    and ``output_tokens`` bound each apart (Anthropic's ITPM and OTPM)."""

    per: Annotated[str | int, BeforeValidator(_rate_period)] = "minute"
    requests: int | None = Field(None, ge=1)
    tokens: int | None = Field(None, ge=1)
    input_tokens: int | None = Field(None, ge=1)
    output_tokens: int | None = Field(None, ge=1)

    @property
    def seconds(self) -> int:
        return RATE_PERIODS[self.per] if isinstance(self.per, str) else self.per

    @model_validator(mode="after")
    def _bounds_something(self) -> RateLimitWindow:
        if (self.requests, self.tokens, self.input_tokens, self.output_tokens) == (None,) * 4:
            raise ValueError("a window needs requests, tokens, input_tokens or output_tokens")
        return self


class RateLimitDefinition(_Strict):
    """A rate limit declared in the config file (read-only through the API). ``target``: a user's
    e-mail or id, a group's name, a token's id or a model's name; none for ``default``, which
    applies to each user that has no ``user`` limit of its own, counted per user."""

    name: str = Field(min_length=1, max_length=128, pattern=RATE_LIMIT_NAME)
    scope: Literal["token", "user", "group", "model", "default"]
    target: str | int | None = None
    windows: list[RateLimitWindow] = Field(default_factory=list, max_length=8)
    concurrency: int | None = Field(None, ge=1)  # requests in flight at once
    description: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _coherent(self) -> RateLimitDefinition:
        if not self.windows and self.concurrency is None:
            raise ValueError("a rate limit needs windows, concurrency or both")
        periods = [w.seconds for w in self.windows]
        if len(set(periods)) != len(periods):
            raise ValueError("each window needs a period of its own (two windows have the same 'per')")
        if self.scope == "default" and self.target not in (None, ""):
            raise ValueError("a default limit applies to every user and takes no target")
        if self.scope != "default" and (self.target is None or str(self.target).strip() == ""):
            raise ValueError(f"a {self.scope} limit needs a target")
        if self.scope == "token" and not str(self.target).strip().isdigit():
            raise ValueError("target: a token limit names the token's numeric id")
        return self


class RateLimitSettings(_Strict):
    """Rate limits (docs/policy.md, "Rate limits"): requests and tokens per window and requests in
    flight, on a token, user, group, model or everyone. Limits are declared here (``limits``) or
    in the database (``/admin/limits``, ``waypost limits``); the counters live in ``state``."""

    enabled: bool = True  # false: no rate-limit stage (limits can still be managed)
    limits: list[RateLimitDefinition] = Field(default_factory=list)
    # A request reserves its prompt estimate plus output up to min(max_tokens, this) tokens;
    # the real usage replaces the reservation when the request ends.
    reservation_cap_tokens: int = Field(4096, ge=1)
    cache_ttl: float = Field(5.0, gt=0)  # seconds: limits changed through another worker apply
    # Redis configured but not answering: ``local`` counts in each process (limits per process
    # meanwhile), ``fail_closed`` answers 503.
    when_state_unavailable: Literal["local", "fail_closed"] = "local"
    breaker_seconds: float = Field(5.0, gt=0, le=300)  # after a Redis failure, skip Redis this long
    # A concurrency slot never released (its worker died) frees itself after this many seconds.
    slot_ttl: float = Field(1800.0, ge=10)
    headers: bool = True  # x-ratelimit-* / anthropic-ratelimit-* on answers a limit applies to

    @model_validator(mode="after")
    def _unique_names(self) -> RateLimitSettings:
        names = [limit.name for limit in self.limits]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"limits: names must be unique ({', '.join(dupes)} appear twice)")
        return self


class RulesSettings(_Strict):
    """The rules engine (docs/policy.md, "Rules"). Rules live in the database (``/admin/rules``,
    ``waypost rules``); those declared here are read-only through the API."""

    enabled: bool = True  # false: no rule is evaluated (the stage is not in the pipeline)
    # Seconds within which a worker applies rules changed through another worker (the worker
    # that made the change applies it at once).
    cache_ttl: float = Field(5.0, gt=0, le=3600)
    rules: list[RuleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> RulesSettings:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{i}]: a rule named {rule.name!r} is declared twice")
            seen.add(rule.name)
        return self
