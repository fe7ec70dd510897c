"""The query parameters of the usage and audit-log endpoints, checked one by one.

Every parameter is checked before any query runs: an unknown name, a grouping or sort key outside
its list, a malformed time or cursor is a 400 whose message and ``param`` name the parameter.
Grouping and sort keys pick from fixed lists in the store; filter values only ever become bound
parameters.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime

from starlette.requests import Request

from waypost.core.errors import BadRequest
from waypost.store.usage_reports import GROUP_KEYS, METRICS, PERIODS, LogCursor, UsageFilter

FILTERS = ("from", "to", "user", "group", "model", "provider", "token", "tag")
LOG_FILTERS = (*FILTERS, "endpoint", "status")
AUDIT_FILTERS = (*LOG_FILTERS, "min_cost_usd", "min_latency_ms")  # the audit log's listing only
MAX_VALUES = 100  # values of one filter
MAX_VALUE_LENGTH = 320  # an e-mail address at most
MAX_GROUP_KEYS = 3
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def only(request: Request, allowed: Collection[str]) -> None:
    """400 for a query parameter this endpoint does not take (a misspelt filter would otherwise be
    ignored, and the answer would silently cover more than was asked)."""
    for name in request.query_params:
        if name not in allowed:
            raise BadRequest(
                f"{_shown(name)}: unknown parameter; this endpoint takes {', '.join(allowed)}",
                param=_shown(name),
            )


def _shown(text: str, limit: int = 64) -> str:
    """A caller's text quoted back, cut short and without control characters."""
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[:limit] + "..."


def values(name: str, given: Sequence[str] | None) -> tuple[str, ...]:
    """A repeatable filter's values, each non-empty, printable and of bounded length."""
    if not given:
        return ()
    if len(given) > MAX_VALUES:
        raise BadRequest(f"{name}: at most {MAX_VALUES} values", param=name)
    out = []
    for raw in given:
        value = raw.strip()
        if not value:
            raise BadRequest(f"{name}: empty value", param=name)
        if len(value) > MAX_VALUE_LENGTH or _CONTROL.search(value):
            raise BadRequest(
                f"{name}: {_shown(value)!r} is not a valid value (printable, at most "
                f"{MAX_VALUE_LENGTH} characters)",
                param=name,
            )
        out.append(value)
    return tuple(dict.fromkeys(out))


def ids(name: str, given: Sequence[str] | None) -> tuple[int, ...]:
    out = []
    for value in values(name, given):
        if not value.isascii() or not value.isdigit() or not 0 < int(value) < 2**63:
            raise BadRequest(f"{name}: {_shown(value)!r} is not an id (a positive integer)", param=name)
        out.append(int(value))
    return tuple(out)


def moment(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when it has no offset)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name}: {_shown(text)!r} is not an ISO 8601 date or date-time "
            "(e.g. 2026-03-01 or 2026-03-01T12:00:00Z)",
            param=name,
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def narrowed(
    where: UsageFilter,
    endpoint: Sequence[str] | None,
    status: Sequence[str] | None,
    min_cost_usd: float | None = None,
    min_latency_ms: float | None = None,
) -> UsageFilter:
    """``where`` further limited to some endpoints and statuses, and to requests that cost or took
    at least so much (the audit-log listing's filters)."""
    codes, outcomes = _statuses(status)
    return dataclasses.replace(
        where,
        endpoints=values("endpoint", endpoint),
        statuses=codes,
        outcome=outcomes[0] if len(outcomes) == 1 else None,
        min_cost_micros=round(min_cost_usd * 1_000_000) if min_cost_usd is not None else None,
        min_latency_ms=min_latency_ms,
    )


def usage_filter(
    *,
    start: str | None,
    end: str | None,
    user: Sequence[str] | None = None,
    group: Sequence[str] | None = None,
    model: Sequence[str] | None = None,
    provider: Sequence[str] | None = None,
    token: Sequence[str] | None = None,
    tag: Sequence[str] | None = None,
    endpoint: Sequence[str] | None = None,
    status: Sequence[str] | None = None,
) -> UsageFilter:
    first, last = moment("from", start), moment("to", end)
    if first is not None and last is not None and last <= first:
        raise BadRequest("to: must be later than from (the range is from <= time < to)", param="to")
    codes, outcomes = _statuses(status)
    return UsageFilter(
        start=first,
        end=last,
        users=tuple(u.lower() for u in values("user", user)),
        groups=values("group", group),
        models=values("model", model),
        providers=values("provider", provider),
        tokens=ids("token", token),
        tags=values("tag", tag),
        endpoints=values("endpoint", endpoint),
        statuses=codes,
        outcome=outcomes[0] if len(outcomes) == 1 else None,  # both "ok" and "error": any
    )


def _statuses(given: Sequence[str] | None) -> tuple[tuple[int, ...], list[str]]:
    codes, outcomes = [], []
    for value in values("status", given):
        if value in ("ok", "error"):
            outcomes.append(value)
        elif value.isascii() and value.isdigit() and 100 <= int(value) <= 599:
            codes.append(int(value))
        else:
            raise BadRequest(
                f"status: {_shown(value)!r} is not ok, error or an HTTP status code", param="status"
            )
    return tuple(codes), outcomes


def group_keys(given: Sequence[str] | None, allowed: Sequence[str] = GROUP_KEYS) -> list[str]:
    """``group_by``, repeated or comma-separated: known keys, no repeats, one time period at most."""
    keys: list[str] = []
    for raw in given or ():
        for part in raw.split(","):
            key = part.strip()
            if key not in allowed:
                raise BadRequest(
                    f"group_by: {_shown(key)!r} is not a grouping key; valid keys: {', '.join(allowed)}",
                    param="group_by",
                )
            if key in keys:
                raise BadRequest(f"group_by: {key!r} is given twice", param="group_by")
            keys.append(key)
    if len(keys) > MAX_GROUP_KEYS:
        raise BadRequest(f"group_by: at most {MAX_GROUP_KEYS} keys", param="group_by")
    if len([k for k in keys if k in PERIODS]) > 1:
        raise BadRequest("group_by: at most one of day, week and month", param="group_by")
    return keys


def sort_key(value: str | None, keys: Iterable[str], metrics: Sequence[str] = METRICS) -> str | None:
    if value is None:
        return None
    allowed = [*metrics, *keys]
    if value not in allowed:
        raise BadRequest(
            f"sort: {_shown(value)!r} is not something these rows have; valid: {', '.join(allowed)}",
            param="sort",
        )
    return value


def descending(order: str | None, sort: str | None, metrics: Sequence[str] = METRICS) -> bool:
    """``order`` asc|desc; by default a metric sorts largest first and a key in ascending order."""
    if order is None:
        return sort in metrics
    if order not in ("asc", "desc"):
        raise BadRequest(f"order: {_shown(order)!r} is neither asc nor desc", param="order")
    return order == "desc"


def encode_cursor(cursor: LogCursor) -> str:
    raw = json.dumps([cursor.created_at.isoformat(), cursor.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str | None) -> LogCursor | None:
    """The position an earlier page's ``next_cursor`` names (400 for anything else)."""
    if value is None:
        return None
    invalid = BadRequest(
        "cursor: not a cursor this endpoint returned (use next_cursor as given)", param="cursor"
    )
    if len(value) > 200:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        created, row_id = json.loads(raw)
        when = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError):
        raise invalid from None
    if type(row_id) is not int or row_id < 0 or when.tzinfo is None:
        raise invalid
    return LogCursor(when.astimezone(UTC), row_id)
