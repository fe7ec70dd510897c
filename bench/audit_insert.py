"""What writing the audit log costs SQLite itself, per request (a request row and an attempt row),
apart from the gateway: the rows a streamed chat request leaves, inserted the way the audit
writer inserts them (``store.usage_log``'s multi-row statements, one transaction per flush) into
a database migrated by the gateway's own code.

    .venv/bin/python -m bench.audit_insert [--flushes 400] [--per-flush 64] [--connections 1]
                                           [--without-indexes]

It prints the CPU time of the inserts and of converting the rows for the driver, per request.
The machine's speed drifts; compare the ratio of the two (the conversion is plain Python and
moves with the machine), or variants run one after the other. ``--connections N`` takes the
flushes on N connections in turn (as a pool handing out connections first in, first out does);
``--without-indexes`` drops the log's secondary indexes first (what they cost to keep).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from waypost.api.asgi_io import new_request_id
from waypost.settings import DatabaseSettings
from waypost.store import Store
from waypost.store.engine import configure_sqlite_connection
from waypost.store.usage_log import _FAST

SECONDARY = (
    "ix_request_log_created_at",
    "ix_request_log_client_request_id",
    "ix_request_log_user_id_created_at",
    "ix_request_log_model_created_at",
    "ix_request_attempts_created_at",
)

# A streamed chat request's rows, as the metering stage leaves them (ids and times set per row).
REQUEST: dict[str, Any] = {
    "user_id": 1, "user_email": "bench@localhost", "token_id": 1, "groups": "[]", "tags": "[]",
    "endpoint": "chat", "client_format": "openai", "requested_model": "bench-model",
    "model": "bench-model", "provider": "openai", "upstream_model": "bench-model", "stream": True,
    "status": 200, "attempts": 1, "latency_ms": 14.56, "ttft_ms": 14.06, "input_tokens": 8,
    "output_tokens": 20, "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0,
    "usage_estimated": False, "cost_micros": 220, "priced": True, "saved_micros": 0,
    "cost_breakdown": '{"input":20,"output":200,"source":"model config"}', "client_ip": "127.0.0.1",
}  # fmt: skip
ATTEMPT: dict[str, Any] = {
    "attempt": 1, "model": "bench-model", "provider": "openai", "upstream_model": "bench-model",
    "status": 200, "latency_ms": 1.56, "input_tokens": 8, "output_tokens": 20,
    "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, "cost_micros": 220,
}  # fmt: skip


def rows(count: int) -> dict[str, list[dict[str, Any]]]:
    """``count`` requests' rows of each table, every column present (as the stage leaves them)."""
    out = {
        table: [{**dict.fromkeys(_FAST[table].columns), **template} for _ in range(count)]
        for table, template in (("request_log", REQUEST), ("request_attempts", ATTEMPT))
    }
    for log_row, attempt in zip(out["request_log"], out["request_attempts"], strict=True):
        log_row["request_id"] = attempt["request_id"] = new_request_id()
        log_row["created_at"] = attempt["created_at"] = time.time()  # a Unix time, as the stage's
    return out


async def migrated(path: Path) -> None:
    store = Store.from_settings(DatabaseSettings(url=f"sqlite:///{path}"))
    await store.upgrade()
    user = await store.users.create("bench@localhost", "Benchmark", role="user")
    await store.tokens.create(user.id, "bench", token_hash="0" * 64, prefix="bench")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flushes", type=int, default=400)
    parser.add_argument("--per-flush", type=int, default=64, help="requests per transaction")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--without-indexes", action="store_true")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp()) / "audit.db"
    asyncio.run(migrated(path))
    conns = [sqlite3.connect(path) for _ in range(args.connections)]
    for conn in conns:
        configure_sqlite_connection(conn)
    if args.without_indexes:
        for name in SECONDARY:
            conns[0].execute(f"DROP INDEX {name}")
    insert = convert = 0.0
    for flush in range(args.flushes):
        conn = conns[flush % len(conns)]
        batch = rows(args.per_flush)
        started = time.thread_time()
        # The rows' keys are the columns in order, as the stage's (``rows``): taken as they are.
        statements = [
            s for table in batch for s in _FAST[table].sqlite_statements(batch[table], ordered=True)
        ]
        converted_at = time.thread_time()
        conn.execute("BEGIN")
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")
        insert += time.thread_time() - converted_at
        convert += converted_at - started
    requests = args.flushes * args.per_flush
    print(
        f"insert {insert / requests * 1e6:.1f} µs, conversion {convert / requests * 1e6:.1f} µs per request "
        f"(ratio {insert / convert:.2f}); {requests} requests, {args.per_flush} per transaction, "
        f"{args.connections} connection(s){', without the secondary indexes' if args.without_indexes else ''}"
    )


if __name__ == "__main__":
    main()
