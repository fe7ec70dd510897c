"""Prometheus metrics: what each request did, counted once when it ends, for ``GET /metrics``.

The hot path pays for plain dictionary arithmetic only. ``record(ctx, ...)`` (called by the
data-plane path once the request is over, ``api/dataplane.finish``) adds the request to one row
of this process's tally (``metrics_rows``), plus per-attempt and per-error tallies when it had
retries, fallbacks or an error; ``flush()`` hands those to prometheus_client's metric objects
(their labelled children cached by label tuple), which a scrape reads. A prometheus_client
``inc``/``observe`` costs microseconds each (a lock, and with several workers a write to a
memory-mapped file): a request touches a dozen series, so they are paid once per series and
flush rather than once per request.

* One worker: the app's own registry; a scrape flushes first, so it is exact.
* Several workers (``server.workers`` > 1): prometheus_client's multiprocess mode. The server
  makes the directory before the workers start (``metrics_files``); each worker flushes
  every ``metrics.flush_interval`` seconds, at each scrape it answers and when it stops, and a
  scrape adds up every worker's files. Counters from a worker that has exited stay counted;
  its in-flight gauges go with it.

Labels are bounded: route templates (never raw paths), model entries, providers, statuses,
client formats, error classes and groups. Per-caller labels (user, token, tag) are opt-in per
metric (``metrics.extra_labels``), and past ``metrics.max_label_values`` values of one each new
value counts as "other".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from waypost.core.context import RequestContext
from waypost.observability import metrics_catalog as cat
from waypost.observability.metrics_catalog import MetricSpec
from waypost.observability.metrics_files import MULTIPROC_ENV
from waypost.observability.metrics_rows import Into, RequestRows
from waypost.settings import MetricsSettings

log = logging.getLogger("waypost.metrics")

STATUS_TEXT = tuple(str(s) for s in range(600))
OTHER = "other"
NONE = "none"
# Policy refusals, by the error's code (core/errors.py and the stages' own errors).
REJECTION_CODES = {
    "rate_limit_exceeded": "rate_limit",
    "budget_exceeded": "budget",
    "blocked_by_rule": "rule",
}
NO_GROUP = (NONE,)  # the groups of a caller in none (or of a request with no caller)

Key = tuple[Any, ...]


class Series:
    """One metric's prometheus_client object, its children by label tuple, and what this
    process counted for it since the last flush."""

    __slots__ = ("children", "metric", "pending", "scale", "spec")

    def __init__(self, spec: MetricSpec, metric: Any, scale: float = 1.0) -> None:
        self.spec = spec
        self.metric = metric
        self.scale = scale  # e.g. micro-dollars counted, dollars exported
        self.children: dict[Key, Any] = {}
        self.pending: dict[Key, Any] = {}

    def child(self, key: Key) -> Any:
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self.metric.labels(*key) if key else self.metric
        return child

    def flush(self) -> None:
        pending = self.pending
        if not pending:
            return
        items = list(pending.items())
        pending.clear()  # the same dict: the recorder holds it
        if self.spec.kind == "counter":
            scale = self.scale
            for key, amount in items:
                self.child(key).inc(amount * scale)
            return
        for key, row in items:  # histograms: per-bucket counts, then the sum
            _add_observations(self.child(key), row)


def _add_observations(child: Any, row: Sequence[float]) -> None:
    """Add a tally of observations to a prometheus_client histogram child: ``row`` holds the
    count per bucket (not cumulative; the last bucket is +Inf), then the sum. This is what
    ``observe()`` stores, one observation at a time (tests/observability check that they agree)."""
    buckets = child._buckets
    for i in range(len(buckets)):
        if row[i]:
            buckets[i].inc(row[i])
    child._sum.inc(row[-1])


class Metrics:
    """The app's metrics (one per app, ``container.metrics``). When ``enabled`` is False every
    method does nothing and the data-plane path skips it."""

    def __init__(self, settings: MetricsSettings, workers: int = 1) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        directory = os.environ.get(MULTIPROC_ENV)
        self.multiprocess_dir: str | None = None
        if self.enabled and workers > 1:
            if directory and getattr(values.ValueClass, "_multiprocess", False):
                self.multiprocess_dir = directory
            else:
                log.warning(
                    "metrics: %d workers but no multiprocess directory was set up (%s) before they "
                    "started; each worker's /metrics shows its own requests only",
                    workers,
                    MULTIPROC_ENV,
                )
        # One worker: metrics live in this registry. Several: in the workers' files, which a
        # scrape reads with a fresh MultiProcessCollector (``registry()``).
        self._registry = CollectorRegistry(auto_describe=False)
        # No ``*_created`` series: several workers' files have none, so one worker's output
        # would differ from many's, and they double the series of every labelled counter.
        disable_created_metrics()
        self.in_flight = 0  # data-plane requests in progress in this process
        self.streams = 0  # of them, streamed
        # Set by the app: the model entry a requested name resolves to (None: no such model),
        # and the audit writer's queue length and counts.
        self.resolve_model: Callable[[str], str | None] = lambda name: None
        self.audit_pending: Callable[[], int] = lambda: 0
        self.audit_counts: Callable[[], dict[str, int]] = dict
        self._audit_seen: dict[str, int] = {}
        self._seen: dict[str, set[str]] = {}  # extra label -> values met so far
        extra = settings.extra_labels
        self._extra_requests = tuple(extra.get("requests", ()))
        self._extra_tokens = tuple(extra.get("tokens", ()))
        self._extra_cost = tuple(extra.get("cost", ()))
        # Every extra label any metric takes, in one order: a request's key carries their values.
        self._extra_labels = tuple(
            dict.fromkeys((*self._extra_requests, *self._extra_tokens, *self._extra_cost))
        )
        self._series: list[Series] = []
        s = self._make
        self._requests = s(cat.REQUESTS, self._extra_requests)
        self._duration = s(cat.DURATION)
        self._ttft = s(cat.TTFT)
        self._overhead = s(cat.OVERHEAD)
        self._errors = s(cat.REQUEST_ERRORS)
        self._attempts = s(cat.ATTEMPTS)
        self._upstream_errors = s(cat.UPSTREAM_ERRORS)
        self._retries = s(cat.RETRIES)
        self._fallbacks = s(cat.FALLBACKS)
        self._tokens = s(cat.TOKENS, self._extra_tokens)
        self._cost = s(cat.COST, self._extra_cost, scale=1e-6)
        self._group_tokens = s(cat.GROUP_TOKENS)
        self._group_cost = s(cat.GROUP_COST, scale=1e-6)
        self._cache = s(cat.CACHE)
        self._rejections = s(cat.REJECTIONS)
        self._http = s(cat.HTTP_REQUESTS)
        self._audit_flush = s(cat.AUDIT_FLUSH)
        self._audit_requests = s(cat.AUDIT_REQUESTS)
        where = self._extra_labels.index
        self._rows = RequestRows(
            Into(
                self._requests,
                self._duration,
                self._ttft,
                self._overhead,
                self._tokens,
                self._cost,
                self._group_tokens,
                self._group_cost,
                self._cache,
                self._attempts,
                tuple(map(where, self._extra_requests)),
                tuple(map(where, self._extra_tokens)),
                tuple(map(where, self._extra_cost)),
            )
        )
        self._in_flight_gauge = self._metric(cat.IN_FLIGHT)
        self._streams_gauge = self._metric(cat.STREAMS)
        self._audit_queue_gauge = self._metric(cat.AUDIT_QUEUE)
        self._live_published: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- building ---------------------------------------------------------------------------------

    def _metric(self, spec: MetricSpec, extra: tuple[str, ...] = ()) -> Any:
        labels = spec.labels + extra
        if spec.kind == "counter":
            return Counter(spec.name, spec.help, labels, registry=self._registry)
        if spec.kind == "histogram":
            return Histogram(spec.name, spec.help, labels, registry=self._registry, buckets=spec.buckets)
        return Gauge(spec.name, spec.help, labels, registry=self._registry, multiprocess_mode=spec.mode)

    def _make(self, spec: MetricSpec, extra: tuple[str, ...] = (), scale: float = 1.0) -> dict[Key, Any]:
        """A counter or histogram series; returns its pending tally, which ``record`` adds to."""
        series = Series(spec, self._metric(spec, extra), scale)
        self._series.append(series)
        return series.pending

    @property
    def multiprocess(self) -> bool:
        return self.multiprocess_dir is not None

    # -- the hot path -----------------------------------------------------------------------------

    def record(self, ctx: RequestContext, route: str, now: float) -> None:
        """Count one data-plane request that is over (``now``: when its answer ended). Never raises."""
        try:
            self._record(ctx, route, now)
        except Exception:
            log.exception("metrics: request not counted", extra={"request_id": ctx.request_id})

    def _record(self, ctx: RequestContext, route: str, now: float) -> None:
        self.in_flight -= 1
        if ctx.stream and ctx.req is not None:
            self.streams -= 1
        attempts = ctx.attempts
        served = ctx.served
        if served is not None:
            dep = served.deployment
            model, provider = dep.name, dep.provider
        elif attempts:
            last = attempts[-1]
            model, provider = last.model, last.provider
        else:
            req = ctx.req
            model = (self.resolve_model(req.model) or NONE) if req is not None else NONE
            provider = NONE
        status = ctx.status
        principal = ctx.principal
        key: Key = (
            route,
            model,
            provider,
            STATUS_TEXT[status] if 0 <= status < 600 else OTHER,
            ctx.client_format,
            (principal.groups or NO_GROUP) if principal is not None else NO_GROUP,
            ctx.cache_status,
        )
        if self._extra_labels:
            key += self._extras(ctx, self._extra_labels)
        # The common case, one attempt that served, is counted in the row; anything else
        # (retries, fallbacks, failures) attempt by attempt.
        one = len(attempts) == 1 and attempts[0].error is None and attempts[0].ended is not None
        self._rows.add(key, ctx, now, one)
        if attempts and not one:
            self._count_attempts(ctx)
        err = ctx.error
        if err is not None:
            t = self._errors
            k: Key = (route, model, type(err).__name__)
            t[k] = t.get(k, 0) + 1
            reason = REJECTION_CODES.get(err.code or "")
            if reason is not None and (reason != "rate_limit" or not attempts):
                t = self._rejections
                k = (reason, model)
                t[k] = t.get(k, 0) + 1

    def _count_attempts(self, ctx: RequestContext) -> None:
        attempts_t, errors_t = self._attempts, self._upstream_errors
        previous = None
        for a in ctx.attempts:
            k = (a.model, a.provider)
            attempts_t[k] = attempts_t.get(k, 0) + 1
            error = a.error if a.ended is not None else (a.error or "Cancelled")
            if error is not None:
                e = (a.model, a.provider, error)
                errors_t[e] = errors_t.get(e, 0) + 1
            if previous is not None:
                if previous.model == a.model:
                    self._retries[k] = self._retries.get(k, 0) + 1
                else:
                    f = (previous.model, a.model)
                    self._fallbacks[f] = self._fallbacks.get(f, 0) + 1
            previous = a

    def _extras(self, ctx: RequestContext, names: tuple[str, ...]) -> Key:
        principal = ctx.principal
        out: list[str] = []
        for name in names:
            if name == "user":
                value = (principal.email or str(principal.user_id)) if principal is not None else NONE
            elif name == "token":
                token = principal.token_id if principal is not None else None
                value = str(token) if token is not None else NONE
            else:  # tag: the request's first
                value = ctx.tags[0] if ctx.tags else NONE
            out.append(self._bounded(name, value))
        return tuple(out)

    def _bounded(self, label: str, value: str) -> str:
        seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) >= self.settings.max_label_values:
            return OTHER
        seen.add(value)
        return value

    def http_request(self, route: str, method: str, status: int) -> None:
        """Count a request to a route outside the data plane (``route``: its template)."""
        k = (route, method, STATUS_TEXT[status] if 0 <= status < 600 else OTHER)
        t = self._http
        t[k] = t.get(k, 0) + 1

    def audit_written(self, seconds: float, requests: int) -> None:
        """The audit writer wrote a batch of ``requests`` in ``seconds`` (its ``on_write`` hook)."""
        observe_into(self._audit_flush, (), seconds, cat.FLUSH_BUCKETS)

    # -- publishing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand what this process counted to the metric objects (and, with several workers, to
        its file), and set its gauges."""
        if not self.enabled:
            return
        for outcome, total in self.audit_counts().items():
            delta = total - self._audit_seen.get(outcome, 0)
            if delta:
                self._audit_seen[outcome] = total
                self._audit_requests[(outcome,)] = self._audit_requests.get((outcome,), 0) + delta
        self._rows.spread()
        for series in self._series:
            series.flush()
        live = (self.in_flight, self.streams, self.audit_pending())
        if live != self._live_published:
            self._live_published = live
            self._in_flight_gauge.set(live[0])
            self._streams_gauge.set(live[1])
            self._audit_queue_gauge.set(live[2])

    def registry(self) -> CollectorRegistry:
        """What a scrape reads: this process's registry, or every worker's files."""
        if self.multiprocess_dir is None:
            return self._registry
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return registry

    def start(self) -> None:
        """With several workers, publish every ``flush_interval`` seconds."""
        if self.enabled and self.multiprocess and self._task is None:
            self._task = asyncio.create_task(self._publish(), name="metrics-flush")

    async def _publish(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            try:
                self.flush()
            except Exception:
                log.exception("metrics: flush failed")

    async def stop(self) -> None:
        """Publish the last counts; with several workers, this worker's gauges leave with it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.flush()
        if self.multiprocess_dir is not None:
            with contextlib.suppress(OSError):
                mark_process_dead(os.getpid(), self.multiprocess_dir)


def observe_into(pending: dict[Key, Any], key: Key, value: float, bounds: tuple[float, ...]) -> None:
    """Tally one observation of a histogram with ``bounds`` (+Inf left out) under ``key``."""
    row = pending.get(key)
    if row is None:
        row = pending[key] = [0] * (len(bounds) + 1) + [0.0]
    row[bisect_left(bounds, value)] += 1
    row[-1] += value
