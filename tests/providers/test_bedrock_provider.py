"""The Bedrock provider against the fake Bedrock, which verifies every SigV4 signature: chat,
streams read incrementally, failures mapped once, credentials and regions resolved off the
event loop, embeddings (Titan and Cohere) and token counts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore.credentials import Credentials, RefreshableCredentials

from tests.fakes import Reply
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream, corrupt
from tests.fakes.eventstream_encoder import encode_message, event
from waypost.core.context import RequestContext
from waypost.core.errors import (
    BadRequest,
    GatewayError,
    Overloaded,
    RateLimited,
    StreamInterrupted,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamInvalid,
    UpstreamTimeout,
)
from waypost.core.events import MessageEnd, StreamEvent, TextDelta, fold
from waypost.core.types import (
    ChatRequest,
    EmbeddingRequest,
    FinishReason,
    Message,
    TextPart,
    Tool,
    ToolCallPart,
    Usage,
)
from waypost.providers.base import Deployment, EmbeddingProvider, TokenCounter
from waypost.providers.bedrock import BedrockProvider
from waypost.providers.bedrock_auth import AwsAuth, AwsIdentity, default_endpoint
from waypost.providers.http import HttpClient
from waypost.settings import AwsSettings, ModelSettings

CTX = RequestContext(request_id="req-1", client_format="openai")
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
HI = ChatRequest(model="claude", messages=[Message("user", [TextPart("hi")])])


@pytest.fixture
async def fake() -> AsyncIterator[BedrockUpstream]:
    async with BedrockUpstream() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


@pytest.fixture
def provider(http: HttpClient) -> BedrockProvider:
    return BedrockProvider(http)


@pytest.fixture
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no AWS credentials, config files or metadata service to fall back on."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


def deployment(fake: BedrockUpstream, model: str = CLAUDE, **aws: Any) -> Deployment:
    options = {
        "region": REGION,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "endpoint_url": fake.url,
        **aws,
    }
    settings = ModelSettings(
        name="claude", provider="bedrock", aws={k: v for k, v in options.items() if v is not None}
    )
    return Deployment(settings, model)


async def collect(
    provider: BedrockProvider, dep: Deployment, req: ChatRequest = HI
) -> list[list[StreamEvent]]:
    return [batch async for batch in provider.stream(req, dep, CTX)]


# -- chat --------------------------------------------------------------------------------------


async def test_complete_posts_a_signed_converse_request_to_the_encoded_model_path(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(text="Hello there.", input_tokens=12, output_tokens=3, cache_write_tokens=100))
    resp = await provider.complete(HI, deployment(fake), CTX)
    assert (resp.text(), resp.finish_reason) == ("Hello there.", FinishReason.STOP)
    assert resp.usage == Usage(input_tokens=112, output_tokens=3, cache_write_tokens=100)
    assert resp.id  # Bedrock's request id
    assert fake.raw_paths == ["/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse"]
    assert fake.last.json == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 4096},
    }
    assert fake.last.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")


async def test_an_inference_profile_arn_is_signed_and_sent_with_its_slash_encoded(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-x"
    await provider.complete(HI, deployment(fake, arn), CTX)
    assert fake.models == [arn]
    assert "%2Fus.anthropic" in fake.raw_paths[0]


async def test_a_session_token_is_sent_and_signed(http: HttpClient) -> None:
    async with BedrockUpstream(session_token="token-123") as fake:
        resp = await BedrockProvider(http).complete(HI, deployment(fake, session_token="token-123"), CTX)
        assert resp.text() == "echo: hi"
        assert fake.last.headers["x-amz-security-token"] == "token-123"


async def test_model_headers_are_sent_and_signed(fake: BedrockUpstream, provider: BedrockProvider) -> None:
    dep = deployment(fake)
    dep.settings.headers["x-team"] = "search"
    await provider.complete(HI, dep, CTX)
    assert fake.last.headers["x-team"] == "search"
    assert "x-team" in fake.last.headers["authorization"]


async def test_a_wrong_secret_is_an_auth_error_that_does_not_echo_bedrock(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    with pytest.raises(UpstreamAuthError) as err:
        await provider.complete(HI, deployment(fake, secret_access_key="not-the-secret"), CTX)
    assert "we calculated" not in err.value.message
    assert "InvalidSignatureException" in err.value.message


async def test_a_signature_for_another_region_is_refused(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    with pytest.raises(UpstreamAuthError):
        await provider.complete(HI, deployment(fake, region="eu-central-1"), CTX)


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (429, None, RateLimited),
        (400, None, UpstreamBadRequest),
        (404, None, UpstreamBadRequest),
        (403, None, UpstreamAuthError),
        (503, None, Overloaded),
        (429, "ModelNotReadyException", Overloaded),
        (408, None, UpstreamTimeout),
        (424, None, UpstreamError),
        (500, None, UpstreamError),
    ],
)
async def test_http_errors_are_mapped_by_their_error_type(
    fake: BedrockUpstream,
    provider: BedrockProvider,
    status: int,
    error_type: str | None,
    kind: type[GatewayError],
) -> None:
    fake.enqueue(Reply(status=status, error_type=error_type, error_message="details here"))
    with pytest.raises(kind) as err:
        await provider.complete(HI, deployment(fake), CTX)
    assert type(err.value) is kind and err.value.upstream_status == status
    if kind is not UpstreamAuthError:
        assert "details here" in err.value.message


async def test_a_validation_error_carries_bedrocks_message(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    req = ChatRequest(model="claude", messages=[Message("assistant", [TextPart("I start")])])
    with pytest.raises(UpstreamBadRequest, match="must start with a user message"):
        await provider.complete(req, deployment(fake), CTX)


async def test_a_body_that_is_not_json_is_an_upstream_error(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(raw_body=b"<html>oops</html>"))
    with pytest.raises(UpstreamError):
        await provider.complete(HI, deployment(fake), CTX)


# -- streams -----------------------------------------------------------------------------------


async def test_a_stream_yields_canonical_events_that_fold_into_the_answer(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(
        Reply(
            text="Let me check.",
            tool_calls=[("tooluse_1", "get_weather", {"city": "Oslo"})],
            input_tokens=20,
            output_tokens=9,
            cache_read_tokens=1000,
        )
    )
    req = ChatRequest(model="claude", messages=HI.messages, tools=[Tool("get_weather")], stream=True)
    batches = await collect(provider, deployment(fake), req)
    events = [e for b in batches for e in b]
    assert isinstance(events[-1], MessageEnd)
    resp = fold(events)
    assert resp.text() == "Let me check."
    assert resp.tool_calls() == [ToolCallPart("tooluse_1", "get_weather", '{"city":"Oslo"}')]
    assert resp.finish_reason == FinishReason.TOOL_CALLS
    assert resp.usage == Usage(input_tokens=1020, output_tokens=9, cache_read_tokens=1000)
    assert fake.raw_paths[-1].endswith("/converse-stream")
    assert fake.last.headers["accept"] == "application/vnd.amazon.eventstream"


async def test_a_stream_arriving_in_pieces_is_relayed_as_it_comes(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(text="one two three", chunk_delay_s=0.02))
    batches = await collect(provider, deployment(fake))
    texts = [[e.text for e in b if isinstance(e, TextDelta)] for b in batches]
    assert [t for t in texts if t] == [["one "], ["two "], ["three"]]


async def test_a_mid_stream_exception_delivers_what_came_before_then_raises_it_mapped(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(text="a b c d", error_event_after_chunks=3, error_type="throttlingException"))
    seen: list[StreamEvent] = []
    with pytest.raises(RateLimited):
        async for batch in provider.stream(HI, deployment(fake), CTX):
            seen += batch
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["a ", "b "]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (
            corrupt(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "bad"}})),
            "an event-stream message checksum",
        ),
        (
            encode_message({":event-type": "contentBlockDelta", ":message-type": "event"}, b"{nope"),
            "an event payload that is not JSON",
        ),
    ],
    ids=["corrupt-frame", "payload-not-json"],
)
async def test_an_invalid_frame_ends_the_stream_as_invalid_after_the_frames_before_it(
    fake: BedrockUpstream, provider: BedrockProvider, bad: bytes, problem: str
) -> None:
    good = event("messageStart", {"role": "assistant"}) + event(
        "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "fine"}}
    )
    fake.enqueue(Reply(raw_body=good + bad))
    seen: list[StreamEvent] = []
    with pytest.raises(UpstreamInvalid, match=f"bedrock upstream sent an invalid stream: {problem}"):
        async for batch in provider.stream(HI, deployment(fake), CTX):
            seen += batch
    assert [e.text for e in seen if isinstance(e, TextDelta)] == ["fine"]


async def test_a_stream_cut_inside_a_frame_is_interrupted(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    frame = event("messageStart", {"role": "assistant"})
    fake.enqueue(Reply(raw_body=frame + frame[:9]))
    with pytest.raises(StreamInterrupted, match="inside an event"):
        await collect(provider, deployment(fake))


async def test_a_stream_that_ends_before_message_stop_is_interrupted(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(raw_body=event("messageStart", {"role": "assistant"})))
    with pytest.raises(StreamInterrupted, match="messageStop"):
        await collect(provider, deployment(fake))


async def test_a_connection_reset_mid_stream_is_interrupted(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(text="a b c", reset_after_chunks=2))
    with pytest.raises(StreamInterrupted):
        await collect(provider, deployment(fake))


async def test_a_stream_error_before_any_event_is_the_http_error(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(status=429))
    with pytest.raises(RateLimited):
        await collect(provider, deployment(fake))


# -- credentials and regions -------------------------------------------------------------------


async def test_credentials_and_region_come_from_a_named_profile(
    fake: BedrockUpstream, provider: BedrockProvider, no_ambient_aws: Path
) -> None:
    (no_ambient_aws / "credentials").write_text(
        f"[team]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n"
    )
    (no_ambient_aws / "config").write_text(f"[profile team]\nregion = {REGION}\n")
    dep = deployment(fake, region=None, access_key_id=None, secret_access_key=None, profile="team")
    assert (await provider.complete(HI, dep, CTX)).text() == "echo: hi"


async def test_credentials_and_region_come_from_the_environment(
    fake: BedrockUpstream, provider: BedrockProvider, no_ambient_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    dep = deployment(fake, region=None, access_key_id=None, secret_access_key=None)
    assert (await provider.complete(HI, dep, CTX)).text() == "echo: hi"


async def test_no_credentials_anywhere_is_a_clear_auth_error(
    fake: BedrockUpstream, provider: BedrockProvider, no_ambient_aws: Path
) -> None:
    dep = deployment(fake, access_key_id=None, secret_access_key=None)
    with pytest.raises(UpstreamAuthError, match="no AWS credentials found"):
        await provider.complete(HI, dep, CTX)
    assert fake.hits == 0


async def test_no_region_anywhere_is_a_clear_auth_error(
    fake: BedrockUpstream, provider: BedrockProvider, no_ambient_aws: Path
) -> None:
    with pytest.raises(UpstreamAuthError, match="no AWS region"):
        await provider.complete(HI, deployment(fake, region=None), CTX)


async def test_a_key_without_its_secret_is_a_configuration_error(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    with pytest.raises(UpstreamAuthError, match="set together"):
        await provider.complete(HI, deployment(fake, secret_access_key=None), CTX)


class RecordingResolver:
    """Resolves to fixed credentials and records the threads it ran on."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.threads: list[int] = []

    def __call__(self, aws: AwsSettings) -> AwsIdentity:
        self.threads.append(threading.get_ident())
        return AwsIdentity(self.credentials, aws.region or REGION)


