"""Audit-log rows for report tests, written straight into the tables (as the audit writer would:
plain dicts keyed by column names), with a request's tags and groups mirrored into request_labels."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from waypost.store import Store, tables

_ids = itertools.count(1)


def request_row(**fields: Any) -> dict[str, Any]:
    """A successful, priced chat request; ``fields`` override any column."""
    row: dict[str, Any] = {
        "request_id": f"req-{next(_ids):06d}",
        "created_at": datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        "user_id": 1,
        "user_email": "admin@localhost",
        "token_id": None,
        "groups": [],
        "tags": [],
        "endpoint": "chat",
        "client_format": "openai",
        "requested_model": "gpt",
        "model": "gpt",
        "provider": "openai",
        "upstream_model": "gpt-4o",
        "stream": False,
        "status": 200,
        "error_class": None,
        "error_message": None,
        "attempts": 1,
        "latency_ms": 120.0,
        "ttft_ms": None,
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "usage_estimated": False,
        "cost_micros": 1000,
        "cost_breakdown": {"input": 500, "output": 500},
        "priced": True,
        "cache_status": None,
        "saved_micros": 0,
        "rules": None,
        "client_ip": "127.0.0.1",
        "user_agent": "tests",
        "request_body": None,
        "response_body": None,
    }
    row.update(fields)
    return row


def attempt_row(request: dict[str, Any], attempt: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": request["request_id"],
        "attempt": attempt,
        "created_at": request["created_at"],
        "model": request["model"],
        "provider": request["provider"],
        "upstream_model": request["upstream_model"],
        "status": request["status"],
        "error_class": None,
        "latency_ms": 50.0,
        "input_tokens": request["input_tokens"],
        "output_tokens": request["output_tokens"],
        "cache_read_tokens": request["cache_read_tokens"],
        "cache_write_tokens": request["cache_write_tokens"],
        "reasoning_tokens": request["reasoning_tokens"],
        "cost_micros": request["cost_micros"],
    }
    row.update(fields)
    return row


async def insert(
    store: Store, requests: list[dict[str, Any]], attempts: Sequence[dict[str, Any]] = ()
) -> None:
    """Write ``requests`` (their tags and groups as labels too) and ``attempts``."""
    labels = [
        {"request_id": r["request_id"], "kind": kind, "value": value, "created_at": r["created_at"]}
        for r in requests
        for kind, values in (("tag", r.get("tags") or []), ("group", r.get("groups") or []))
        for value in values
    ]
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(tables.request_log), requests)
        if labels:
            await conn.execute(sa.insert(tables.request_labels), labels)
        if attempts:
            await conn.execute(sa.insert(tables.request_attempts), list(attempts))
