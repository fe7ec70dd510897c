"""A loopback OTLP/HTTP receiver: what a collector would get from the gateway, decoded with the
OpenTelemetry protocol's own protobuf classes (``opentelemetry-proto``)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests.fakes.base import LoopbackServer

SERVER = ProtoSpan.SpanKind.SPAN_KIND_SERVER
CLIENT = ProtoSpan.SpanKind.SPAN_KIND_CLIENT


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class Span:
    name: str
    kind: int
    trace_id: str  # hex, as in a traceparent
    span_id: str
    parent_span_id: str  # "" for a root span
    start: int  # Unix nanoseconds
    end: int
    attributes: dict[str, Any]
    error: bool
    resource: dict[str, Any]
    schema_url: str


@dataclass
class Point:
    metric: str
    unit: str
    attributes: dict[str, Any]
    count: int
    total: float


class OtlpReceiver(LoopbackServer):
    """Accepts ``/v1/traces`` and ``/v1/metrics`` like a collector; keeps what it decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[Span] = []
        self.points: list[Point] = []
        self.headers: list[dict[str, str]] = []

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        return await self._listen(app)

    async def _body(self, request: web.Request) -> bytes:
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        data = await request.read()
        return gzip.decompress(data) if request.headers.get("content-encoding") == "gzip" else data

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await self._body(request))
        for resource_spans in export.resource_spans:
            resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    self.spans.append(
                        Span(
                            name=s.name,
                            kind=s.kind,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            start=s.start_time_unix_nano,
                            end=s.end_time_unix_nano,
                            attributes={a.key: value_of(a.value) for a in s.attributes},
                            error=s.status.code == s.status.STATUS_CODE_ERROR,
                            resource=resource,
                            schema_url=scope_spans.schema_url,
                        )
                    )
        return self._ok(ExportTraceServiceResponse().SerializeToString())

    async def _metrics(self, request: web.Request) -> web.Response:
        export = ExportMetricsServiceRequest.FromString(await self._body(request))
        for resource_metrics in export.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.WhichOneof("data") != "histogram":
                        continue
                    for p in metric.histogram.data_points:
                        self.points.append(
                            Point(
                                metric=metric.name,
                                unit=metric.unit,
                                attributes={a.key: value_of(a.value) for a in p.attributes},
                                count=p.count,
                                total=p.sum,
                            )
                        )
        return self._ok(ExportMetricsServiceResponse().SerializeToString())

    @staticmethod
    def _ok(body: bytes) -> web.Response:
        return web.Response(body=body, content_type="application/x-protobuf")

    def server_spans(self) -> list[Span]:
        return [s for s in self.spans if s.kind == SERVER]

    def children_of(self, parent: Span) -> list[Span]:
        found = [s for s in self.spans if s.parent_span_id == parent.span_id]
        return sorted(found, key=lambda s: s.start)
