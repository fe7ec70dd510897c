"""The rows the metering stage hands to the audit writer hold no containers: the writer keeps a
second's requests in memory until it writes them, and objects the garbage collector must walk
(lists, dicts holding lists) cost every collection until then. Checked with ``gc.is_tracked``."""

from __future__ import annotations

import gc
from typing import Any, cast

import orjson
import sqlalchemy as sa

from waypost.core.context import Attempt, Cost, RequestContext
from waypost.core.types import Usage
from waypost.pipeline.metering import MeteringStage
from waypost.security.principal import Principal
from waypost.settings import AuditSettings, MeteringSettings
from waypost.store import tables


def _context() -> RequestContext:
    ctx = RequestContext("rid-1", "openai", audit_id="audit-1", headers={"user-agent": "tests"})
    ctx.principal = Principal(1, "a@example.com", "user", frozenset(), None, groups=("eng", "ops"))
    ctx.tags = ("team-a",)
    ctx.rules = [{"rule": "r", "action": "allow", "mode": "enforce"}]
    ctx.attempts = [
        Attempt(1, "m", "openai", "gpt", 0.0, 0.1, 503, "Unavailable"),
        Attempt(2, "m", "openai", "gpt", 0.1, 0.2, 200),
    ]
    ctx.usage = Usage(input_tokens=10, output_tokens=2)
    ctx.cost = Cost(30, {"input": 10, "output": 20}, True, "config")
    ctx.status = 200
    return ctx


def test_the_rows_are_untracked_by_the_garbage_collector() -> None:
    stage = MeteringStage(MeteringSettings(), AuditSettings(), cast(Any, None), cast(Any, None), None)
    request, attempts, labels = stage.rows(_context())
    assert not gc.is_tracked(request)
    assert len(attempts) == 2 and not any(gc.is_tracked(a) for a in attempts)
    assert len(labels) == 3 and not any(gc.is_tracked(label) for label in labels)
    # The tuples that hold them are the only containers left (three per request, not the dozen or
    # so of lists of dicts of lists they were).
    # The JSON columns, as their text.
    assert orjson.loads(request["groups"]) == ["eng", "ops"]
    assert orjson.loads(request["tags"]) == ["team-a"]
    assert orjson.loads(request["rules"]) == [{"rule": "r", "action": "allow", "mode": "enforce"}]
    assert orjson.loads(request["cost_breakdown"]) == {"input": 10, "output": 20, "source": "config"}


def test_the_rows_hold_every_column_in_the_tables_order() -> None:
    """What lets the writer take a row's values as they are (``store/usage_log.py``); a column
    added to a table and not to the stage fails here, not just slows every insert down."""
    stage = MeteringStage(MeteringSettings(), AuditSettings(), cast(Any, None), cast(Any, None), None)
    request, attempts, labels = stage.rows(_context())

    def order(table: sa.Table) -> tuple[str, ...]:
        return tuple(c.name for c in table.c if c.name != "id")

    assert tuple(request) == order(tables.request_log)
    assert all(tuple(a) == order(tables.request_attempts) for a in attempts)
    assert all(tuple(label) == order(tables.request_labels) for label in labels)
