"""Every metric Waypost exports: its name, help text, labels and buckets, in one table.

The recorder (``metrics.py``) builds its prometheus_client objects from these, the docs list
them (docs/operations.md, "Metrics"), and a test checks that every query of the Grafana
dashboard (deploy/grafana/) names one of them. Scrape-time metrics (budgets, the audit spool)
are built from here too, when a scrape asks (``api/metrics.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "histogram", "gauge"]

# Seconds. Answers from language models take seconds to minutes; the gateway's own share
# (overhead) is measured in fractions of a millisecond.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
FLUSH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str  # without the ``_total`` a counter's samples add
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # Several workers: how a gauge's per-worker values combine (prometheus_client's modes).
    mode: Literal["all", "livesum"] = "all"


REQUESTS = MetricSpec(
    "waypost_requests",
    "counter",
    "Data-plane requests, by route template, model entry, provider, HTTP status and client format.",
    ("route", "model", "provider", "status", "client_format"),
)
DURATION = MetricSpec(
    "waypost_request_duration_seconds",
    "histogram",
    "Data-plane request latency, from arrival to the answer's last byte.",
    ("route", "model"),
    LATENCY_BUCKETS,
)
TTFT = MetricSpec(
    "waypost_time_to_first_token_seconds",
    "histogram",
    "Streamed requests: from arrival to the stream's first byte.",
    ("route", "model"),
    TTFT_BUCKETS,
)
OVERHEAD = MetricSpec(
    "waypost_overhead_seconds",
    "histogram",
    "Time spent in the gateway until the answer's first byte, upstream attempts excluded "
    "(also each answer's X-Waypost-Overhead-Ms header).",
    ("route",),
    OVERHEAD_BUCKETS,
)
REQUEST_ERRORS = MetricSpec(
    "waypost_request_errors",
    "counter",
    "Data-plane requests that ended in an error, by the error's class.",
    ("route", "model", "error_class"),
)
ATTEMPTS = MetricSpec(
    "waypost_upstream_attempts",
    "counter",
    "Upstream attempts (first tries, retries and fallbacks).",
    ("model", "provider"),
)
UPSTREAM_ERRORS = MetricSpec(
    "waypost_upstream_errors",
    "counter",
    "Failed upstream attempts, by error class.",
    ("model", "provider", "error_class"),
)
RETRIES = MetricSpec(
    "waypost_upstream_retries",
    "counter",
    "Upstream attempts that retried the same model entry.",
    ("model", "provider"),
)
FALLBACKS = MetricSpec(
    "waypost_upstream_fallbacks",
    "counter",
    "Moves from a failed model entry to its fallback.",
    ("model", "fallback"),
)
TOKENS = MetricSpec(
    "waypost_tokens",
    "counter",
    "Tokens used, by model entry, provider and type (input is the uncached part; output includes reasoning).",
    ("model", "provider", "type"),
)
COST = MetricSpec(
    "waypost_cost_usd",
    "counter",
    "What requests cost, in US dollars, by model entry and provider.",
    ("model", "provider"),
)
GROUP_TOKENS = MetricSpec(
    "waypost_group_tokens",
    "counter",
    "Tokens used, by the caller's group (a request counts in each of its caller's groups; 'none': no group).",
    ("group", "type"),
)
GROUP_COST = MetricSpec(
    "waypost_group_cost_usd",
    "counter",
    "What requests cost, in US dollars, by the caller's group (counted in each of its groups).",
    ("group",),
)
CACHE = MetricSpec(
    "waypost_cache_requests",
    "counter",
    "Response-cache lookups, by result (hit, miss, bypass).",
    ("model", "result"),
)
REJECTIONS = MetricSpec(
    "waypost_rejections",
    "counter",
    "Requests refused by policy, by reason (rate_limit, budget, rule).",
    ("reason", "model"),
)
IN_FLIGHT = MetricSpec(
    "waypost_in_flight_requests", "gauge", "Data-plane requests in progress.", mode="livesum"
)
STREAMS = MetricSpec(
    "waypost_in_flight_streams", "gauge", "Streamed data-plane requests in progress.", mode="livesum"
)
HTTP_REQUESTS = MetricSpec(
    "waypost_http_requests",
    "counter",
    "Requests to every other route (model list, health, control plane), by route template "
    "('unmatched' for paths no route serves), method and status.",
    ("route", "method", "status"),
)
AUDIT_QUEUE = MetricSpec(
    "waypost_audit_queue_depth",
    "gauge",
    "Requests recorded and not yet written to the audit log.",
    mode="livesum",
)
AUDIT_FLUSH = MetricSpec(
    "waypost_audit_flush_seconds",
    "histogram",
    "How long one batch of audit rows took to write to the database.",
    buckets=FLUSH_BUCKETS,
)
AUDIT_REQUESTS = MetricSpec(
    "waypost_audit_requests",
    "counter",
    "Audit-log requests by outcome: written, spooled, replayed, rejected, dropped.",
    ("outcome",),
)
# Computed when a scrape asks, by the process that answers it (api/metrics.py).
DEPLOYMENT_UP = MetricSpec(
    "waypost_deployment_up",
    "gauge",
    "1 when a deployment takes traffic (healthy), 0 otherwise.",
    ("model", "deployment", "provider"),
)
DEPLOYMENT_STATE = MetricSpec(
    "waypost_deployment_state",
    "gauge",
    "1 for a deployment's current state (healthy, cooling_down, ejected, missing_credentials), 0 for the others.",
    ("model", "deployment", "provider", "state"),
)
AUDIT_SPOOL = MetricSpec("waypost_audit_spool_bytes", "gauge", "Bytes of audit rows waiting in the spool.")
BUDGET_LIMIT = MetricSpec(
    "waypost_budget_limit_usd", "gauge", "A budget's limit in US dollars.", ("budget", "scope")
)
BUDGET_REMAINING = MetricSpec(
    "waypost_budget_remaining_usd",
    "gauge",
    "What remains of a budget in its current window, in US dollars (reservations held count as spent).",
    ("budget", "scope"),
)
BUDGET_REMAINING_TOKENS = MetricSpec(
    "waypost_budget_remaining_tokens",
    "gauge",
    "What remains of a budget's token limit in its current window.",
    ("budget", "scope"),
)
BUDGET_RESET = MetricSpec(
    "waypost_budget_reset_seconds",
    "gauge",
    "Seconds until a budget's window next resets (absent for total budgets).",
    ("budget", "scope"),
)

RECORDED = (
    REQUESTS,
    DURATION,
    TTFT,
    OVERHEAD,
    REQUEST_ERRORS,
    ATTEMPTS,
    UPSTREAM_ERRORS,
    RETRIES,
    FALLBACKS,
    TOKENS,
    COST,
    GROUP_TOKENS,
    GROUP_COST,
    CACHE,
    REJECTIONS,
    IN_FLIGHT,
    STREAMS,
    HTTP_REQUESTS,
    AUDIT_QUEUE,
    AUDIT_FLUSH,
    AUDIT_REQUESTS,
)
SCRAPED = (
    DEPLOYMENT_UP,
    DEPLOYMENT_STATE,
    AUDIT_SPOOL,
    BUDGET_LIMIT,
    BUDGET_REMAINING,
    BUDGET_REMAINING_TOKENS,
    BUDGET_RESET,
)
ALL = RECORDED + SCRAPED


def sample_names(spec: MetricSpec) -> tuple[str, ...]:
    """The sample names a metric appears under in the text format."""
    if spec.kind == "counter":
        return (f"{spec.name}_total",)
    if spec.kind == "histogram":
        return tuple(f"{spec.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return (spec.name,)


def exported_names() -> frozenset[str]:
    """Every sample name Waypost may export."""
    return frozenset(name for spec in ALL for name in sample_names(spec))
