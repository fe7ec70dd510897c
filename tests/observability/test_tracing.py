"""OpenTelemetry traces of real requests (docs/operations.md, "Traces"): a gateway with tracing on,
in front of a fake upstream, exports to a loopback OTLP/HTTP receiver; what it receives is decoded
with the protocol's own protobuf classes. The gateway's stop flushes what is still buffered."""

from __future__ import annotations

import httpx

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, running, settings
from tests.observability import genai_registry
from tests.observability.otlp_receiver import CLIENT, OtlpReceiver, Span
from tests.observability.tracing_gateway import (
    CALLER_SPAN,
    CALLER_TRACE,
    PROMPT,
    chat,
    receiver,
    traced_gateway,
)

__all__ = ["receiver"]  # a fixture


def only_server_span(receiver: OtlpReceiver) -> Span:
    spans = receiver.server_spans()
    assert len(spans) == 1, spans
    return spans[0]


def texts(span: Span) -> str:
    return " ".join(str(v) for v in span.attributes.values())


async def test_a_request_is_a_server_span_with_a_client_span_for_its_upstream_call(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(
        Reply(
            text="pineapples are fine",
            input_tokens=40,
            output_tokens=9,
            cache_read_tokens=16,
            reasoning_tokens=3,
        )
    )
    async with traced_gateway(receiver, openai_upstream) as gateway:
        resp = await chat(gateway.url, max_tokens=50, temperature=0.5, top_p=0.9)
        assert resp.status_code == 200
    server = only_server_span(receiver)
    assert server.name == "chat gpt-test"
    assert server.parent_span_id == ""
    assert server.resource["service.name"] == "waypost-test"
    assert server.resource["service.instance.id"]  # one per worker process: their metrics stay apart
    (attempt,) = receiver.children_of(server)
    assert attempt.kind == CLIENT
    assert attempt.name == "chat gpt-4o-mini"
    assert attempt.trace_id == server.trace_id
    assert server.start <= attempt.start <= attempt.end <= server.end
    for span in (server, attempt):
        attrs = span.attributes
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert "gen_ai.system" not in attrs
        assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.usage.input_tokens"] == 40  # cached tokens included
        assert attrs["gen_ai.usage.output_tokens"] == 9
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 16
        assert attrs["gen_ai.usage.reasoning.output_tokens"] == 3
        assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
        assert attrs["gen_ai.request.max_tokens"] == 50
        assert attrs["gen_ai.request.temperature"] == 0.5
        assert attrs["gen_ai.request.top_p"] == 0.9
        assert not span.error
    assert server.attributes["gen_ai.request.model"] == "gpt-test"  # what the caller asked for
    assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-mini"  # what the upstream was asked
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["waypost.request_id"] == resp.headers["x-request-id"]


async def test_a_preset_is_named_as_the_provider_it_stands_for(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    async with traced_gateway(receiver, openai_upstream, provider="mistral") as gateway:
        assert (await chat(gateway.url)).status_code == 200
    server = only_server_span(receiver)
    (attempt,) = receiver.children_of(server)
    assert server.attributes["gen_ai.provider.name"] == "mistral_ai"
    assert attempt.attributes["gen_ai.provider.name"] == "mistral_ai"
    metric = next(p for p in receiver.points if p.metric == "gen_ai.client.operation.duration")
    assert metric.attributes["gen_ai.provider.name"] == "mistral_ai"


async def test_the_upstream_gets_the_attempt_span_as_its_parent(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    async with traced_gateway(receiver, openai_upstream) as gateway:
        assert (await chat(gateway.url)).status_code == 200
    server = only_server_span(receiver)
    (attempt,) = receiver.children_of(server)
    sent = openai_upstream.last.headers["traceparent"]
    assert sent == f"00-{server.trace_id}-{attempt.span_id}-01"


async def test_a_callers_traceparent_is_the_parent_of_the_request_span(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=opaque"}
    async with traced_gateway(receiver, openai_upstream) as gateway:
        assert (await chat(gateway.url, caller)).status_code == 200
    server = only_server_span(receiver)
    assert server.trace_id == CALLER_TRACE
    assert server.parent_span_id == CALLER_SPAN
    upstream = openai_upstream.last.headers
    assert upstream["traceparent"].split("-")[1] == CALLER_TRACE
    assert upstream["tracestate"] == "vendor=opaque"


async def test_a_caller_that_does_not_sample_gets_no_spans_but_its_trace_goes_on(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    caller = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}
    async with traced_gateway(receiver, openai_upstream) as gateway:
        assert (await chat(gateway.url, caller)).status_code == 200
    assert receiver.spans == []
    traceparent = openai_upstream.last.headers["traceparent"]
    assert traceparent.startswith(f"00-{CALLER_TRACE}-") and traceparent.endswith("-00")


async def test_requests_left_out_by_the_sample_ratio_still_count_in_the_metrics(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    async with traced_gateway(receiver, openai_upstream, tracing={"sample_ratio": 0}) as gateway:
        assert (await chat(gateway.url)).status_code == 200
    assert receiver.spans == []
    assert openai_upstream.last.headers["traceparent"].endswith("-00")
    durations = [p for p in receiver.points if p.metric == "gen_ai.client.operation.duration"]
    assert sum(p.count for p in durations) == 1


async def test_a_malformed_traceparent_starts_a_new_trace(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    async with traced_gateway(receiver, openai_upstream) as gateway:
        resp = await chat(gateway.url, {"traceparent": f"00-{'0' * 32}-{CALLER_SPAN}-01"})
        assert resp.status_code == 200
    server = only_server_span(receiver)
    assert server.parent_span_id == ""
    assert server.trace_id != "0" * 32


async def test_a_retry_is_a_second_attempt_span_and_each_call_names_its_own(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=503), Reply(text="second time lucky"))
    async with traced_gateway(receiver, openai_upstream, retries=1) as gateway:
        assert (await chat(gateway.url)).status_code == 200
    server = only_server_span(receiver)
    failed, served = receiver.children_of(server)
    assert failed.error and failed.attributes["error.type"] == "Overloaded"
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["waypost.attempt"] == 1
    assert "gen_ai.usage.input_tokens" not in failed.attributes
    assert not served.error and "error.type" not in served.attributes
    assert served.attributes["waypost.attempt"] == 2
    assert failed.end <= served.start
    sent = [r.headers["traceparent"] for r in openai_upstream.requests]
    assert sent == [f"00-{server.trace_id}-{failed.span_id}-01", f"00-{server.trace_id}-{served.span_id}-01"]
    assert not server.error


async def test_a_stream_has_its_time_to_first_chunk_and_its_usage(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(text="one two three four", input_tokens=12, output_tokens=4))
    async with traced_gateway(receiver, openai_upstream) as gateway:
        resp = await chat(gateway.url, stream=True, stream_options={"include_usage": True})
        assert resp.status_code == 200 and "[DONE]" in resp.text
    server = only_server_span(receiver)
    (attempt,) = receiver.children_of(server)
    for span in (server, attempt):
        assert span.attributes["gen_ai.request.stream"] is True
        assert span.attributes["gen_ai.usage.input_tokens"] == 12
        assert span.attributes["gen_ai.usage.output_tokens"] == 4
        assert span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    # The attempt lasts as long as its stream, not just until it opened.
    assert attempt.attributes["gen_ai.response.time_to_first_chunk"] * 1e9 <= attempt.end - attempt.start
    assert PROMPT not in texts(server) and "one two three" not in texts(server)


async def test_an_anthropic_caller_gets_the_same_spans_through_translation(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(text="hello", input_tokens=11, output_tokens=2, finish_reason="length"))
    async with traced_gateway(receiver, openai_upstream) as gateway, httpx.AsyncClient(timeout=30) as client:
        resp = await client.post(
            f"{gateway.url}/v1/messages",
            json={"model": "gpt-test", "max_tokens": 2, "messages": [{"role": "user", "content": PROMPT}]},
            headers={"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"},
        )
        assert resp.status_code == 200
    server = only_server_span(receiver)
    assert server.attributes["http.route"] == "/v1/messages"
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.response.finish_reasons"] == ["length"]
    assert server.attributes["gen_ai.usage.input_tokens"] == 11
    assert server.attributes["gen_ai.response.model"] == "gpt-4o-mini"


async def test_an_embeddings_request_is_an_embeddings_operation(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    async with traced_gateway(receiver, openai_upstream) as gateway, httpx.AsyncClient(timeout=30) as client:
        resp = await client.post(
            f"{gateway.url}/v1/embeddings",
            json={"model": "gpt-test", "input": PROMPT},
            headers={"authorization": f"Bearer {GATEWAY_KEY}"},
        )
        assert resp.status_code == 200, resp.text
    server = only_server_span(receiver)
    (attempt,) = receiver.children_of(server)
    assert server.name == "embeddings gpt-test"
    assert attempt.attributes["gen_ai.operation.name"] == "embeddings"
    assert PROMPT not in texts(server)


async def test_a_stream_the_caller_left_ends_its_spans_as_cancelled(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(text=" ".join(f"w{i}" for i in range(200)), chunk_delay_s=0.02))
    async with traced_gateway(receiver, openai_upstream) as gateway:
        body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
        async with (
            httpx.AsyncClient(timeout=30) as client,
            client.stream(
                "POST",
                f"{gateway.url}/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {GATEWAY_KEY}"},
            ) as resp,
        ):
            async for _ in resp.aiter_bytes():
                break  # the caller hangs up after the first chunk
    server = only_server_span(receiver)
    (attempt,) = receiver.children_of(server)
    assert server.attributes["http.response.status_code"] == 499
    assert server.attributes["error.type"] == "ClientGone"
    assert not server.error  # the caller's doing, not the gateway's
    assert attempt.end <= server.end


async def test_prompts_and_answers_stay_out_of_spans_by_default(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(text="the answer is mango"))
    async with traced_gateway(receiver, openai_upstream) as gateway:
        assert (await chat(gateway.url)).status_code == 200
    assert receiver.spans
    for span in receiver.spans:
        assert PROMPT not in texts(span) and "mango" not in texts(span)
        assert "gen_ai.input.messages" not in span.attributes
        assert "gen_ai.output.messages" not in span.attributes


async def test_with_body_logging_the_request_span_carries_the_masked_bodies(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(text="the answer is mango"))
    async with traced_gateway(receiver, openai_upstream, audit={"log_bodies": True}) as gateway:
        assert (await chat(gateway.url)).status_code == 200
    server = only_server_span(receiver)
    assert PROMPT in server.attributes["gen_ai.input.messages"]
    assert "mango" in server.attributes["gen_ai.output.messages"]


async def test_every_attribute_emitted_is_current_in_the_pinned_registry(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=503), Reply(text="ok", cache_read_tokens=2, cache_write_tokens=3))
    async with traced_gateway(receiver, openai_upstream, retries=1, audit={"log_bodies": True}) as gateway:
        assert (await chat(gateway.url, max_tokens=20, temperature=0.1, top_p=0.5)).status_code == 200
        assert (await chat(gateway.url, stream=True)).status_code == 200
    emitted = {name for span in receiver.spans for name in span.attributes}
    emitted |= {name for point in receiver.points for name in point.attributes}
    registry = genai_registry.attributes()
    ours = {name for name in emitted if name.startswith("waypost.")}
    problems = [p for name in sorted(emitted - ours) if (p := genai_registry.problem(name, registry))]
    assert problems == []
    assert "gen_ai.usage.cache_creation.input_tokens" in emitted


async def test_the_genai_client_metrics_are_exported(
    receiver: OtlpReceiver, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=503), Reply(text="ok", input_tokens=30, output_tokens=7))
    async with traced_gateway(receiver, openai_upstream, retries=1) as gateway:
        assert (await chat(gateway.url)).status_code == 200
    durations = [p for p in receiver.points if p.metric == "gen_ai.client.operation.duration"]
    assert {p.unit for p in durations} == {"s"}
    assert sum(p.count for p in durations) == 2  # one per attempt
    failed = [p for p in durations if "error.type" in p.attributes]
    assert len(failed) == 1 and failed[0].attributes["gen_ai.provider.name"] == "openai"
    tokens = {
        p.attributes["gen_ai.token.type"]: p
        for p in receiver.points
        if p.metric == "gen_ai.client.token.usage"
    }
    assert tokens["input"].total == 30 and tokens["output"].total == 7
    assert tokens["input"].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert tokens["input"].attributes["gen_ai.operation.name"] == "chat"


async def test_traces_are_off_by_default_and_no_traceparent_goes_upstream(
    openai_upstream: OpenAIUpstream,
) -> None:
    entry = model("gpt-test", "openai", openai_upstream.url, openai_upstream.api_key)
    async with running(settings(entry)) as gateway:
        assert not gateway.container.tracing.enabled
        assert (await chat(gateway.url)).status_code == 200
    assert "traceparent" not in openai_upstream.last.headers
