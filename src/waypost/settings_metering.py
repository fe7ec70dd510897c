"""The settings sections of metering: prices, ``metering``, ``audit``, ``state`` and ``budgets``
(docs/configuration.md), and the strict base every settings model shares. ``waypost.settings``
re-exports them: import them from there."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriceTier(_Strict):
    """Prices that replace the base ones when the prompt (all input tokens, cached or not) is
    longer than ``above_input_tokens``; a price left out is the base's own (a cache price that
    neither sets falls back to the tier's input price)."""

    above_input_tokens: int = Field(ge=1)
    input: float | None = Field(None, ge=0)
    output: float | None = Field(None, ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    cache_write_1h: float | None = Field(None, ge=0)


class Prices(_Strict):
    """USD per million tokens (docs/metering.md, "Prices and cost"). Cache reads and writes
    default to the input price when unset; 1-hour cache writes to the (5-minute) write price."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)
    cache_read: float | None = Field(None, ge=0)
    cache_write: float | None = Field(None, ge=0)
    cache_write_1h: float | None = Field(None, ge=0)  # Anthropic's 1-hour cache writes
    tiers: list[PriceTier] = Field(default_factory=list)

    @field_validator("tiers")
    @classmethod
    def _ascending_tiers(cls, tiers: list[PriceTier]) -> list[PriceTier]:
        thresholds = [t.above_input_tokens for t in tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tiers must have distinct above_input_tokens, in ascending order")
        return tiers


class MeteringSettings(_Strict):
    """Usage and cost (docs/metering.md)."""

    # A model with no price anywhere (its own ``prices``, its preset's, the bundled catalogue):
    # ``allow`` serves it at cost 0 (flagged unpriced), ``block`` refuses it with a 400 naming the
    # model, ``default`` prices it at ``default_prices``.
    unpriced: Literal["allow", "block", "default"] = "allow"
    default_prices: Prices | None = None
    # Chargeback: a percentage added to (or, negative, taken off) the cost of every call to a
    # provider kind or preset, e.g. ``{openai: 10, bedrock: -5}``.
    markup_percent: dict[str, float] = Field(default_factory=dict)
    cost_header: bool = True  # X-Waypost-Cost-USD and the ``cost_usd`` field in usage objects
    max_tags: int = Field(10, ge=0, le=100)
    max_tag_length: int = Field(64, ge=1, le=256)

    @field_validator("markup_percent")
    @classmethod
    def _sane_markup(cls, value: dict[str, float]) -> dict[str, float]:
        for provider, pct in value.items():
            if not -100 <= pct <= 1000:
                raise ValueError(f"{provider}: {pct} is outside -100..1000 (percent)")
        return value

    @model_validator(mode="after")
    def _default_needs_prices(self) -> MeteringSettings:
        if self.unpriced == "default" and self.default_prices is None:
            raise ValueError("unpriced: 'default' needs default_prices")
        return self


class AuditSettings(_Strict):
    """The request audit log (docs/metering.md, "Audit log")."""

    enabled: bool = True
    log_bodies: bool = False  # request and response bodies on each row, secrets masked
    mask_patterns: list[str] = Field(default_factory=list)  # more regexes to mask in bodies
    batch_size: int = Field(500, ge=1, le=100_000)  # rows per database write
    flush_interval: float = Field(1.0, gt=0, le=60)  # seconds between writes (at most)
    # Rows the database could not take wait here (JSON lines) until it can; bounded.
    spool_dir: str | None = None  # default: .waypost/spool beside the SQLite file, or ./.waypost/spool
    spool_max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    retention_days: int | None = Field(None, ge=1)  # None: keep every row
    # Deprecated: ``server.shutdown_grace``, which this sets when that is not set.
    shutdown_grace: float | None = Field(None, ge=0, le=3600)

    @field_validator("mask_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"[{i}] {pattern!r} is not a valid regular expression: {exc}") from None
        return value


class StateSettings(_Strict):
    """Where counters shared by workers and replicas live (budgets; limits and the cache later):
    ``memory`` in one process, ``redis`` across workers and replicas."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("waypost:", max_length=64)
    socket_timeout: float = Field(1.0, gt=0, le=60)  # an unreachable Redis fails fast, never hangs


class BudgetSettings(_Strict):
    """How budgets are enforced (docs/metering.md, "Budgets"); the budgets themselves are in the
    database (``/admin/budgets``, ``waypost budgets``)."""

    enabled: bool = True
    # A request reserves its prompt estimate plus output up to min(max_tokens, this) tokens.
    reservation_cap_tokens: int = Field(4096, ge=1)
    status: Literal[402, 429] = 429  # what a request over budget gets (a budget may say otherwise)
    refresh_interval: float = Field(5.0, gt=0)  # seconds: budgets changed by another worker apply
    alert_thresholds: list[Annotated[int, Field(ge=1, le=1000)]] = Field(
        default_factory=lambda: [50, 80, 100]
    )  # percent of a budget's limit
    alert_webhook: str | None = None  # POSTed a JSON alert; checked by the outbound URL guard
    # End a stream with an error event before it spends more than its budget allows (a budget
    # may say otherwise); off, a stream that crosses its budget runs to its end.
    cut_off_streams: bool = False
    # A reservation not settled within this many seconds (its worker died) is dropped.
    reservation_ttl: float = Field(3600.0, gt=0)
    # When the state backend (Redis) does not answer: serve unbudgeted (``allow``, logged) or
    # answer 503 (``refuse``).
    when_state_unavailable: Literal["allow", "refuse"] = "allow"
