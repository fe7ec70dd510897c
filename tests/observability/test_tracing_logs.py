"""Trace ids in the logs (docs/operations.md, "Traces"): the access-log line of a traced request,
and every JSON log line written while it is handled, name its trace and its request span."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import access_line
from tests.observability.otlp_receiver import OtlpReceiver
from tests.observability.tracing_gateway import CALLER_SPAN, CALLER_TRACE, chat, receiver, traced_gateway
from waypost.observability.logging import JsonFormatter

__all__ = ["receiver"]  # a fixture


@pytest.fixture
def router_log() -> Iterator[io.StringIO]:
    """The router's log lines, in the gateway's JSON format."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("waypost.router")
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


async def test_the_access_line_names_the_trace_and_the_request_span(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream, capfd: pytest.CaptureFixture[str]
) -> None:
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    async with traced_gateway(receiver, openai_upstream, logging={"level": "info"}) as gateway:
        resp = await chat(gateway.url, caller)
        assert resp.status_code == 200
        line = await access_line(capfd, resp.headers["x-request-id"])
    (server,) = receiver.server_spans()
    assert line["trace_id"] == CALLER_TRACE == server.trace_id
    assert line["span_id"] == server.span_id


async def test_a_log_line_written_during_a_traced_request_names_its_trace(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream, router_log: io.StringIO
) -> None:
    openai_upstream.enqueue(Reply(status=503), Reply(text="ok"))
    async with traced_gateway(receiver, openai_upstream, retries=1) as gateway:
        assert (await chat(gateway.url)).status_code == 200
    (server,) = receiver.server_spans()
    lines = [json.loads(line) for line in router_log.getvalue().splitlines()]
    failed = [line for line in lines if line["msg"] == "upstream attempt failed"]
    assert failed and failed[0]["trace_id"] == server.trace_id
    assert failed[0]["span_id"] == server.span_id


def test_a_log_line_outside_any_request_has_no_trace_id() -> None:
    record = logging.makeLogRecord({"name": "waypost.test", "msg": "hello", "levelname": "INFO"})
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


async def test_a_json_log_line_keeps_user_strings_escaped_and_upstream_keys_redacted(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream, router_log: io.StringIO
) -> None:
    forged = 'x"}\n{"level":"error","msg":"forged'
    openai_upstream.enqueue(Reply(status=500, error_message=f"{forged} key {openai_upstream.api_key}"))
    async with traced_gateway(receiver, openai_upstream) as gateway:
        assert (await chat(gateway.url)).status_code >= 500
    lines = router_log.getvalue().splitlines()
    assert len(lines) == 1  # the upstream's newline did not start a line of its own
    line = json.loads(lines[0])
    assert forged in line["detail"]
    assert openai_upstream.api_key is not None and openai_upstream.api_key not in line["detail"]
    assert "[redacted]" in line["detail"]