async def test_credentials_resolve_once_off_the_event_loop(fake: BedrockUpstream, http: HttpClient) -> None:
    resolver = RecordingResolver(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY))
    provider = BedrockProvider(http, auth=AwsAuth(resolver))
    dep = deployment(fake, access_key_id=None, secret_access_key=None)
    await asyncio.gather(*(provider.complete(HI, dep, CTX) for _ in range(3)))
    assert len(resolver.threads) == 1
    assert resolver.threads[0] != threading.get_ident()


async def test_expiring_credentials_are_refreshed_off_the_event_loop(
    fake: BedrockUpstream, http: HttpClient
) -> None:
    refreshed_on: list[int] = []

    def refresh() -> dict[str, str]:
        refreshed_on.append(threading.get_ident())
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return {
            "access_key": ACCESS_KEY_ID,
            "secret_key": SECRET_ACCESS_KEY,
            "token": "",
            "expiry_time": later,
        }

    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    expiring = RefreshableCredentials.create_from_metadata(
        {"access_key": "AKIDOLD", "secret_key": "old", "token": "", "expiry_time": soon}, refresh, "test"
    )
    provider = BedrockProvider(http, auth=AwsAuth(RecordingResolver(expiring)))
    resp = await provider.complete(HI, deployment(fake, access_key_id=None, secret_access_key=None), CTX)
    assert resp.text() == "echo: hi"
    assert len(refreshed_on) == 1 and refreshed_on[0] != threading.get_ident()


