"""W3C trace context: reading a caller's ``traceparent``, starting the request's trace, and the
headers each upstream attempt carries (docs/operations.md, "Traces").

The request's ``TraceIds`` live on its ``RequestContext`` and, for the code that has no context
to hand (the outbound HTTP client, log formatting), in ``CURRENT``: set by the data-plane path
for the request's task, so it is never seen by another request. Nothing here imports the
OpenTelemetry SDK; with tracing off nothing here runs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from contextvars import ContextVar

from waypost.core.context import TraceIds

CURRENT: ContextVar[TraceIds | None] = ContextVar("waypost_trace", default=None)

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ID_MASK = (1 << 64) - 1


def parse_traceparent(value: str) -> tuple[int, int, bool] | None:
    """(trace id, parent span id, sampled) of a valid ``traceparent``; None for anything else
    (then the request starts a trace of its own, as the W3C recommendation says)."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace, span, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None  # ff is forbidden; version 00 has exactly four fields
    trace_id, span_id = int(trace, 16), int(span, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(flags, 16) & 1)


def start_trace(headers: Mapping[str, str], ratio_bound: int) -> TraceIds:
    """The request's trace: the caller's (its ``traceparent`` decides sampling) or a new one,
    sampled when its low 64 bits fall under ``ratio_bound`` (``ratio_bound_of``): the SDK's
    ``parentbased_traceidratio`` rule, decided here because the spans are built at the end."""
    span_id = random.getrandbits(64) or 1
    header = headers.get("traceparent")
    parent = parse_traceparent(header) if header else None
    if parent is not None:
        trace_id, parent_id, sampled = parent
        state = headers.get("tracestate")
        return TraceIds(trace_id, span_id, parent_id, sampled, state[:512] if state else None)
    trace_id = random.getrandbits(128) or 1
    return TraceIds(trace_id, span_id, None, (trace_id & _ID_MASK) < ratio_bound)


def ratio_bound_of(ratio: float) -> int:
    """The bound ``start_trace`` compares a trace id's low 64 bits with (as ``TraceIdRatioBased``)."""
    return round(ratio * (1 << 64))


def add_outbound(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the current attempt's ``traceparent`` (and the caller's ``tracestate``)
    when the request is traced; the same dict otherwise."""
    trace = CURRENT.get()
    if trace is None:
        return headers
    out = {k: v for k, v in headers.items() if k.lower() not in ("traceparent", "tracestate")}
    out["traceparent"] = trace.traceparent()
    if trace.tracestate:
        out["tracestate"] = trace.tracestate
    return out


def log_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the request being handled, for log lines; None outside one."""
    trace = CURRENT.get()
    if trace is None:
        return None
    return f"{trace.trace_id:032x}", f"{trace.span_id:016x}"
