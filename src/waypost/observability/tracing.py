"""OpenTelemetry traces and the GenAI client metrics, exported over OTLP (docs/operations.md,
"Traces"). Off by default (``tracing.enabled``); then the data-plane path pays one attribute
check per request, and the SDK is never imported (only the light OpenTelemetry API is).

The spans are not opened around the hot code: the request's ids are chosen when it arrives
(``tracing_context.start_trace``; the router adds one per upstream attempt, so the attempt's
``traceparent`` names the span it will have), and once the request is over its spans are built
from the ``RequestContext`` and its attempt records, with their real start and end times, by an
SDK tracer whose id generator hands out those ids. The SDK's batch processor exports them from
its own thread; the metrics reader likewise.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from waypost import __version__
from waypost.core.context import Attempt, RequestContext
from waypost.observability import tracing_attributes as attributes
from waypost.observability.tracing_context import CURRENT, ratio_bound_of, start_trace
from waypost.settings import ConfigError, TracingSettings

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from waypost.observability.tracing_attributes import Mask
    from waypost.observability.tracing_ids import PresetIds

log = logging.getLogger("waypost.tracing")

# The registry version of the pinned semantic conventions (opentelemetry-semantic-conventions 0.66b2).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
# The conventions' advised histogram buckets for the GenAI client metrics.
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
TOKEN_BUCKETS = [4**i for i in range(14)]  # 1, 4, 16, ... 67108864


class Tracing:
    """The app's tracer and meters (``Container.tracing``); ``enabled`` False when off."""

    def __init__(self, settings: TracingSettings | None = None, mask: Mask | None = None) -> None:
        self.enabled = settings is not None and settings.enabled
        self._mask = mask  # set when bodies may go into spans (audit.log_bodies)
        self._bound = ratio_bound_of(settings.sample_ratio) if settings is not None else 0
        self._tracer: Tracer | None = None
        self._ids: PresetIds | None = None
        self._traces: TracerProvider | None = None
        self._meters: MeterProvider | None = None
        self._duration: Histogram | None = None
        self._tokens: Histogram | None = None
        if settings is not None and self.enabled:
            self._build(settings)

    def _build(self, settings: TracingSettings) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from waypost.observability.tracing_ids import PresetIds

        span_exporter, metric_exporter = exporters(settings)
        # Each worker process exports its own cumulative metrics: its own instance id keeps their
        # series apart at the collector.
        resource = Resource.create(
            {
                "service.name": settings.service_name,
                "service.version": __version__,
                "service.instance.id": str(uuid.uuid4()),
            }
        )
        self._ids = PresetIds()
        self._traces = TracerProvider(resource=resource, id_generator=self._ids)
        self._traces.add_span_processor(BatchSpanProcessor(span_exporter))
        self._tracer = self._traces.get_tracer("waypost", __version__, schema_url=SCHEMA_URL)
        if settings.metrics:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            reader = PeriodicExportingMetricReader(
                metric_exporter, export_interval_millis=settings.metrics_interval * 1000
            )
            self._meters = MeterProvider(resource=resource, metric_readers=[reader])
            meter = self._meters.get_meter("waypost", __version__, schema_url=SCHEMA_URL)
            self._duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
            self._tokens = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            )

    def begin(self, ctx: RequestContext) -> None:
        """The request arrived: its trace ids, for its upstream calls and its log lines."""
        ctx.trace = start_trace(ctx.headers, self._bound)
        CURRENT.set(ctx.trace)

    def end(self, ctx: RequestContext, route: str) -> None:
        """The request is over: its metrics, and its spans when sampled. Never raises."""
        CURRENT.set(None)
        ended = time.perf_counter()
        try:
            if self._duration is not None:
                self._record_metrics(ctx, ended)
            if ctx.trace is not None and ctx.trace.sampled:
                self._build_spans(ctx, route, ended)
        except Exception:
            log.exception("could not record the request's trace", extra={"request_id": ctx.request_id})

    def _record_metrics(self, ctx: RequestContext, ended: float) -> None:
        assert self._duration is not None and self._tokens is not None
        served = attributes.served_attempt(ctx)
        trace = ctx.trace
        assert trace is not None
        for attempt, provider in zip(ctx.attempts, trace.attempt_providers, strict=False):
            is_served = attempt is served
            attrs = attributes.metric_attributes(ctx, attempt, provider, is_served)
            self._duration.record(attempt_end(ctx, attempt, is_served, ended) - attempt.started, attrs)
            usage = (attempt.usage or ctx.usage) if is_served else None
            if usage is not None:
                self._tokens.record(usage.input_tokens, {**attrs, attributes.TOKEN_TYPE: "input"})
                self._tokens.record(usage.output_tokens, {**attrs, attributes.TOKEN_TYPE: "output"})

    def _build_spans(self, ctx: RequestContext, route: str, ended: float) -> None:
        trace, tracer, ids = ctx.trace, self._tracer, self._ids
        assert trace is not None and tracer is not None and ids is not None

        def ns(at: float) -> int:  # a perf_counter() reading as Unix nanoseconds
            return int((ctx.arrived_at + (at - ctx.started)) * 1e9)

        parent = Context()
        if trace.parent_id is not None:
            state = TraceState.from_header([trace.tracestate]) if trace.tracestate else None
            remote = SpanContext(trace.trace_id, trace.parent_id, True, TraceFlags(1), state)
            parent = set_span_in_context(NonRecordingSpan(remote))
        operation = attributes.operation_of(ctx)
        ids.preset(trace.trace_id, trace.span_id)
        span = tracer.start_span(
            attributes.span_name(operation, attributes.request_model(ctx)),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes.request_attributes(ctx, route, self._mask),
            start_time=ns(ctx.started),
        )
        inside = set_span_in_context(span)
        served = attributes.served_attempt(ctx)
        for attempt, span_id, provider in zip(
            ctx.attempts, trace.attempt_ids, trace.attempt_providers, strict=False
        ):
            is_served = attempt is served
            ids.preset(trace.trace_id, span_id)
            child = tracer.start_span(
                attributes.span_name(operation, attempt.upstream_model),
                context=inside,
                kind=SpanKind.CLIENT,
                attributes=attributes.attempt_attributes(ctx, attempt, provider, is_served),
                start_time=ns(attempt.started),
            )
            if attempt.error is not None or attempt.ended is None:
                child.set_status(Status(StatusCode.ERROR, attempt.error or "Cancelled"))
            child.end(end_time=ns(attempt_end(ctx, attempt, is_served, ended)))
        if ctx.status >= 500:  # a server span's 4xx is the caller's error, not ours
            span.set_status(Status(StatusCode.ERROR, type(ctx.error).__name__ if ctx.error else None))
        span.end(end_time=ns(ended))

    async def stop(self) -> None:
        """Export what is still buffered (spans, the last metrics) and stop the exporters."""
        if self._traces is not None:
            await asyncio.to_thread(self._traces.shutdown)
        if self._meters is not None:
            await asyncio.to_thread(self._meters.shutdown)