async def test_refused_credentials_are_resolved_again_on_the_next_call(
    fake: BedrockUpstream, http: HttpClient
) -> None:
    resolver = RecordingResolver(Credentials(ACCESS_KEY_ID, "rotated-away"))
    provider = BedrockProvider(http, auth=AwsAuth(resolver))
    dep = deployment(fake, access_key_id=None, secret_access_key=None)
    with pytest.raises(UpstreamAuthError):
        await provider.complete(HI, dep, CTX)
    resolver.credentials = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    assert (await provider.complete(HI, dep, CTX)).text() == "echo: hi"
    assert len(resolver.threads) == 2


def test_the_default_endpoint_is_the_regional_bedrock_runtime_host() -> None:
    assert default_endpoint("eu-west-3") == "https://bedrock-runtime.eu-west-3.amazonaws.com"


# -- embeddings and token counts ---------------------------------------------------------------


def test_the_provider_has_the_embedding_and_token_counting_capabilities(provider: BedrockProvider) -> None:
    assert isinstance(provider, EmbeddingProvider) and isinstance(provider, TokenCounter)


async def test_titan_embeds_each_input_in_its_own_call_keeping_the_order(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    texts = [f"text number {i}" for i in range(5)]
    req = EmbeddingRequest(model="titan", inputs=texts, dimensions=256)
    resp = await provider.embed(req, deployment(fake, "amazon.titan-embed-text-v2:0"), CTX)
    assert len(resp.vectors) == 5 and all(len(v) == 256 for v in resp.vectors)
    by_text = {r.json["inputText"]: r.json for r in fake.requests}
    assert set(by_text) == set(texts)
    assert by_text["text number 0"] == {"inputText": "text number 0", "dimensions": 256, "normalize": True}
    single = await provider.embed(
        EmbeddingRequest(model="titan", inputs=["text number 3"], dimensions=256),
        deployment(fake, "amazon.titan-embed-text-v2:0"),
        CTX,
    )
    assert resp.vectors[3] == single.vectors[0]
    assert resp.usage.input_tokens == 5 * 4


async def test_a_failing_titan_call_fails_the_whole_embedding(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(), Reply(status=429))
    req = EmbeddingRequest(model="titan", inputs=["a", "b", "c"])
    with pytest.raises(RateLimited):
        await provider.embed(req, deployment(fake, "amazon.titan-embed-text-v2:0"), CTX)


async def test_cohere_embeds_in_batches_of_96_with_usage_from_the_header(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    texts = [f"doc {i}" for i in range(100)]
    req = EmbeddingRequest(model="cohere", inputs=texts, input_type="query")
    resp = await provider.embed(req, deployment(fake, "cohere.embed-english-v3"), CTX)
    assert len(resp.vectors) == 100
    sizes = sorted(len(r.json["texts"]) for r in fake.requests)
    assert sizes == [4, 96]
    assert {r.json["input_type"] for r in fake.requests} == {"search_query"}
    assert resp.usage.input_tokens == 100 * 2


async def test_cohere_v4_takes_dimensions_and_answers_by_type(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    req = EmbeddingRequest(model="cohere", inputs=["a", "b"], dimensions=512)
    resp = await provider.embed(req, deployment(fake, "cohere.embed-v4:0"), CTX)
    assert [len(v) for v in resp.vectors] == [512, 512]
    assert fake.last.json == {
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 512,
    }


async def test_embedding_with_a_chat_model_is_a_bad_request(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    with pytest.raises(BadRequest, match="not a supported embedding model"):
        await provider.embed(EmbeddingRequest(model="x", inputs=["a"]), deployment(fake), CTX)
    assert fake.hits == 0


async def test_token_ids_cannot_be_embedded(fake: BedrockUpstream, provider: BedrockProvider) -> None:
    req = EmbeddingRequest(model="x", inputs=[], token_inputs=[[1, 2]])
    with pytest.raises(BadRequest):
        await provider.embed(req, deployment(fake, "amazon.titan-embed-text-v2:0"), CTX)


async def test_count_tokens_asks_bedrock_with_the_converse_input(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    fake.enqueue(Reply(input_tokens=321))
    assert await provider.count_tokens(HI, deployment(fake), CTX) == 321
    assert fake.raw_paths[-1].endswith("/count-tokens")
    assert fake.last.json == {
        "input": {"converse": {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}}
    }


async def test_count_tokens_for_a_model_bedrock_cannot_count_is_declined_without_a_call(
    fake: BedrockUpstream, provider: BedrockProvider
) -> None:
    with pytest.raises(BadRequest, match="only for Anthropic models"):
        await provider.count_tokens(HI, deployment(fake, "meta.llama3-70b-instruct-v1:0"), CTX)
    assert fake.hits == 0


async def test_count_tokens_errors_are_mapped(fake: BedrockUpstream, provider: BedrockProvider) -> None:
    fake.enqueue(Reply(status=400, error_message="The provided model doesn't support counting tokens."))
    with pytest.raises(UpstreamBadRequest, match="support counting tokens"):
        await provider.count_tokens(HI, deployment(fake), CTX)
