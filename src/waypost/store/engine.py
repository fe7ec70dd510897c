"""Building the async engine from ``DatabaseSettings``: driver selection and per-backend setup."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from waypost.settings import DatabaseSettings

SQLITE_BUSY_TIMEOUT_MS = 5000  # how long a writer waits for another one before "database is locked"
PG_CONNECT_TIMEOUT = 10.0  # seconds
# Execution option a repository sets on write transactions; SQLite then takes the write lock up
# front (BEGIN IMMEDIATE), so it waits for other writers instead of failing half-way through.
WRITE = "waypost_write"


def database_url(url: str) -> URL:
    """The URL with its async driver: ``sqlite+aiosqlite`` or ``postgresql+asyncpg``."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        # libpq's ``sslmode`` is what people paste; asyncpg calls the same thing ``ssl``.
        if "sslmode" in parsed.query and "ssl" not in parsed.query:
            parsed = parsed.update_query_dict({"ssl": parsed.query["sslmode"]}).difference_update_query(
                ["sslmode"]
            )
        return parsed
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(db: DatabaseSettings) -> AsyncEngine:
    """An engine for ``db``; connects lazily (no I/O here)."""
    url = database_url(db.url)
    # Bound parameters (password hashes, token hashes, ciphertexts) never appear in errors or logs.
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            # One shared connection, or each connection would see a database of its own.
            engine = create_async_engine(url, hide_parameters=True, poolclass=pool.StaticPool)
        else:
            # Last in, first out: a quiet moment's queries (the audit log's flushes among them)
            # reuse the connection used last, and so one driver thread. Taken in turn, five
            # connections cost SQLite 5-7 % more per audit insert (bench/audit_insert.py).
            engine = create_async_engine(
                url, hide_parameters=True, pool_size=db.pool_size, max_overflow=0, pool_use_lifo=True
            )
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {"timeout": PG_CONNECT_TIMEOUT}
    if db.postgres_schema:
        connect_args["server_settings"] = {"search_path": f'"{db.postgres_schema}"'}
    # ``pool_size`` is the cap per process, so operators can size the server's max_connections;
    # pre-ping replaces connections the server or a proxy closed while they sat in the pool.
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_size=db.pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def configure_sqlite_connection(dbapi_connection: Any) -> None:
    """Every new SQLite connection's settings (a DB-API connection: the driver's, or sqlite3's)."""
    # Take over transaction control from the sqlite3 module, which would otherwise not BEGIN
    # before SELECTs or DDL (no consistent reads, no transactional migrations).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")  # off by default in SQLite; cascades need it
    cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, far fewer fsyncs
    cursor.close()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure_sqlite_connection(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")
