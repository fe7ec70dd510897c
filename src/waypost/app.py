"""``create_app(settings)``: builds the container in the lifespan and mounts routes."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from waypost.api import chat, count_tokens, dataplane, embeddings, meta, responses, tasks
from waypost.api.asgi_io import header_map, request_id, send_body, under_root_path
from waypost.api.completions import COMPLETIONS
from waypost.api.drain import Drain, not_ready_on_signal
from waypost.api.errors import error_parts
from waypost.api.formats import ANTHROPIC, OPENAI
from waypost.api.metrics import PATH as METRICS_PATH
from waypost.api.metrics import MetricsListener, build_metrics, counted, handle_metrics, start_metrics
from waypost.api.middleware import RequestIdMiddleware
from waypost.api.reload import Reloader
from waypost.api.responses import PATHS, RESPONSES
from waypost.api.schema_gate import schema_wait_reason, wait_for_schema
from waypost.api.state import Container
from waypost.api.web_ui import WebUI, is_ui_path
from waypost.core.errors import GatewayError, MethodNotAllowed, NotFound
from waypost.metering.audit import AuditWriter
from waypost.metering.masking import Masker
from waypost.metering.pricing import PriceBook
from waypost.observability.access import AccessLog
from waypost.observability.heap import settle_heap
from waypost.observability.logging import configure_logging
from waypost.observability.loop_lag import LoopLagProbe
from waypost.observability.tracing import Tracing
from waypost.pipeline.auth import Authenticator
from waypost.pipeline.body_log import BodyLogStage
from waypost.pipeline.bounds import RequestBounds
from waypost.pipeline.budget_alerts import BudgetAlerts
from waypost.pipeline.budget_book import BudgetBook
from waypost.pipeline.budgets import BudgetStage
from waypost.pipeline.cache import CacheStage
from waypost.pipeline.metering import MeteringStage
from waypost.pipeline.rate_book import RateLimitBook
from waypost.pipeline.rate_limits import RateLimitStage
from waypost.pipeline.rules import RuleBook, RulesStage
from waypost.pipeline.stage import Pipeline, Stage
from waypost.pipeline.transforms import TransformStage
from waypost.providers.http import HttpClient
from waypost.providers.kinds import calls_upstream
from waypost.providers.outbound import OutboundRules
from waypost.providers.registry import build_providers
from waypost.routing.catalog import ModelCatalog
from waypost.routing.health import DeploymentHealth
from waypost.routing.registry import ModelRegistry, destinations
from waypost.routing.retry_budget import RetryBudget
from waypost.routing.router import Router
from waypost.security.bootstrap import StartupError, start_container
from waypost.security.crypto import SecretBox
from waypost.security.generated_secrets import resolve_secrets
from waypost.security.jwt_tokens import JwtCodec
from waypost.security.passwords import PasswordHasher
from waypost.security.urlguard import OutboundPolicy
from waypost.settings import ConfigError, Settings
from waypost.state import build_counters
from waypost.state.cache_store import build_cache_store
from waypost.state.rate import build_rate_counters
from waypost.store import Store

CONTROL_PREFIXES = ("/admin/", "/auth/", "/me/")  # the control plane (FastAPI, with OpenAPI docs)
CONTROL_PATHS = frozenset({"/admin", "/me"})
DataPlaneHandler = Callable[[Container, Scope, Receive, Send], Awaitable[None]]


class Gateway:
    """The ASGI entry point: data-plane routes (chat, legacy completions, embeddings, token
    counts, tasks) go straight to their raw handlers, the control plane to its FastAPI app, the
    lifespan to ``_lifespan``, and the rest (models list, health) to Starlette."""

    def __init__(self, starlette: Starlette, container: Container) -> None:
        self.starlette = starlette
        self._control: ASGIApp | None = None
        self.state = starlette.state
        self.container = container
        self.tune_gc = False  # set by the server's entry points: see observability/heap.py
        metrics = container.settings.metrics
        # /metrics on the gateway's own port, unless it has a port of its own.
        self._metrics_here = metrics.enabled and metrics.port is None
        # Set for a worker of a multi-worker server (``app_from_env``), whose uvicorn server is
        # not ours: readiness must still turn 503 the moment the stop signal arrives.
        self.not_ready_on_signal = False
        # Set by the server's entry points: SIGHUP re-reads this config file (api/reload.py);
        # None there means the defaults and the environment.
        self.reloader: Reloader | None = None
        self._root_path = container.settings.server.root_path
        self._ui = WebUI()  # /ui: the web UI's files (api/web_ui.py)
        chat_completions = chat.chat_endpoint("chat", OPENAI)
        legacy = chat.chat_endpoint("completions", COMPLETIONS)
        self._chat_routes = {
            "/v1/chat/completions": chat_completions,
            "/chat/completions": chat_completions,
            "/v1/messages": chat.chat_endpoint("messages", ANTHROPIC),
            "/v1/completions": legacy,
            "/completions": legacy,
            **responses.post_routes(container.settings),  # /v1/responses (api/responses.py)
        }
        self._routes: dict[str, DataPlaneHandler] = {
            "/v1/embeddings": embeddings.handle_embeddings,
            "/embeddings": embeddings.handle_embeddings,
            "/v1/messages/count_tokens": count_tokens.handle_count_tokens,
            "/classify": tasks.handle_classify,
            "/plan": tasks.handle_plan,
            "/embed": tasks.handle_embed,
        }

    @property
    def control(self) -> ASGIApp:
        """The control plane (/auth, /me, /admin), built on first use: a replica that only serves
        the data plane never loads FastAPI or the admin routes."""
        if self._control is None:
            from waypost.api.control.app import build_control_app

            self._control = build_control_app(self.container)
            if self.tune_gc:  # FastAPI and the admin routes are as long-lived as the start-up objects
                settle_heap()
        return self._control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._root_path and scope["type"] == "http":
            scope = under_root_path(scope, self._root_path)
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._chat_routes.get(scope["path"])
            if endpoint is not None:
                await dataplane.serve(self.container, endpoint, scope, receive, send)
                return
            handler = self._routes.get(scope["path"])
            if handler is not None:
                await handler(self.container, scope, receive, send)
                return
        path = scope.get("path", "")
        if scope["type"] == "http" and (path in self._chat_routes or path in self._routes):
            await self._wrong_method(scope, send)  # a data-plane route: POST was handled above
            return
        metrics = self.container.metrics
        if scope["type"] == "http" and path == METRICS_PATH and self._metrics_here:
            await handle_metrics(self.container, scope, receive, send)
            return
        if scope["type"] == "http" and (path.startswith(CONTROL_PREFIXES) or path in CONTROL_PATHS):
            if metrics.enabled:
                await counted(metrics, self.control, scope, receive, send)
            else:
                await self.control(scope, receive, send)
            return
        if scope["type"] == "http" and is_ui_path(path):
            await self._ui(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if metrics.enabled and scope["type"] == "http":
            await counted(metrics, self.starlette, scope, receive, send)  # by route template
            return
        await self.starlette(scope, receive, send)

    async def _wrong_method(self, scope: Scope, send: Send) -> None:
        """405 with ``Allow: POST``, the error in the route's own format."""
        path = scope["path"]
        rid = request_id(header_map(scope))
        err = MethodNotAllowed(f"{path} takes POST, not {scope['method']}.", allow=("POST",))
        endpoint = self._chat_routes.get(path)
        fmt = (
            endpoint.fmt if endpoint is not None else ANTHROPIC if path.startswith("/v1/messages") else OPENAI
        )
        status, body, headers = error_parts(fmt, err)
        self.container.access_log.refused(rid, path, err)
        await send_body(
            send, status, body, b"application/json", {"allow": "POST", "x-request-id": rid, **headers}
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start (migrate, bootstrap, load models, background loops) and stop the container. A
        ``StartupError`` is a configuration problem: the server exits with its message alone."""
        container = self.container
        await receive()  # lifespan.startup
        try:
            tasks = await start(container)
        except StartupError as exc:
            await container.store.close()
            await send({"type": "lifespan.startup.failed", "message": f"cannot start: {exc}"})
            return
        except BaseException:
            await container.store.close()
            await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
            raise
        container.ready = container.not_ready_reason is None  # else once the schema is at head
        container.drain.start()
        if self.reloader is not None:
            self.reloader.install()
        if self.not_ready_on_signal:
            not_ready_on_signal(container)
        if self.tune_gc:
            settle_heap()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        container.ready = False
        container.drain.stop()
        if self.reloader is not None:
            self.reloader.uninstall()
        try:
            await stop(container, tasks)
        except BaseException:
            await send({"type": "lifespan.shutdown.failed", "message": traceback.format_exc()})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def build_container(settings: Settings) -> Container:
    policy = OutboundPolicy.from_settings(settings.security)
    check_config_urls(settings, policy)
    http = HttpClient(policy, OutboundRules.from_settings(settings))  # header rules, JSONPath
    providers = build_providers({m.provider for m in settings.models}, http)
    prices = PriceBook.from_settings(settings)
    registry = ModelRegistry(settings.models, prices=prices.prices_of)
    router = Router(
        registry,
        providers,
        RequestBounds.from_settings(settings),
        health=DeploymentHealth.from_settings(settings),  # outlier ejection (docs/operations.md)
        retry_budget=RetryBudget(settings.routing.retry_budget),
    )
    store = Store.from_settings(settings.database)
    audit = AuditWriter.from_settings(settings, store.usage_log)  # started in start(), flushed in stop()
    # The pipeline's stages, in their one order (docs/metering.md, "The pipeline").
    metering = MeteringStage(settings.metering, settings.audit, prices, router, audit=audit)
    stages: list[Stage] = [metering]
    # logging.bodies: first, so that its ``after`` (the log line) runs last, for every request.
    if (body_log := BodyLogStage.from_settings(settings)) is not None:
        stages.insert(0, body_log)
    # Rules right after metering: before transformations, limits and budgets, so that a rerouted
    # request is transformed, limited and budgeted as the model it goes to (docs/policy.md).
    rules = RuleBook(store, settings.rules, build_counters(settings.state))
    if problems := rules.unknown_targets(registry):
        raise ConfigError("\n".join(problems))
    if settings.rules.enabled:
        # A reroute's target meets ``metering.unpriced: block`` too (metering saw only the request's).
        unpriced = metering._refuse_unpriced if settings.metering.unpriced == "block" else None
        stages.append(RulesStage(rules, router, unpriced))
    # Global regex_replace transformations: after the rules (which see what the client sent),
    # before limits, budgets and the cache (which see what will be sent). Absent when none is on.
    if (transforms := TransformStage.from_settings(settings.transformations)) is not None:
        stages.append(transforms)
    # Rate limits: after the rules and transformations (a rerouted request is limited as the model
    # it goes to), before budgets (a request refused here reserves nothing there).
    rate_limits = None
    if settings.rate_limits.enabled:
        if settings.state.backend == "memory" and settings.server.workers > 1:
            logging.getLogger("waypost.rate_limits").warning(
                "state.backend is memory with %d workers: each worker counts every rate limit on "
                "its own; set state.backend: redis to share them",
                settings.server.workers,
            )
        rate_limits = RateLimitBook(store, settings.rate_limits)
        remote = build_rate_counters(settings.state) if settings.state.backend == "redis" else None
        stages.append(
            RateLimitStage(
                settings.rate_limits, rate_limits, router, remote, timeout=settings.state.socket_timeout
            )
        )
    budgets = None
    if settings.budgets.enabled:  # after metering: tags are read, unpriced models refused first
        if settings.state.backend == "memory" and settings.server.workers > 1:
            logging.getLogger("waypost.budgets").warning(
                "state.backend is memory with %d workers: each worker enforces every budget on its "
                "own; set state.backend: redis to share them",
                settings.server.workers,
            )
        counters = build_counters(settings.state)
        budgets = BudgetBook(store, counters, settings.budgets)
        stages.append(BudgetStage(settings.budgets, budgets, counters, prices, router, BudgetAlerts(http)))
    cache = None
    if settings.cache.enabled:  # last: a hit has passed every check above (docs/policy.md)
        if settings.state.backend == "memory" and settings.server.workers > 1:
            logging.getLogger("waypost.cache").warning(
                "state.backend is memory with %d workers: each worker caches on its own, and an "
                "invalidation reaches only the worker that receives it; set state.backend: redis",
                settings.server.workers,
            )
        cache = CacheStage(settings.cache, build_cache_store(settings.cache, settings.state), router)
        stages.append(cache)
    pipeline = Pipeline(stages)
    # Prompts and answers go into spans only when the audit log keeps bodies, masked like there.
    mask = Masker(settings.audit.mask_patterns).mask if settings.audit.log_bodies else None
    tracing = Tracing(settings.tracing, mask)
    http.trace_headers = tracing.enabled  # each upstream call carries its attempt's traceparent
    resolved = resolve_secrets(settings)  # configured, or generated and kept in a file on loopback
    secrets = SecretBox(resolved.encryption_keys)
    catalog = ModelCatalog(settings, store, secrets, router, http)
    auth = settings.auth
    jwt = JwtCodec(resolved.jwt_secret, auth.jwt_algorithm, auth.access_token_ttl)
    authenticator = Authenticator(
        store, jwt, catalog, ttl=auth.cache_ttl, open_as=auth.admin_email if auth.open else None
    )
    return Container(
        settings=settings,
        http=http,
        router=router,
        store=store,
        authenticator=authenticator,
        catalog=catalog,
        secrets=secrets,
        policy=policy,
        jwt=jwt,
        passwords=PasswordHasher(auth.password_hashing),
        access_log=AccessLog.from_settings(settings.logging),
        loop_lag=LoopLagProbe(settings.logging.loop_lag_ms),
        metrics=build_metrics(settings, router, audit),
        pipeline=pipeline,
        metering=metering,
        prices=prices,
        audit=audit,
        budgets=budgets,
        rules=rules,
        cache=cache,
        rate_limits=rate_limits,
        drain=Drain(settings.server.shutdown_grace),
        tracing=tracing,
    )


def check_config_urls(settings: Settings, policy: OutboundPolicy | None = None) -> None:
    """Config-file models meet the outbound URL rules too (DNS is checked at call time). Run by
    ``serve`` (building the app) and by ``waypost config check``, so both refuse the same files."""
    policy = policy or OutboundPolicy.from_settings(settings.security)
    problems: list[str] = []
    for i, declared in enumerate(settings.models):
        for where, model in destinations(declared):  # the model's endpoint and its deployments'
            urls = {"base_url": model.resolved_base_url()}
            if model.aws is not None and model.aws.endpoint_url:
                urls["aws.endpoint_url"] = model.aws.endpoint_url
            for key, url in urls.items():
                if not url or not calls_upstream(model.provider):
                    continue
                try:
                    policy.check_url(url)
                except GatewayError as err:
                    problems.append(f"models[{i}].{where}{key}: {err.message}")
    webhook = settings.budgets.alert_webhook
    if webhook:
        try:
            policy.check_url(webhook)
        except GatewayError as err:
            problems.append(f"budgets.alert_webhook: {err.message}")
    if problems:
        raise ConfigError("\n".join(problems))


async def start(container: Container) -> list[asyncio.Task[None]]:
    """Migrate, create the administrator on first start, load database models, and start the
    background loops (model refresh, token last-used times, the event-loop lag probe). When the
    schema is not at head yet (another replica migrates it, or ``auto_migrate`` is off) the rest
    waits for it in the background, readiness 503 meanwhile (api/schema_gate.py)."""
    reason = await schema_wait_reason(container)
    if reason is None:
        return await start_serving(container)
    logging.getLogger("waypost.migrate").warning("not ready: %s", reason)
    container.not_ready_reason = reason
    tasks: list[asyncio.Task[None]] = []  # stop() cancels what is in it by then

    async def finish_start() -> None:
        tasks.extend(await start_serving(container))

    tasks.append(asyncio.create_task(wait_for_schema(container, finish_start)))
    return tasks


async def start_serving(container: Container) -> list[asyncio.Task[None]]:
    """The start, once the schema is at head."""
    await start_container(container)
    every = max(1.0, container.settings.auth.cache_ttl)
    container.audit.start()  # its own tasks: stop() lets them finish their writes
    budgets = []
    await load_rules(container.rules)  # also when off: /admin/rules/test tries the stored rules
    if container.settings.rules.enabled:
        budgets.append(asyncio.create_task(container.rules.run_refresher()))
    if container.rate_limits is not None:
        await load_rate_limits(container.rate_limits)
        budgets.append(asyncio.create_task(container.rate_limits.run_refresher()))
    if container.budgets is not None:
        await load_budgets(container.budgets)  # before serving: counters reloaded from the audit log
        budgets.append(asyncio.create_task(container.budgets.run_refresher()))
    start_metrics(container)
    if container.metrics.enabled and container.settings.metrics.port is not None:
        listener = MetricsListener(container)
        await listener.start()  # a port that cannot be bound stops the start, with its error
        budgets.append(asyncio.create_task(listener.run()))
    return [
        *budgets,
        asyncio.create_task(container.catalog.run_refresher(every)),
        asyncio.create_task(container.authenticator.run_flusher(every)),
        asyncio.create_task(container.loop_lag.run()),
        asyncio.create_task(responses.purge(container)),  # expired stored responses
        # Shared deployment health (Redis): outages other processes decided, read every second.
        *(
            [asyncio.create_task(container.router.health.run_refresher())]
            if container.router.health.shared
            else []
        ),
    ]


async def load_rules(book: RuleBook) -> None:
    """The database's rules, before the first request; when the database does not answer, the
    background refresh loads them once it does (the config file's apply meanwhile)."""
    try:
        await book.load()
    except Exception as exc:
        logging.getLogger("waypost.rules").error(
            "rules not loaded at start (%s: %s); retried every %gs",
            type(exc).__name__,
            exc,
            book.settings.cache_ttl,
        )


async def load_rate_limits(book: RateLimitBook) -> None:
    """The rate limits, before the first request; when the database does not answer, the
    background refresh loads them once it does."""
    try:
        await book.load()
    except Exception as exc:
        logging.getLogger("waypost.rate_limits").error(
            "rate limits not loaded at start (%s: %s); retried every %gs",
            type(exc).__name__,
            exc,
            book.settings.cache_ttl,
        )


async def load_budgets(book: BudgetBook) -> None:
    """The budgets, before the first request; when the state backend does not answer, the
    gateway starts anyway and the background refresh loads them once it does."""
    try:
        await book.load()
    except Exception as exc:
        logging.getLogger("waypost.budgets").error(
            "budgets not loaded at start (%s: %s); retried every %gs",
            type(exc).__name__,
            exc,
            book.settings.refresh_interval,
        )


async def stop(container: Container, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await container.authenticator.flush_last_used()
    await container.audit.stop()  # every row recorded so far: written, or spooled when it cannot be
    await container.metrics.stop()  # this process's last counts, published
    await container.tracing.stop()  # the spans and metrics still buffered, exported
    if container.budgets is not None:
        await container.budgets.counters.close()
    await container.rules.close()
    if container.cache is not None:
        await container.cache.store.close()
    stage = container.pipeline.stage("rate_limits")
    if isinstance(stage, RateLimitStage) and stage.remote is not None:
        await stage.remote.close()
    await container.router.health.close()
    await container.http.close()
    await container.store.close()
    container.access_log.flush()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    fmt = ANTHROPIC if path.startswith("/v1/messages") else RESPONSES if path.startswith(PATHS) else OPENAI
    err: GatewayError = NotFound(f"No route for {request.method} {request.url.path}.")
    # Starlette's own 405 (a GET-only route called otherwise) says which methods it takes.
    allow = {k.lower(): v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    if exc.status_code == 405 and allow:
        # Starlette builds the header from a set: sorted, so it is the same on every run.
        methods = tuple(sorted(allow["allow"].split(", ")))
        allow = {"allow": ", ".join(methods)}
        err = MethodNotAllowed(
            f"{request.url.path} takes {' or '.join(methods)}, not {request.method}.", allow=methods
        )
    elif exc.status_code != 404:
        err = GatewayError(str(exc.detail))
        err.status = exc.status_code
    status, body = fmt.encode_error(err)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=allow)


def create_app(
    settings: Settings,
    *,
    configure_logs: bool = True,
    tune_gc: bool = False,
    not_ready_on_signal: bool = False,
    reload_on_sighup: bool = False,
    config_path: str | Path | None = None,
) -> ASGIApp:
    """The app. ``tune_gc``: once started, keep full garbage collections off the start-up objects
    (``observability/heap.py``); the server's entry points ask for it, tests need not.
    ``not_ready_on_signal``: readiness turns 503 when SIGTERM or SIGINT arrives (a worker of a
    multi-worker server; a one-worker server's own ``GatewayServer`` does it).
    ``reload_on_sighup``: SIGHUP re-reads ``config_path`` (api/reload.py; the server's entry points)."""
    if configure_logs:
        configure_logging(settings.logging.level, settings.logging.json_format)
    container = build_container(settings)

    routes = [
        Route("/v1/models", meta.list_models, methods=["GET"]),
        Route("/models", meta.list_models, methods=["GET"]),
        Route("/health", meta.health, methods=["GET"]),
        Route("/health/live", meta.live, methods=["GET"]),
        Route("/health/ready", meta.ready, methods=["GET"]),
        *responses.routes(settings.responses),  # GET, DELETE /v1/responses/{id}[/input_items]
    ]
    starlette = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={HTTPException: _http_error},
    )
    starlette.state.container = container
    gateway = Gateway(starlette, container)
    gateway.tune_gc = tune_gc
    gateway.not_ready_on_signal = not_ready_on_signal
    if reload_on_sighup:
        gateway.reloader = Reloader(container, config_path, check_config_urls)
    app: ASGIApp = gateway
    if settings.server.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[
                "x-request-id",
                "x-waypost-provider",
                "x-waypost-deployment",
                "x-waypost-dropped",
                "x-waypost-attempts",
                "x-waypost-token-count",
                "x-waypost-cost-usd",
                "x-waypost-overhead-ms",
                "x-waypost-applied-rules",
                "x-cache-status",
                "x-waypost-cache-key",
                "retry-after",
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
                *(
                    f"anthropic-ratelimit-{kind}-{part}"
                    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
                    for part in ("limit", "remaining", "reset")
                ),
            ],
        )
    return app


def app_from_env() -> ASGIApp:
    """Factory for multi-worker servers: each worker loads the config named by $WAYPOST_CONFIG."""
    import os

    from waypost.settings import load_settings

    path = os.environ.get("WAYPOST_CONFIG")
    if threading.current_thread() is threading.main_thread():
        # Until the lifespan installs the reload handler, a SIGHUP the supervisor passes on must
        # not stop this worker (SIGHUP's default): it has just read the file anyway.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return create_app(
        load_settings(path), tune_gc=True, not_ready_on_signal=True, reload_on_sighup=True, config_path=path
    )
