"""GeminiProvider against the fake Gemini server on loopback: paths, the key header, streams and their
failures, token counts and embeddings. The provider is driven directly, through the real HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.base import Reply
from tests.fakes.gemini_upstream import GeminiUpstream
from waypost.core.context import RequestContext
from waypost.core.errors import (
    BadRequest,
    Overloaded,
    RateLimited,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
)
from waypost.core.events import StreamEvent, TextDelta, fold
from waypost.core.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    Message,
    TextPart,
    Tool,
    ToolResultPart,
)
from waypost.providers.base import Deployment, EmbeddingProvider, TokenCounter
from waypost.providers.gemini import GeminiProvider
from waypost.providers.http import HttpClient
from waypost.settings import ModelSettings

KEY = "AIzaSy-fake-gemini-key-0123456789"
CTX = RequestContext(request_id="req-1", client_format="openai")
WEATHER = Tool(name="get_weather", parameters={"type": "object", "properties": {"city": {"type": "string"}}})


@pytest.fixture
async def fake() -> AsyncIterator[GeminiUpstream]:
    async with GeminiUpstream(api_key=KEY) as server:
        yield server


@pytest.fixture
async def provider() -> AsyncIterator[GeminiProvider]:
    http = HttpClient()
    yield GeminiProvider(http)
    await http.close()


def deployment(fake: GeminiUpstream, upstream: str = "gemini-2.5-flash", **settings: Any) -> Deployment:
    entry: dict[str, Any] = {"name": "gem", "provider": "gemini", "base_url": fake.url, "api_key": KEY}
    return Deployment(ModelSettings.model_validate({**entry, **settings}), upstream)


def ask(text: str = "hello", **fields: Any) -> ChatRequest:
    return ChatRequest(model="gem", messages=[Message("user", [TextPart(text)])], **fields)


async def stream_all(provider: GeminiProvider, req: ChatRequest, dep: Deployment) -> list[list[StreamEvent]]:
    return [batch async for batch in provider.stream(req, dep, CTX)]


async def test_has_the_token_counting_and_embedding_capabilities(provider: GeminiProvider) -> None:
    assert provider.dialect == "gemini"
    assert isinstance(provider, TokenCounter) and isinstance(provider, EmbeddingProvider)


async def test_complete_posts_to_v1beta_with_the_key_in_a_header_only(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    resp = await provider.complete(ask(), deployment(fake), CTX)
    assert resp.text() == "echo: hello"
    assert fake.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert fake.last.query == {}
    assert fake.last.headers["x-goog-api-key"] == KEY
    assert KEY not in fake.last.path


async def test_api_version_picks_the_path_version(fake: GeminiUpstream, provider: GeminiProvider) -> None:
    await provider.complete(ask(), deployment(fake, api_version="v1"), CTX)
    assert fake.last.path == "/v1/models/gemini-2.5-flash:generateContent"


async def test_a_base_url_that_names_the_version_is_used_as_is(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    await provider.complete(ask(), deployment(fake, base_url=fake.url + "/v1"), CTX)
    assert fake.last.path == "/v1/models/gemini-2.5-flash:generateContent"


async def test_model_names_may_carry_the_models_prefix(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    await provider.complete(ask(), deployment(fake, "models/gemini-2.5-pro"), CTX)
    assert fake.last.path == "/v1beta/models/gemini-2.5-pro:generateContent"


async def test_a_model_name_cannot_add_a_query_or_leave_the_models_path(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    await provider.complete(ask(), deployment(fake, "../x?key=leak#"), CTX)
    assert fake.last.query == {}
    assert fake.last.path == "/v1beta/models/../x?key=leak#:generateContent"  # one path segment, decoded


async def test_stream_asks_for_sse_and_yields_batches_as_chunks_arrive(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    fake.enqueue(Reply(text="one two three", chunk_delay_s=0.01))
    batches = await stream_all(provider, ask(), deployment(fake))
    assert fake.last.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert fake.last.query == {"alt": "sse"}
    assert len(batches) > 1 and all(batches)
    assert fold([e for b in batches for e in b]).text() == "one two three"


async def test_a_wrong_key_is_an_auth_error_that_names_no_key(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    with pytest.raises(UpstreamAuthError) as info:
        await provider.complete(ask(), deployment(fake, api_key="AIza-wrong-key"), CTX)
    assert "AIza-wrong-key" not in str(info.value)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_error_that_echoes_the_key_is_scrubbed(
    fake: GeminiUpstream, provider: GeminiProvider, stream: bool
) -> None:
    fake.enqueue(Reply(status=400, error_message=f"Request from key {KEY} is malformed."))
    with pytest.raises(UpstreamBadRequest) as info:
        if stream:
            await stream_all(provider, ask(), deployment(fake))
        else:
            await provider.complete(ask(), deployment(fake), CTX)
    assert KEY not in str(info.value) and KEY not in info.value.message
    assert "[redacted]" in info.value.message


async def test_quota_errors_carry_googles_retry_delay(fake: GeminiUpstream, provider: GeminiProvider) -> None:
    fake.enqueue(Reply(status=429, retry_after="7"))
    with pytest.raises(RateLimited) as info:
        await provider.complete(ask(), deployment(fake), CTX)
    assert info.value.retry_after == 7.0


async def test_a_reset_mid_stream_is_an_interruption_after_what_arrived(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    fake.enqueue(Reply(text="a b c d e f", reset_after_chunks=2))
    seen: list[StreamEvent] = []
    with pytest.raises(StreamInterrupted):
        async for batch in provider.stream(ask(), deployment(fake), CTX):
            seen += batch
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["a ", "b "]


async def test_a_stream_cut_cleanly_before_its_finish_is_still_an_interruption(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    fake.enqueue(Reply(raw_body=b'data: {"candidates": [{"content": {"parts": [{"text": "Hal"}]}}]}\r\n\r\n'))
    with pytest.raises(StreamInterrupted, match="without a finish reason"):
        await stream_all(provider, ask(), deployment(fake))


async def test_a_stalled_stream_times_out(fake: GeminiUpstream, provider: GeminiProvider) -> None:
    fake.enqueue(Reply(text="a b c", stall_after_chunks=1))
    with pytest.raises(UpstreamTimeout, match="stalled"):
        await stream_all(provider, ask(), deployment(fake, timeouts={"idle": 0.2}))


async def test_an_error_event_mid_stream_keeps_its_kind(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    fake.enqueue(Reply(text="a b c", error_event_after_chunks=1))
    with pytest.raises(Overloaded):
        await stream_all(provider, ask(), deployment(fake))


async def test_a_malformed_call_with_nothing_produced_fails_before_the_first_batch(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    fake.enqueue(Reply(text="", finish_reason="MALFORMED_FUNCTION_CALL"))
    batches = provider.stream(ask(), deployment(fake), CTX)
    with pytest.raises(UpstreamError, match="MALFORMED_FUNCTION_CALL"):
        await anext(batches)


async def test_gemini_3_tool_loops_replay_their_signatures(provider: GeminiProvider) -> None:
    async with GeminiUpstream(api_key=KEY, require_signatures=True) as strict:
        dep = deployment(strict)
        strict.enqueue(Reply(tool_calls=[("x", "get_weather", {"city": "Oslo"})]))
        first: ChatResponse = await provider.complete(ask("weather?", tools=[WEATHER]), dep, CTX)
        call = first.tool_calls()[0]
        history = [
            Message("user", [TextPart("weather?")]),
            Message("assistant", first.content),
            Message("user", [ToolResultPart(call.id, [TextPart("cold")])]),
        ]
        second = await provider.complete(
            ChatRequest(model="gem", messages=history, tools=[WEATHER]), dep, CTX
        )
        assert second.text() == "echo: weather?"
        replayed = strict.last.json["contents"][1]["parts"][0]
        assert replayed["thoughtSignature"] in strict.issued


async def test_count_tokens_counts_the_whole_prompt(fake: GeminiUpstream, provider: GeminiProvider) -> None:
    fake.enqueue(Reply(input_tokens=42))
    req = ask(tools=[WEATHER])
    req.messages.insert(0, Message("system", [TextPart("Be terse.")]))
    assert await provider.count_tokens(req, deployment(fake), CTX) == 42
    assert fake.last.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    assert fake.last.json["generateContentRequest"]["systemInstruction"] == {"parts": [{"text": "Be terse."}]}


async def test_embed_returns_one_vector_per_input(fake: GeminiUpstream, provider: GeminiProvider) -> None:
    req = EmbeddingRequest(
        model="emb", inputs=["alpha", "beta", "gamma"], dimensions=16, input_type="document"
    )
    resp = await provider.embed(req, deployment(fake, "gemini-embedding-001"), CTX)
    assert [len(v) for v in resp.vectors] == [16, 16, 16]
    assert resp.vectors[0] != resp.vectors[1]
    assert fake.last.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert {r["taskType"] for r in fake.last.json["requests"]} == {"RETRIEVAL_DOCUMENT"}


async def test_token_arrays_are_refused_before_any_upstream_call(
    fake: GeminiUpstream, provider: GeminiProvider
) -> None:
    with pytest.raises(BadRequest):
        await provider.embed(EmbeddingRequest(model="emb", token_inputs=[[1, 2, 3]]), deployment(fake), CTX)
    assert fake.hits == 0
