"""The Ollama provider against a real fake Ollama server: URLs, headers, streams read in batches,
failures mapped once, embeddings. Specified by docs/providers/ollama.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes import Reply
from tests.fakes.ollama_upstream import OllamaUpstream
from waypost.core.context import RequestContext
from waypost.core.errors import (
    GatewayError,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
)
from waypost.core.events import MessageEnd, MessageStart, StreamEvent, TextDelta, fold
from waypost.core.types import ChatRequest, EmbeddingRequest, FinishReason, Message, TextPart
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient
from waypost.providers.ollama import OllamaProvider
from waypost.settings import ModelSettings

CTX = RequestContext(request_id="req-1", client_format="openai")
HI = ChatRequest(model="local", messages=[Message("user", [TextPart("hi")])])


@pytest.fixture
async def fake() -> AsyncIterator[OllamaUpstream]:
    async with OllamaUpstream(models=["llama3.2", "all-minilm"]) as server:
        yield server


@pytest.fixture
async def provider() -> AsyncIterator[OllamaProvider]:
    http = HttpClient()
    yield OllamaProvider(http)
    await http.close()


def deployment(fake: OllamaUpstream, upstream: str = "llama3.2", **extra: Any) -> Deployment:
    settings = ModelSettings(name="local", provider="ollama", base_url=fake.url, **extra)
    return Deployment(settings, upstream)


async def collect(
    provider: OllamaProvider, dep: Deployment, req: ChatRequest = HI
) -> list[list[StreamEvent]]:
    return [batch async for batch in provider.stream(req, dep, CTX)]


async def test_complete_posts_a_non_streamed_chat(fake: OllamaUpstream, provider: OllamaProvider) -> None:
    fake.enqueue(Reply(text="Hello there.", input_tokens=12, output_tokens=3))
    resp = await provider.complete(HI, deployment(fake), CTX)
    assert (resp.text(), resp.finish_reason) == ("Hello there.", FinishReason.STOP)
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (12, 3)
    assert resp.id.startswith("ollama-")
    assert fake.last.path == "/api/chat"
    assert fake.last.json == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }


async def test_no_authorization_is_sent_without_a_key(fake: OllamaUpstream, provider: OllamaProvider) -> None:
    await provider.complete(HI, deployment(fake), CTX)
    assert "authorization" not in fake.last.headers


async def test_a_configured_key_is_sent_as_a_bearer_token(provider: OllamaProvider) -> None:
    async with OllamaUpstream(api_key="ollama-cloud-key") as cloud:
        resp = await provider.complete(HI, deployment(cloud, api_key="ollama-cloud-key"), CTX)
        assert cloud.last.headers["authorization"] == "Bearer ollama-cloud-key"
    assert resp.text() == "echo: hi"


async def test_stream_asks_for_ndjson_and_yields_canonical_events(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    fake.enqueue(Reply(text="one two three"))
    batches = await collect(provider, deployment(fake))
    events = [e for b in batches for e in b]
    assert isinstance(events[0], MessageStart) and isinstance(events[-1], MessageEnd)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    assert fake.last.json["stream"] is True
    assert fake.last.headers["accept"] == "application/x-ndjson"


async def test_lines_that_arrive_together_come_as_one_batch(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    lines = (
        b'{"model":"llama3.2","message":{"role":"assistant","content":"a"},"done":false}\n'
        b'{"model":"llama3.2","message":{"role":"assistant","content":"b"},"done":false}\n'
        b'{"model":"llama3.2","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}\n'
    )
    fake.enqueue(Reply(raw_body=lines))
    batches = await collect(provider, deployment(fake))
    assert len(batches) == 1
    assert [e.text for e in batches[0] if isinstance(e, TextDelta)] == ["a", "b"]


async def test_a_last_line_without_its_newline_still_ends_the_stream(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    fake.enqueue(Reply(raw_body=b'{"model":"m","message":{"content":"ok"},"done":true,"done_reason":"stop"}'))
    resp = fold([e for b in await collect(provider, deployment(fake)) for e in b])
    assert (resp.text(), resp.finish_reason) == ("ok", FinishReason.STOP)


async def test_an_error_line_mid_stream_comes_after_the_text_before_it(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    fake.enqueue(Reply(text="alpha beta gamma", error_event_after_chunks=2))
    received: list[StreamEvent] = []
    with pytest.raises(StreamInterrupted, match="unexpected EOF"):
        async for batch in provider.stream(HI, deployment(fake), CTX):
            received += batch
    assert "".join(e.text for e in received if isinstance(e, TextDelta)) == "alpha beta "


async def test_a_reset_mid_stream_is_a_stream_interruption(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    fake.enqueue(Reply(text="alpha beta gamma", reset_after_chunks=2))
    with pytest.raises(StreamInterrupted):
        await collect(provider, deployment(fake))


async def test_a_stream_that_ends_without_done_is_interrupted(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    fake.enqueue(Reply(raw_body=b'{"model":"m","message":{"content":"cut"},"done":false}\n'))
    with pytest.raises(StreamInterrupted, match="final"):
        await collect(provider, deployment(fake))


async def test_an_unknown_model_is_a_bad_request_naming_it(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    with pytest.raises(UpstreamBadRequest, match='model "mystery" not found') as err:
        await provider.complete(HI, deployment(fake, "mystery"), CTX)
    assert err.value.upstream_status == 404


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_server_error_is_a_retryable_upstream_error(
    stream: bool, fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    fake.enqueue(Reply(status=500))
    with pytest.raises(UpstreamError) as err:
        if stream:
            await collect(provider, deployment(fake))
        else:
            await provider.complete(HI, deployment(fake), CTX)
    assert type(err.value) is UpstreamError and err.value.retryable
    assert "llama runner process has terminated" in err.value.message


async def test_refused_credentials_do_not_echo_the_upstream_text(provider: OllamaProvider) -> None:
    async with OllamaUpstream(api_key="right-key") as cloud:
        with pytest.raises(UpstreamAuthError) as err:
            await provider.complete(HI, deployment(cloud, api_key="wrong-key"), CTX)
    assert "wrong-key" not in err.value.message and "unauthorized" not in err.value.message


async def test_a_body_that_is_not_json_is_an_upstream_error(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    fake.enqueue(Reply(raw_body=b"<html>proxy error</html>"))
    with pytest.raises(GatewayError, match="not JSON"):
        await provider.complete(HI, deployment(fake), CTX)


async def test_embed_posts_the_inputs_and_returns_the_vectors(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    req = EmbeddingRequest(model="emb", inputs=["first", "second"], dimensions=4)
    resp = await provider.embed(req, deployment(fake, "all-minilm"), CTX)
    assert fake.last.path == "/api/embed"
    assert fake.last.json == {"model": "all-minilm", "input": ["first", "second"], "dimensions": 4}
    assert [len(v) for v in resp.vectors] == [4, 4]
    assert resp.vectors[0] != resp.vectors[1]
    assert resp.usage.input_tokens > 0


async def test_embed_of_an_unknown_model_is_a_bad_request(
    fake: OllamaUpstream, provider: OllamaProvider
) -> None:
    with pytest.raises(UpstreamBadRequest):
        await provider.embed(EmbeddingRequest(model="emb", inputs=["x"]), deployment(fake, "nope"), CTX)
