"""W3C trace context and the ``tracing`` settings (docs/operations.md, "Traces";
docs/configuration.md): which ``traceparent`` a caller may send, how requests are sampled, and a
bad section refused at start with a message naming the key."""

from __future__ import annotations

import importlib.util

import pytest

from tests.harness import model, settings
from waypost.app import create_app
from waypost.observability.tracing_context import parse_traceparent, ratio_bound_of, start_trace
from waypost.settings import ConfigError, Settings, load_settings

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def test_a_valid_traceparent_gives_its_ids_and_sampled_flag() -> None:
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == (int(TRACE, 16), int(SPAN, 16), True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == (int(TRACE, 16), int(SPAN, 16), False)
    # A later version may add fields; the first four still count.
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-03-extra") == (int(TRACE, 16), int(SPAN, 16), True)


@pytest.mark.parametrize(
    "value",
    [
        f"ff-{TRACE}-{SPAN}-01",  # the forbidden version
        f"00-{'0' * 32}-{SPAN}-01",  # no trace
        f"00-{TRACE}-{'0' * 16}-01",  # no parent
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has four fields
        f"00-{TRACE[:-1]}-{SPAN}-01",
        "not a traceparent",
        "",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None


def test_the_callers_decision_wins_over_the_ratio() -> None:
    sampled = start_trace({"traceparent": f"00-{TRACE}-{SPAN}-01"}, ratio_bound_of(0.0))
    assert sampled.sampled and sampled.trace_id == int(TRACE, 16) and sampled.parent_id == int(SPAN, 16)
    refused = start_trace({"traceparent": f"00-{TRACE}-{SPAN}-00"}, ratio_bound_of(1.0))
    assert not refused.sampled


def test_a_new_trace_is_sampled_by_the_ratio() -> None:
    assert all(start_trace({}, ratio_bound_of(1.0)).sampled for _ in range(200))
    assert not any(start_trace({}, ratio_bound_of(0.0)).sampled for _ in range(200))
    assert {start_trace({}, ratio_bound_of(0.0)).trace_id for _ in range(50)}.__len__() == 50


def test_each_attempt_has_its_own_span_id_in_its_traceparent() -> None:
    trace = start_trace({"traceparent": f"00-{TRACE}-{SPAN}-01"}, 0)
    assert trace.traceparent() == f"00-{TRACE}-{trace.span_id:016x}-01"
    trace.begin_attempt("openai")
    trace.begin_attempt("groq")
    first, second = trace.attempt_ids
    assert first != second
    assert trace.traceparent() == f"00-{TRACE}-{second:016x}-01"


def test_tracing_is_off_by_default() -> None:
    assert Settings().tracing.enabled is False


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"endpoint": "collector:4318"}, "tracing.endpoint"),
        ({"protocol": "thrift"}, "tracing.protocol"),
        ({"sample_ratio": 1.5}, "tracing.sample_ratio"),
        ({"sampling": 0.5}, "tracing.sampling"),
    ],
)
def test_a_bad_tracing_section_is_refused_naming_the_key(
    tmp_path: pytest.TempPathFactory, section: dict[str, object], key: str
) -> None:
    import yaml

    path = tmp_path / "waypost.yaml"  # type: ignore[operator]
    path.write_text(yaml.safe_dump({"tracing": {"enabled": True, **section}}))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(path, environ={})


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None,
    reason="the grpc exporter is installed here",
)
def test_grpc_without_its_exporter_package_stops_the_start_naming_the_package() -> None:
    config = settings(model("m", "mock"), tracing={"enabled": True, "protocol": "grpc"})
    with pytest.raises(ConfigError, match="opentelemetry-exporter-otlp-proto-grpc"):
        create_app(config, configure_logs=False)
