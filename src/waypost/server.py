"""The HTTP server: uvicorn (httptools, uvloop) with the bounds a server facing the public needs,
built in one place for ``waypost serve`` and the test harness.

uvicorn's HTTP protocols wait forever for a request's headers or body (its keep-alive timer runs
only between requests), accept any number and size of headers, and answer a request their parser
rejects in plain text. ``GatewayProtocol`` adds, per connection:

- a deadline for the request line and headers (``server.header_timeout``), then one for the body
  (``server.body_timeout``, chunked bodies too); past it 408 in JSON and the connection closed.
  A connection that never starts a request is closed silently; one whose answer is already out
  (the app answered without reading the body: 401, 413) is just closed.
- header limits (``server.max_header_count``, ``server.max_header_bytes``): past them 431.
- JSON for a request the parser rejects (400).

Each refusal is in the route's error format and gets an access-log line. Timers are armed only
when a request spans several reads, so a request that arrives whole costs none.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, cast

import httptools
import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from starlette.types import ASGIApp
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState
from uvicorn.supervisors import ChangeReload, Multiprocess

from waypost.api.asgi_io import DISCONNECT, Disconnect, header_map, request_id
from waypost.api.drain import BACKSTOP
from waypost.api.errors import error_parts
from waypost.api.formats import ANTHROPIC, OPENAI
from waypost.app import check_config_urls, create_app
from waypost.core.errors import BadRequest, GatewayError, HeadersTooLarge, RequestTimeout
from waypost.observability.access import AccessLog
from waypost.observability.metrics_files import MULTIPROC_ENV, prepare_metrics_directory
from waypost.security.generated_secrets import resolve_secrets
from waypost.server_writes import GatewayCycle, HeadWithBody
from waypost.settings import ConfigError, ServerSettings, Settings, is_loopback, load_settings
from waypost.settings_loading import local_override_path

log = logging.getLogger("waypost.server")

# Where a connection is in its current request.
_IDLE, _HEADERS, _BODY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float
    body_timeout: float
    max_header_count: int
    max_header_bytes: int

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ServerLimits:
        return cls(
            server.header_timeout, server.body_timeout, server.max_header_count, server.max_header_bytes
        )


class GatewayConfig(uvicorn.Config):
    """uvicorn's config plus the limits and the access log of refused requests. With several
    workers it is pickled to each of them as it is."""

    def __init__(
        self, app: ASGIApp | str, *, limits: ServerLimits, refusals: AccessLog, **options: Any
    ) -> None:
        super().__init__(app, http=GatewayProtocol, **options)
        self.limits = limits
        self.refusals = refusals


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, header limits and JSON refusals."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        assert isinstance(config, GatewayConfig)
        self._limits = config.limits
        self._refusals = config.refusals
        self._phase = _IDLE
        # Bytes read since the last request ended, counting only reads that began outside a body.
        # While a header section lasts this never exceeds its size, so it bounds a header that
        # never ends; and when ``_counted_whole`` (the section's first read began between
        # requests) it is never below it either: under the limit, the headers need no summing.
        self._header_bytes = 0
        self._counted_whole = True
        self._deadline: asyncio.TimerHandle | None = None

    # -- connection -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # An answer's head leaves with its body, in one write (server_writes.py).
        self.transport = cast(asyncio.Transport, HeadWithBody(transport, self.loop))
        self._arm(self._limits.header_timeout)  # a connection that never sends a request is closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            hook: Disconnect | None = cast(dict[str, Any], cycle.scope).get(DISCONNECT)
            if hook is not None:
                hook.fire()  # the request's DisconnectWatch cancels its work (api/asgi_io.py)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, with parser errors (and the refusals raised from callbacks) answered in JSON.
        self._unset_keepalive_if_required()
        if self._phase == _IDLE:
            self._header_bytes += len(data)
            self._counted_whole = True
        elif self._phase == _HEADERS:
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._disarm()
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self._refuse(
                cause if isinstance(cause, GatewayError) else BadRequest(f"Invalid HTTP request: {exc}.")
            )
            return
        phase = self._phase
        if phase == _IDLE:
            return
        limits = self._limits
        if phase == _HEADERS and self._header_bytes > limits.max_header_bytes:
            # httptools buffers a header until it ends: refuse one that keeps growing.
            self._refuse(HeadersTooLarge(f"The request's headers exceed {limits.max_header_bytes} bytes."))
        elif self._deadline is None:
            self._arm(limits.header_timeout if phase == _HEADERS else limits.body_timeout)

    # -- parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEADERS
        if self._deadline is not None:
            self._disarm()  # the header deadline is armed after this read, unless the headers end in it

    def on_headers_complete(self) -> None:
        if self._deadline is not None:
            self._disarm()
        limits = self._limits
        if (
            len(self.headers) > limits.max_header_count
            or self._header_bytes > limits.max_header_bytes
            or not self._counted_whole
        ):
            problem = self._header_problem()
            if problem is not None:
                raise problem  # stops the parser; data_received answers it
        self._phase = _BODY
        # The scope's own (a pipelined request has its own scope, and gets another).
        cast(dict[str, Any], self.scope)[DISCONNECT] = Disconnect()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and type(cycle) is RequestResponseCycle:
            # uvicorn builds the cycle by its own class; its task has not run yet, so every
            # ``send`` of the request is ``GatewayCycle``'s (server_writes.py), whose cheaper
            # head is the only change: same attributes, no state of its own.
            cycle.__class__ = GatewayCycle

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._header_bytes = 0
        self._counted_whole = False  # the rest of this read, if any, was not counted
        if self._deadline is not None:
            self._disarm()
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and self.timeout_keep_alive_task is None:
            # Answered before its body ended: the body's reads cancelled uvicorn's keep-alive
            # timer, which it arms only when an answer completes. Arm it again.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def _header_problem(self) -> HeadersTooLarge | None:
        limits = self._limits
        headers = self.headers
        if len(headers) > limits.max_header_count:
            return HeadersTooLarge(
                f"The request has {len(headers)} header fields; the limit is {limits.max_header_count}."
            )
        size = len(self.url)
        for name, value in headers:
            size += len(name) + len(value)
        if size > limits.max_header_bytes:
            return HeadersTooLarge(
                f"The request's URL and headers are {size} bytes; the limit is {limits.max_header_bytes} bytes."
            )
        return None

    # -- deadlines and refusals -------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        limits = self._limits
        if self._phase == _IDLE:  # not a byte since the connection opened: nothing to answer
            self.transport.close()
        elif self._phase == _HEADERS:
            self._refuse(
                RequestTimeout(f"The request headers did not arrive within {limits.header_timeout:g} s.")
            )
        else:
            self._refuse(RequestTimeout(f"The request body did not arrive within {limits.body_timeout:g} s."))

    def _refuse(self, err: GatewayError) -> None:
        """Answer ``err`` and close the connection; while an answer is being written on it, close
        once that is done (or at once, when it cannot be: a pipelined request is queued)."""
        self._disarm()
        cycle = self.cycle
        if self._phase == _BODY:  # ``cycle`` is this request's
            if cycle is None or self.pipeline or cycle.response_complete:
                self.transport.close()
                return
            if cycle.response_started:
                cycle.keep_alive = False
                self.flow.pause_reading()
                return
            # The app may be waiting for the body: its reads now see a disconnect, its writes go nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        elif cycle is not None and not cycle.response_complete:  # an earlier request is being answered
            cycle.keep_alive = False
            self.flow.pause_reading()
            return
        self._answer(err)

    def _answer(self, err: GatewayError) -> None:
        if self._phase == _BODY:
            path = self.scope["path"]
            rid = request_id(header_map(self.scope))  # type: ignore[arg-type]
        else:
            url = self.url if self._phase == _HEADERS else b""
            path = url.partition(b"?")[0].decode("latin-1")
            rid = request_id({})
        status, body, extra = error_parts(ANTHROPIC if path.startswith("/v1/messages") else OPENAI, err)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        fields = {"content-type": "application/json", "content-length": str(len(body)), "x-request-id": rid}
        for field, text in {**fields, **extra, "connection": "close"}.items():
            head.append(f"{field}: {text}\r\n".encode("latin-1"))
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()
        self._refusals.refused(rid, path, err)


class GatewayServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM, once in-flight requests have drained, ends the
    process with status 0: uvicorn re-raises the signal after shutting down, and a process
    killed by it reports failure (-15) to its supervisor although it stopped cleanly."""

    on_started: Callable[[], None] | None = None  # called once the socket is bound and serving

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._stopping()
        if sig == signal.SIGTERM:
            self.should_exit = True
            return
        super().handle_exit(sig, frame)

    def _stopping(self) -> None:
        """Readiness (``/health/ready``) turns 503 at once, before the listener closes: a load
        balancer stops sending requests while the ones in flight drain; and the grace period
        starts, past which the app cuts what still runs (api/drain.py)."""
        app = getattr(self.config, "loaded_app", None)
        while app is not None and not hasattr(app, "container"):
            app = getattr(app, "app", None)
        if app is not None:
            app.container.ready = False
            app.container.drain.begin()


