"""The ``tracing`` settings section: OpenTelemetry traces and the GenAI client metrics, sent to an
OTLP collector (docs/operations.md, "Traces"; every key in docs/configuration.md).
``waypost.settings`` re-exports it: import it from there."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from waypost.settings_metering import _Strict


class TracingSettings(_Strict):
    enabled: bool = False
    # The collector's OTLP base URL: ``/v1/traces`` and ``/v1/metrics`` are appended (http/protobuf).
    endpoint: str = "http://127.0.0.1:4318"
    # grpc needs the ``opentelemetry-exporter-otlp-proto-grpc`` package, which Waypost does not install.
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    # Sent with every export, e.g. ``authorization: env://OTLP_TOKEN``.
    headers: dict[str, str] = Field(default_factory=dict)
    service_name: str = Field("waypost", min_length=1)
    # Of the requests that arrive without a sampled parent, the share traced (by trace id, so
    # replicas agree); a caller's ``traceparent`` decides for its own requests.
    sample_ratio: float = Field(1.0, ge=0, le=1)
    # gen_ai.client.operation.duration and gen_ai.client.token.usage, every request (not sampled).
    metrics: bool = True
    metrics_interval: float = Field(60.0, gt=0, le=3600)  # seconds between metric exports
    timeout: float = Field(10.0, gt=0, le=120)  # seconds for one export

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"must be an http:// or https:// URL, not {value!r}")
        return value.rstrip("/")