def attempt_end(ctx: RequestContext, attempt: Attempt, served: bool, ended: float) -> float:
    """When an attempt ended: a served stream's attempt lasts until the stream did (its record
    ends when the stream opened); one cut off by the request's end, then."""
    if attempt.ended is None or (served and ctx.stream):
        return ended
    return attempt.ended


def exporters(settings: TracingSettings) -> tuple[Any, Any]:
    """The span and metric exporters of ``settings.protocol``."""
    headers = dict(settings.headers)
    if settings.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                "tracing.protocol: grpc needs the opentelemetry-exporter-otlp-proto-grpc package, which "
                "is not installed; install it or use http/protobuf"
            ) from None
        grpc_headers = tuple((k.lower(), v) for k, v in headers.items())
        return (
            GrpcSpanExporter(endpoint=settings.endpoint, headers=grpc_headers, timeout=int(settings.timeout)),
            GrpcMetricExporter(
                endpoint=settings.endpoint, headers=grpc_headers, timeout=int(settings.timeout)
            ),
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return (
        OTLPSpanExporter(
            endpoint=f"{settings.endpoint}/v1/traces", headers=headers, timeout=settings.timeout
        ),
        OTLPMetricExporter(
            endpoint=f"{settings.endpoint}/v1/metrics", headers=headers, timeout=settings.timeout
        ),
    )