def server_config(app: ASGIApp | str, settings: Settings, **options: Any) -> GatewayConfig:
    """The server's config for ``app``: an ASGI app, or with ``factory=True`` the import string
    of one's factory (each worker builds its own). ``options`` override uvicorn settings."""
    server = settings.server
    defaults: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "lifespan": "on",
        "log_config": None,  # no handlers of uvicorn's own: its lines go to ours (configure_logging)
        "log_level": settings.logging.level,
        "access_log": False,  # the gateway writes its own access log
        # In-flight requests and streams finish within ``shutdown_grace`` after SIGTERM, when the
        # app cuts the data-plane ones still running (each told why); uvicorn cancels what is left
        # a little later. Then the audit log is flushed.
        "timeout_graceful_shutdown": server.shutdown_grace + BACKSTOP,
        # A worker answers the supervisor's health pings once it has imported the gateway, which
        # on a loaded machine takes longer than uvicorn's 5 s: it would be killed as hung, again.
        "timeout_worker_healthcheck": 30,
        "server_header": False,
        "timeout_keep_alive": server.keep_alive_timeout,
        "proxy_headers": False,  # audit rows record the TCP peer; X-Forwarded-For is not trusted
    }
    return GatewayConfig(
        app,
        limits=ServerLimits.from_settings(server),
        refusals=AccessLog.from_settings(settings.logging),
        **{**defaults, **options},
    )


