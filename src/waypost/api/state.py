"""The per-app container of state, built in ``create_app`` and reached through ``app.state``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from waypost.api.drain import Drain
from waypost.metering.audit import AuditWriter
from waypost.metering.pricing import PriceBook
from waypost.metering.tokenizer import Tokenizers
from waypost.observability.access import AccessLog
from waypost.observability.loop_lag import LoopLagProbe
from waypost.observability.metrics import Metrics
from waypost.observability.tracing import Tracing
from waypost.pipeline.auth import Authenticator
from waypost.pipeline.budget_book import BudgetBook
from waypost.pipeline.cache import CacheStage
from waypost.pipeline.metering import MeteringStage
from waypost.pipeline.rate_book import RateLimitBook
from waypost.pipeline.rules import RuleBook
from waypost.pipeline.stage import Pipeline
from waypost.providers.http import HttpClient
from waypost.routing.catalog import ModelCatalog
from waypost.routing.router import Router
from waypost.security.crypto import SecretBox
from waypost.security.jwt_tokens import JwtCodec
from waypost.security.passwords import PasswordHasher
from waypost.security.urlguard import OutboundPolicy
from waypost.settings import Settings
from waypost.store import Store


@dataclass(slots=True)
class Container:
    settings: Settings
    http: HttpClient
    router: Router
    store: Store
    authenticator: Authenticator
    catalog: ModelCatalog
    secrets: SecretBox
    policy: OutboundPolicy
    jwt: JwtCodec
    passwords: PasswordHasher
    access_log: AccessLog
    loop_lag: LoopLagProbe
    metrics: Metrics  # Prometheus metrics (observability/metrics.py); ``enabled`` False when off
    pipeline: Pipeline  # the stages every data-plane request goes through (api/dataplane.py)
    metering: MeteringStage  # the first of them, which the path also calls to price usage
    prices: PriceBook
    audit: AuditWriter  # request rows to the audit log, batched off the hot path (metering/audit.py)
    # The rules (pipeline/rules), held whether or not ``rules.enabled`` puts their stage in the
    # pipeline: /admin/rules manages and tests them either way.
    rules: RuleBook
    # Loaded on first need only: when an upstream reports no usage (metering/usage_count.py).
    tokenizers: Tokenizers = field(default_factory=Tokenizers)
    started_at: int = field(default_factory=lambda: int(time.time()))
    ready: bool = False
    # Why not ready while started (api/schema_gate.py: the database schema is not at head yet).
    not_ready_reason: str | None = None
    # The budgets enforced (pipeline/budget_book.py); None with ``budgets.enabled: false``.
    budgets: BudgetBook | None = None
    # The response cache (pipeline/cache.py); None with ``cache.enabled: false``.
    cache: CacheStage | None = None
    # The rate limits enforced (pipeline/rate_book.py); None with ``rate_limits.enabled: false``.
    rate_limits: RateLimitBook | None = None
    # The stop: readiness off at the signal, data-plane requests cut at the grace period's end.
    drain: Drain = field(default_factory=lambda: Drain(30.0))
    # OpenTelemetry traces and GenAI client metrics (observability/tracing.py); ``enabled`` False when off.
    tracing: Tracing = field(default_factory=Tracing)
