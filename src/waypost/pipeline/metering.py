"""Metering, the first stage: the request's tags, the price of what it used, and its audit row.

* ``before``: reads the request's tags (``X-Waypost-Tags: a,b`` or ``metadata.tags``), validated;
  with ``metering.unpriced: block`` refuses a model that has no price anywhere.
* ``account(ctx, usage)``: called by the data-plane path as soon as a request's usage is known
  (before its answer's last bytes leave, so the cost can ride in them): sets ``ctx.usage`` and
  ``ctx.cost`` and the serving attempt's share.
* ``after``: prices what an abandoned or failed request used, and hands the request's audit row,
  one row per upstream attempt and its labels (tags, groups) to the audit writer, which writes
  them off the hot path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import orjson

from waypost.core.context import Cost, RequestContext
from waypost.core.errors import BadRequest, GatewayError
from waypost.core.types import ChatRequest, Usage
from waypost.metering.masking import Masker
from waypost.metering.pricing import PriceBook
from waypost.pipeline.stage import After, BaseStage, Before
from waypost.routing.router import Router
from waypost.settings import AuditSettings, MeteringSettings

TAGS_HEADER = "x-waypost-tags"
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$")
UNPRICED = Cost(0, {}, False, "none")
NOTHING_USED = Cost(0, {}, True, "nothing used")


class AuditSink(Protocol):
    def record(self, request: dict[str, Any], attempts: Sequence[Row], labels: Sequence[Row]) -> None: ...


Row = dict[str, Any]
EMPTY_JSON_LIST = "[]"


def parse_tags(ctx: RequestContext, settings: MeteringSettings) -> tuple[str, ...]:
    """The request's tags, from the header and ``metadata.tags`` (a list or a comma-separated
    string), each once, in order. A 400 names what is wrong with them."""
    found: list[str] = []
    header = ctx.headers.get(TAGS_HEADER)
    if header is not None:
        found += [t.strip() for t in header.split(",") if t.strip()]
    body = ctx.body
    meta = body.get("metadata") if isinstance(body, dict) else None
    value = meta.get("tags") if isinstance(meta, dict) else None
    if value is not None:
        if isinstance(value, str):
            found += [t.strip() for t in value.split(",") if t.strip()]
        elif isinstance(value, list) and all(isinstance(t, str) for t in value):
            found += [t.strip() for t in value if t.strip()]
        else:
            raise BadRequest(
                "metadata.tags must be a list of strings or a comma-separated string.", param="metadata.tags"
            )
    if not found:
        return ()
    tags = tuple(dict.fromkeys(found))
    where = "X-Waypost-Tags / metadata.tags"
    if len(tags) > settings.max_tags:
        raise BadRequest(f"{where}: {len(tags)} tags, at most {settings.max_tags} are allowed.", param="tags")
    for tag in tags:
        if len(tag) > settings.max_tag_length:
            raise BadRequest(
                f"{where}: the tag {tag[:40]!r}... is {len(tag)} characters long, at most "
                f"{settings.max_tag_length} are allowed.",
                param="tags",
            )
        if not _TAG.match(tag):
            raise BadRequest(
                f"{where}: the tag {tag!r} has characters outside letters, digits and _ . : / @ + - "
                "(or does not start with a letter or digit).",
                param="tags",
            )
    return tags


class MeteringStage(BaseStage):
    name = "metering"

    def __init__(
        self,
        settings: MeteringSettings,
        audit_settings: AuditSettings,
        prices: PriceBook,
        router: Router,
        audit: AuditSink | None,
    ) -> None:
        self.settings = settings
        self.prices = prices
        self._router = router
        self._audit = audit if audit_settings.enabled else None
        self._bodies = audit_settings.log_bodies
        self._masker = Masker(audit_settings.mask_patterns) if audit_settings.log_bodies else None

    def before(self, ctx: RequestContext) -> Before:
        ctx.tags = parse_tags(ctx, self.settings)
        req = ctx.req
        if ctx.tags and isinstance(req, ChatRequest):
            # Tags are the gateway's: no upstream takes a list in metadata (OpenAI wants strings,
            # Anthropic only user_id), so they do not go on, in the canonical request or in the
            # client's body a same-format upstream would get.
            if "tags" in req.metadata:
                req.edit(metadata={k: v for k, v in req.metadata.items() if k != "tags"})
            passthrough = req.passthrough
            meta = passthrough.body.get("metadata") if passthrough is not None else None
            if passthrough is not None and isinstance(meta, dict) and "tags" in meta:
                rest = {k: v for k, v in meta.items() if k != "tags"}
                body = {k: v for k, v in passthrough.body.items() if k != "metadata"}
                req.passthrough = passthrough.with_body({**body, "metadata": rest} if rest else body)
        if self.settings.unpriced == "block" and req is not None:
            self._refuse_unpriced(req.model)
        return None

    def _refuse_unpriced(self, model: str) -> None:
        try:
            chain = self._router.registry.chain(model)
        except GatewayError:
            return  # the router gives the answer for a model that does not exist
        if chain and self.prices.quote(chain[0].settings, chain[0].upstream_model) is None:
            raise BadRequest(
                f"The model {model!r} has no price (not in its settings, its preset or the bundled "
                "catalogue), and this gateway refuses unpriced models (metering.unpriced: block).",
                param="model",
            )

    def account(self, ctx: RequestContext, usage: Usage) -> Cost:
        """Price ``usage`` for the upstream that served ``ctx`` (its usage so far, while a
        stream runs; the final figure when it ends)."""
        ctx.usage = usage
        cost = ctx.cost = self.price(ctx, usage, ctx.served)
        return cost

    def price(self, ctx: RequestContext, usage: Usage, served: Any) -> Cost:
        """The cost of ``usage`` on the deployment that ``served`` it, noted on the attempt that
        served (the latest one so far)."""
        if served is None:
            return NOTHING_USED
        dep = served.deployment
        cost = self.prices.cost(usage, self.prices.quote(dep.settings, dep.upstream_model), dep.provider)
        if ctx.attempts:
            attempt = ctx.attempts[-1]
            attempt.usage, attempt.cost_micros = usage, cost.total_micros
        return cost

    def after(self, ctx: RequestContext) -> After:
        if ctx.cost is None:
            if ctx.usage is not None:
                self.account(ctx, ctx.usage)
            else:  # failed before any upstream billed anything, or generated nothing (a count)
                ctx.cost = NOTHING_USED
        if self._audit is not None:
            self._audit.record(*self.rows(ctx))
        return None

    # -- the audit row ------------------------------------------------------------------------

    def rows(self, ctx: RequestContext) -> tuple[Row, tuple[Row, ...], tuple[Row, ...]]:
        """The request's row, its attempts' rows and its labels, keyed by column name, every
        column in the table's order (the writer then takes the values as they are).

        Every value is atomic (JSON columns as their JSON text, times as Unix times: both as
        ``store/usage_log.py`` takes them, which converts times a batch at a time): the audit
        writer holds a second's requests until it writes them, and a dict of atomic values is never
        tracked by the garbage collector, so collections do not walk them (only the two tuples
        that hold the attempts and the labels are)."""
        now = time.perf_counter()
        arrived = ctx.arrived_at  # times are Unix times: the writer converts them (in batches)
        principal = ctx.principal
        req = ctx.req
        served = ctx.served
        dep = served.deployment if served is not None else None
        usage = ctx.usage or Usage()
        cost = ctx.cost or UNPRICED
        err = ctx.error
        groups = principal.groups if principal is not None else ()
        dumps = orjson.dumps
        key = ctx.audit_id or ctx.request_id
        columns = usage_columns(usage)
        row: dict[str, Any] = {
            "request_id": key,
            "client_request_id": ctx.request_id if key != ctx.request_id else None,
            "created_at": arrived,
            "user_id": principal.user_id if principal is not None else None,
            "user_email": principal.email if principal is not None else None,
            "token_id": principal.token_id if principal is not None else None,
            "groups": dumps(list(groups)).decode() if groups else EMPTY_JSON_LIST,
            "tags": dumps(list(ctx.tags)).decode() if ctx.tags else EMPTY_JSON_LIST,
            "endpoint": ctx.endpoint,
            "client_format": ctx.client_format,
            "requested_model": req.model if req is not None else None,
            "model": dep.name if dep is not None else None,
            "provider": dep.provider if dep is not None else None,
            "upstream_model": dep.upstream_model if dep is not None else None,
            "stream": ctx.stream,
            "status": ctx.status,
            "error_class": type(err).__name__ if err is not None else None,
            "error_message": err.message[:2000] if err is not None else None,
            "attempts": len(ctx.attempts),
            "latency_ms": ctx.latency_ms(now),
            "ttft_ms": ctx.latency_ms(ctx.first_byte_at)
            if ctx.first_byte_at is not None and ctx.stream
            else None,
            **columns,
            "usage_estimated": ctx.counted_with is not None,
            "cost_micros": cost.total_micros,
            "cost_breakdown": dumps({**cost.breakdown, "source": cost.source}).decode(),
            "priced": cost.priced,
            "cache_status": ctx.cache_status,
            "rules": dumps(ctx.rules).decode() if ctx.rules else None,
            "client_ip": ctx.client_ip,
            "user_agent": (ctx.headers.get("user-agent") or "")[:512] or None,
            "request_body": None,
            "response_body": None,
            "saved_micros": ctx.saved_micros,
        }
        if self._masker is not None:
            row["request_body"] = self._masker.mask(_text(ctx.body))
            if ctx.response_body is not None:
                row["response_body"] = self._masker.mask(ctx.response_body.decode("utf-8", "replace"))
        attempts = tuple(
            [  # a list, not a generator: one attempt, usually
                {
                    "request_id": key,
                    "attempt": a.number,
                    "created_at": arrived + (a.started - ctx.started),
                    "model": a.model,
                    "provider": a.provider,
                    "upstream_model": a.upstream_model,
                    "status": a.status,
                    "error_class": a.error if a.ended is not None else (a.error or "Cancelled"),
                    "latency_ms": round(((a.ended or now) - a.started) * 1000, 2),
                    # The attempt that served usually has the request's own usage: its columns again.
                    **(columns if a.usage is usage else usage_columns(a.usage or Usage())),
                    "cost_micros": a.cost_micros,
                }
                for a in ctx.attempts
            ]
        )
        if not ctx.tags and not groups:
            return row, attempts, ()
        labels = tuple(
            {"request_id": key, "kind": kind, "value": value, "created_at": arrived}
            for kind, values in (("tag", ctx.tags), ("group", groups))
            if values
            for value in _unique(values)
        )
        return row, attempts, labels


def usage_columns(usage: Usage) -> dict[str, int]:
    """The audit columns of a usage: input is the uncached part (cache reads and writes have
    their own columns), output includes reasoning."""
    return {
        "input_tokens": max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens),
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _unique(values: Iterable[str]) -> list[str]:
    """Each value once, cut to the column's 128 characters."""
    return list(dict.fromkeys([v[:128] for v in values]))


def _text(body: Any) -> str:
    return orjson.dumps(body).decode() if body is not None else ""