def _listening(settings: Settings, source: str) -> None:
    """The one line that says where the gateway listens (once the socket is bound)."""
    server = settings.server
    log.info(
        "serving on http://%s:%d with %d worker(s); config: %s; %d model(s)",
        server.host,
        server.port,
        server.workers,
        source,
        len(settings.models),
    )
    metrics = settings.metrics
    if metrics.enabled and metrics.token is None and metrics.port is None and not is_loopback(server.host):
        # Metrics name models, providers and groups, and tell spend: say who can read them.
        log.warning(
            "/metrics is readable by anyone who can reach %s:%d (no metrics.token, no metrics.port); "
            "set one of them, or metrics.enabled: false",
            server.host,
            server.port,
        )


class GatewaySupervisor(Multiprocess):
    """uvicorn's supervisor of several workers, except that SIGHUP reloads the config file in
    every worker (api/reload.py) instead of restarting them: the file is checked here first, so
    that a bad one is refused in one log line, and the signal is passed on only when it is valid."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], path: str | None) -> None:
        super().__init__(config, sockets)
        self.path = path

    def keep_subprocess_alive(self) -> None:
        """uvicorn's replacement of a worker that died (killed, crashed, hung), and the dead
        worker's live metric files removed (prometheus_client's ``mark_process_dead``): else its
        in-flight gauges would count in every scrape until the next start. Its counters stay."""
        directory = os.environ.get(MULTIPROC_ENV)
        if directory is None:
            super().keep_subprocess_alive()
            return
        for process in self.processes:  # dead already: gone before its replacement starts
            if process.pid is not None and process.exitcode is not None:
                mark_process_dead(process.pid, directory)
        before = [process.pid for process in self.processes]
        super().keep_subprocess_alive()
        for pid, process in zip(before, self.processes, strict=True):
            if pid is not None and process.pid != pid:  # killed as hung by uvicorn just now
                mark_process_dead(pid, directory)

    def handle_hup(self) -> None:
        try:
            check_config_urls(load_settings(self.path))
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays: %s", "; ".join(str(exc).splitlines()))
            return
        for process in self.processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGHUP)


def run(
    settings: Settings,
    source: str = "the built-in defaults",
    config_path: Path | None = None,
    *,
    reload: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then let in-flight requests finish and return. Raises
    ``ConfigError`` when the app cannot be built; exits with status 3 when it cannot start.
    ``source``: where the settings came from, for the start-up line; ``config_path``: the file
    SIGHUP reloads. ``reload`` (development): restart on changes of the code or the config file;
    the file's path is in $WAYPOST_CONFIG, as with several workers."""
    if reload:
        _run_reloading(settings, source, config_path)
        return
    workers = settings.server.workers
    if workers > 1:
        # Each worker builds its own app. What building it may refuse beyond the settings (the
        # generated-secrets file: unreadable, damaged, readable by others) is checked here first,
        # so that the refusal is the one ``ConfigError`` of a single worker, not a traceback in
        # every worker; and a first start creates the file once, before the workers.
        resolve_secrets(settings)
        prepare_metrics_directory(settings)  # before the workers start: they inherit it
        config = server_config("waypost.app:app_from_env", settings, factory=True, workers=workers)
        path = None if config_path is None else str(config_path)
        supervisor = GatewaySupervisor(config, [config.bind_socket()], path)
        _listening(settings, source)
        supervisor.run()
        if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
            sys.exit(STARTUP_FAILURE)  # uvicorn stopped the others; the worker logged why
        return
    app = create_app(settings, tune_gc=True, reload_on_sighup=True, config_path=config_path)
    server = GatewayServer(server_config(app, settings))
    server.on_started = lambda: _listening(settings, source)
    try:
        server.run()
    except KeyboardInterrupt:  # SIGINT, re-raised by uvicorn once drained
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _run_reloading(settings: Settings, source: str, config_path: Path | None) -> None:
    """One worker, restarted (by uvicorn's reloader, with watchfiles) whenever a Python file of
    Waypost or the config file (or its local override file) changes."""
    import waypost

    directories = [str(Path(waypost.__file__).parent)]
    includes = ["*.py"]
    if config_path is not None:
        directories.append(str(config_path.resolve().parent))
        includes += [config_path.name, local_override_path(config_path).name]
    config = server_config(
        "waypost.app:app_from_env",
        settings,
        factory=True,
        reload=True,
        reload_dirs=directories,
        reload_includes=includes,
    )
    supervisor = ChangeReload(config, target=GatewayServer(config).run, sockets=[config.bind_socket()])
    _listening(settings, source)
    supervisor.run()
