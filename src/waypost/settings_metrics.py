"""The ``metrics`` settings section: Prometheus metrics at ``GET /metrics`` (docs/operations.md,
"Metrics"; every key in docs/configuration.md). ``waypost.settings`` re-exports it: import it
from there."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from waypost.settings_metering import _Strict

# The metrics that take opt-in extra labels, and the labels they may take. Each is a per-caller
# dimension, so each is off by default and bounded by ``max_label_values`` when on.
EXTRA_LABEL_METRICS = ("requests", "tokens", "cost")
ExtraLabel = Literal["user", "token", "tag"]


class MetricsSettings(_Strict):
    enabled: bool = True
    # Scrapes must send ``Authorization: Bearer <token>`` (usually ``env://WAYPOST_METRICS_TOKEN``).
    token: str | None = Field(None, min_length=16)
    # Serve /metrics on this port only (not on the gateway's port); each worker listens on it
    # (SO_REUSEPORT), and any of them answers for all.
    port: int | None = Field(None, ge=1, le=65535)
    host: str | None = None  # the separate port's address; default: ``server.host``
    # Several workers: where they keep their metric files (prometheus_client's multiprocess mode).
    # Emptied when the server starts; default: a new temporary directory, removed at exit.
    multiprocess_dir: str | None = None
    # Several workers: how often (seconds) each publishes what it counted for the others' scrapes.
    flush_interval: float = Field(1.0, gt=0, le=60)
    # Opt-in per-caller labels, e.g. ``{requests: [user], cost: [user, tag]}``.
    extra_labels: dict[Literal["requests", "tokens", "cost"], list[ExtraLabel]] = Field(default_factory=dict)
    # Past this many distinct values of an extra label in one process, new ones count as "other".
    max_label_values: int = Field(100, ge=1, le=10_000)
