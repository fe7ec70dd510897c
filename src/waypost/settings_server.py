"""The settings of the server process itself: its HTTP server (address, workers, request bounds,
keep-alive, shutdown), its database and its logs (docs/configuration.md). Re-exported by
``waypost.settings``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from waypost.settings_metering import _Strict


class ServerSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    cors_origins: list[str] = Field(default_factory=list)
    public_url: str | None = None  # how browsers reach the gateway (OIDC redirect URIs)
    # The path prefix a reverse proxy serves the gateway under (e.g. /gateway); requests may arrive
    # with it or with it stripped (docs/ui.md, "Behind a reverse proxy").
    root_path: str = Field("", pattern=r"^(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$")
    public_api_docs: bool = False  # serve /admin/openapi.json and /admin/docs without credentials
    # Slow or stalled clients (docs/configuration.md, "Server"): seconds for a request's line and
    # headers, then for its whole body; past them 408 (or the connection is closed).
    header_timeout: float = Field(10.0, gt=0)
    body_timeout: float = Field(60.0, gt=0)
    # Seconds an idle keep-alive connection stays open after its last answer. Behind a load
    # balancer that reuses connections, set it above the balancer's own idle timeout: one that
    # reuses a connection just as the gateway closes it gets a reset (or, from a proxy, a 502).
    keep_alive_timeout: float = Field(5.0, gt=0, le=3600)
    # Past these 431: header fields per request, and bytes of the URL plus every header name and value.
    max_header_count: int = Field(100, ge=16)
    max_header_bytes: int = Field(32 * 1024, ge=4096)
    # Seconds requests and streams in flight get after SIGTERM; a stream still running then ends
    # with an error event in its format (docs/operations.md, "Stop"). Was ``audit.shutdown_grace``.
    shutdown_grace: float = Field(30.0, ge=0, le=3600)


class DatabaseSettings(_Strict):
    """SQLite (embedded default, a file beside the config) or PostgreSQL
    (``postgresql://user@host/db``; set with ``WAYPOST_DATABASE__URL``)."""

    url: str = "sqlite:///waypost.db"
    postgres_schema: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pool_size: int = Field(10, ge=1, le=200)
    auto_migrate: bool = True  # run migrations at start (also: ``waypost db upgrade``)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgres|postgresql)(\+[a-z0-9]+)?://", value):
            raise ValueError(f"must be a sqlite:// or postgresql:// URL, got {value.split('://')[0]!r}")
        return value


class LoggingSettings(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_format: bool = Field(True, alias="json")
    access_log: bool = True  # one line per request (at info level)
    # A warning line when the event loop runs a timer later than this (docs/operations.md); 0: none.
    loop_lag_ms: float = Field(50.0, ge=0)
    # Each request's body and its answer, keys, tokens and audit.mask_patterns masked, on one
    # info line of logger waypost.bodies (docs/policy.md, "Logging whole requests and responses").
    bodies: bool = False
    bodies_max_chars: int = Field(65536, ge=256)  # of each body, once masked
