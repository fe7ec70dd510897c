"""The SDK tracer's id generator for spans built after the fact (``tracing.Tracing``): it hands
out the ids chosen when the request arrived, which its upstream calls already carried. Imported
only when tracing is on, since it loads the OpenTelemetry SDK."""

from __future__ import annotations

import random

from opentelemetry.sdk.trace.id_generator import IdGenerator


class PresetIds(IdGenerator):
    """Returns the ids ``preset`` set, once each (random ones otherwise). Spans are built
    synchronously, one request at a time, so the preset is never another span's."""

    def __init__(self) -> None:
        self._trace_id = 0
        self._span_id = 0

    def preset(self, trace_id: int, span_id: int) -> None:
        self._trace_id, self._span_id = trace_id, span_id

    def generate_span_id(self) -> int:
        span_id, self._span_id = self._span_id, 0
        return span_id or random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        trace_id, self._trace_id = self._trace_id, 0
        return trace_id or random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        # Random, but the flag would make the spans' flags (03) differ from the ``traceparent``
        # the upstream calls carried (01), which predates W3C trace context level 2.
        return False
