"""``GET /metrics``: Prometheus text, on the gateway's port or on ``metrics.port`` alone.

A scrape flushes this process's tallies (``observability/metrics.py``), reads the metrics (this
process's registry, or every worker's files), and adds what is computed when asked: each
deployment's state (routing's snapshot in memory, as /health shows it), each budget's remaining
amount and time to reset (the budget book in memory and its counters: the state backend, never
the database), and the audit spool's size. With ``metrics.token`` set,
a scrape without ``Authorization: Bearer <token>`` gets 401.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, get_args

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from waypost.api.asgi_io import header_map, send_body
from waypost.api.errors import error_parts
from waypost.api.formats import OPENAI
from waypost.api.state import Container
from waypost.core.errors import GatewayError, MethodNotAllowed, Unauthorized
from waypost.metering.audit import AuditWriter
from waypost.observability import metrics_catalog as cat
from waypost.observability.metrics import Metrics
from waypost.observability.metrics_catalog import MetricSpec
from waypost.pipeline.budget_book import MICROS_PER_USD, BudgetBook
from waypost.routing.health import State
from waypost.routing.router import Router
from waypost.settings import Settings

log = logging.getLogger("waypost.metrics")

PATH = "/metrics"
# The classic text format: every Prometheus version reads it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"  # the route label of a path no route serves
DEFAULT_DEPLOYMENT = "default"  # the deployment label of a model of one deployment
DEPLOYMENT_STATES = get_args(State)


def build_metrics(settings: Settings, router: Router, audit: AuditWriter) -> Metrics:
    """The app's metrics, wired to what they read: model names, the audit writer."""
    metrics = Metrics(settings.metrics, settings.server.workers)
    if not metrics.enabled:
        return metrics

    def resolve(name: str) -> str | None:
        try:
            return router.registry.resolve(name).name
        except GatewayError:
            return None

    metrics.resolve_model = resolve
    metrics.audit_pending = lambda: audit.pending
    metrics.audit_counts = lambda: {
        "written": audit.counts.written,
        "spooled": audit.counts.spooled,
        "replayed": audit.counts.replayed,
        "rejected": audit.counts.rejected,
        "dropped": audit.counts.dropped,
    }
    audit.on_write = metrics.audit_written
    return metrics


def start_metrics(container: Container) -> None:
    """At start: the publishing loop of a worker among several."""
    container.metrics.start()


async def scrape(container: Container, authorization: str | None) -> tuple[int, bytes, dict[str, str]]:
    """A scrape's status, body and headers."""
    token = container.settings.metrics.token
    if token is not None and not _authorized(authorization, token):
        status, body, headers = error_parts(
            OPENAI, Unauthorized("The metrics need 'Authorization: Bearer <metrics.token>'.")
        )
        return status, body, {"content-type": "application/json", "www-authenticate": "Bearer", **headers}
    metrics = container.metrics
    metrics.flush()
    families = await scraped_families(container)
    body = generate_latest(metrics.registry()) + generate_latest(_registry_of(families))
    return 200, body, {"content-type": CONTENT_TYPE}


def _authorized(header: str | None, token: str) -> bool:
    if header is None:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


async def scraped_families(container: Container) -> list[GaugeMetricFamily]:
    """The metrics computed when a scrape asks: each deployment's state (routing's snapshot in
    memory), the audit spool's size, and each budget's state."""
    up, states = _family(cat.DEPLOYMENT_UP), _family(cat.DEPLOYMENT_STATE)
    for dep in container.router.deployment_states():
        labels = [dep.model, dep.deployment or DEFAULT_DEPLOYMENT, dep.provider]
        up.add_metric(labels, 1 if dep.state == "healthy" else 0)
        for state in DEPLOYMENT_STATES:
            states.add_metric([*labels, state], 1 if dep.state == state else 0)
    spool = _family(cat.AUDIT_SPOOL)
    spool.add_metric([], await asyncio.to_thread(container.audit.spool_bytes))
    families = [up, states, spool]
    if container.budgets is not None:
        families += await budget_families(container.budgets)
    return families


async def budget_families(book: BudgetBook) -> list[GaugeMetricFamily]:
    """Limit, remaining amount and seconds to reset of every budget, from the book in memory and
    its counters. A state backend that does not answer leaves the remaining amounts out."""
    limit, remaining, tokens, reset = (
        _family(cat.BUDGET_LIMIT),
        _family(cat.BUDGET_REMAINING),
        _family(cat.BUDGET_REMAINING_TOKENS),
        _family(cat.BUDGET_RESET),
    )
    budgets = list(book.budgets.values())
    now = time.time()
    try:
        tallies: list[Any] | None = await book.tallies(budgets, now) if budgets else []
    except Exception as exc:
        log.warning("metrics: budgets' counters not read (%s: %s)", type(exc).__name__, exc)
        tallies = None
    for i, budget in enumerate(budgets):
        rec = budget.record
        labels = [rec.name, rec.scope]
        if rec.limit_micros is not None:
            limit.add_metric(labels, rec.limit_micros / MICROS_PER_USD)
        resets_at = budget.span(now).resets_at
        if resets_at is not None:
            reset.add_metric(labels, max(0.0, resets_at.timestamp() - now))
        if tallies is None:
            continue
        tally = tallies[i]
        if rec.limit_micros is not None:
            left = rec.limit_micros - tally.spent_micros - tally.held_micros
            remaining.add_metric(labels, max(0, left) / MICROS_PER_USD)
        if rec.limit_tokens is not None:
            left_tokens = rec.limit_tokens - tally.spent_tokens - tally.held_tokens
            tokens.add_metric(labels, max(0, left_tokens))
    return [limit, remaining, tokens, reset]


def _family(spec: MetricSpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


class _Families(Collector):
    def __init__(self, families: Iterable[GaugeMetricFamily]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Any]:
        return self._families


def _registry_of(families: Iterable[GaugeMetricFamily]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return registry


# -- serving ----------------------------------------------------------------------------------------


async def handle_metrics(container: Container, scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /metrics`` on the gateway's port (raw ASGI)."""
    if scope["method"] not in ("GET", "HEAD"):
        err = MethodNotAllowed(f"{PATH} takes GET, not {scope['method']}.", allow=("GET",))
        status, body, headers = error_parts(OPENAI, err)
        headers = {"content-type": "application/json", "allow": "GET", **headers}
    else:
        status, body, headers = await scrape(container, header_map(scope).get("authorization"))
    content_type = headers.pop("content-type").encode()
    await send_body(send, status, body, content_type, headers)
    container.metrics.http_request(PATH, scope["method"], status)


async def counted(
    metrics: Metrics,
    app: ASGIApp | Callable[[Scope, Receive, Send], Awaitable[None]],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve a request outside the data plane through ``app`` and count it by its route's
    template (set by the router that served it), or as 'unmatched'."""
    status = 0

    async def sending(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    try:
        await app(scope, receive, sending)
    finally:
        route = getattr(scope.get("route"), "path", None)
        metrics.http_request(route if isinstance(route, str) else UNMATCHED, scope["method"], status or 500)


class MetricsListener:
    """``metrics.port``: /metrics on a port of its own (each worker listens on it; any answers)."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        settings = self._container.settings
        port = settings.metrics.port
        assert port is not None
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host = settings.metrics.host or settings.server.host
        site = web.TCPSite(runner, host, port, reuse_port=settings.server.workers > 1)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def run(self) -> None:
        """Serve until cancelled (the app's stop cancels its background tasks), then close."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        status, body, headers = await scrape(self._container, request.headers.get("Authorization"))
        return web.Response(status=status, body=body, headers=headers)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
