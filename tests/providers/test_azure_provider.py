"""The Azure OpenAI provider against the fake OpenAI server's Azure route: per-deployment URLs,
``api-version``, the ``api-key`` header, and everything else inherited from the OpenAI provider.
Specified by docs/providers/azure.md."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.fakes import FakeUpstream, OpenAIUpstream, Reply
from tests.fakes.base import compact_json
from waypost.core.context import RequestContext
from waypost.core.errors import UpstreamAuthError, UpstreamBadRequest
from waypost.core.events import StreamEvent, TextDelta, fold
from waypost.core.types import ChatRequest, EmbeddingRequest, FinishReason, Message, TextPart
from waypost.providers.azure import DEFAULT_API_VERSION, AzureProvider
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient
from waypost.settings import ModelSettings

KEY = "azure-resource-key-0123"
CTX = RequestContext(request_id="req-1", client_format="anthropic")
HI = ChatRequest(model="gpt", messages=[Message("user", [TextPart("hi")])])


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream(api_key=KEY) as server:
        yield server


@pytest.fixture
async def provider() -> AsyncIterator[AzureProvider]:
    http = HttpClient()
    yield AzureProvider(http)
    await http.close()


def deployment(base_url: str, name: str = "gpt-4o-prod", **extra: Any) -> Deployment:
    extra.setdefault("api_key", KEY)
    return Deployment(ModelSettings(name="gpt", provider="azure", base_url=base_url, **extra), name)


async def test_chat_goes_to_the_deployment_url_with_the_ga_api_version(
    fake: OpenAIUpstream, provider: AzureProvider
) -> None:
    resp = await provider.complete(HI, deployment(fake.url), CTX)
    assert resp.text() == "echo: hi"
    assert fake.last.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert fake.last.query == {"api-version": DEFAULT_API_VERSION}


def test_the_default_api_version_is_a_dated_ga_release() -> None:
    assert DEFAULT_API_VERSION == "2024-10-21"


async def test_a_configured_api_version_is_used(fake: OpenAIUpstream, provider: AzureProvider) -> None:
    await provider.complete(HI, deployment(fake.url, api_version="2025-04-01-preview"), CTX)
    assert fake.last.query["api-version"] == "2025-04-01-preview"


async def test_the_key_goes_in_the_api_key_header_not_authorization(
    fake: OpenAIUpstream, provider: AzureProvider
) -> None:
    await provider.complete(HI, deployment(fake.url), CTX)
    assert fake.last.headers["api-key"] == KEY
    assert "authorization" not in fake.last.headers


async def test_a_base_url_that_already_ends_in_openai_is_not_doubled(
    fake: OpenAIUpstream, provider: AzureProvider
) -> None:
    await provider.complete(HI, deployment(fake.url + "/openai"), CTX)
    assert fake.last.path == "/openai/deployments/gpt-4o-prod/chat/completions"


async def test_the_deployment_name_is_escaped_in_the_path(
    fake: OpenAIUpstream, provider: AzureProvider
) -> None:
    await provider.complete(HI, deployment(fake.url, "gpt 4o?x=1"), CTX)
    assert fake.last.path == "/openai/deployments/gpt 4o?x=1/chat/completions"
    assert fake.last.query == {"api-version": DEFAULT_API_VERSION}


async def test_a_wrong_key_is_a_credentials_error(fake: OpenAIUpstream, provider: AzureProvider) -> None:
    with pytest.raises(UpstreamAuthError) as err:
        await provider.complete(HI, deployment(fake.url, api_key="wrong-azure-key"), CTX)
    assert "wrong-azure-key" not in err.value.message


async def test_streams_are_read_like_openai_streams(fake: OpenAIUpstream, provider: AzureProvider) -> None:
    fake.enqueue(Reply(text="streamed from azure", input_tokens=9, output_tokens=4))
    events: list[StreamEvent] = [e async for b in provider.stream(HI, deployment(fake.url), CTX) for e in b]
    resp = fold(events)
    assert (resp.text(), resp.finish_reason) == ("streamed from azure", FinishReason.STOP)
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (9, 4)
    assert fake.last.json["stream_options"] == {"include_usage": True}


async def test_azures_leading_content_filter_chunk_is_harmless(
    fake: OpenAIUpstream, provider: AzureProvider
) -> None:
    # Azure opens streams with a chunk of prompt filter results: empty id, model and choices.
    chunks: list[dict[str, Any]] = [
        {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []},
        {
            "id": "chatcmpl-az1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "filtered ok"}, "finish_reason": None}
            ],
        },
        {
            "id": "chatcmpl-az1",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-4o-2024-08-06",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "content_filter_results": {}}],
        },
    ]
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    fake.enqueue(Reply(raw_body=raw))
    events = [e async for b in provider.stream(HI, deployment(fake.url), CTX) for e in b]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "filtered ok"
    assert fold(events).finish_reason is FinishReason.STOP


class AzureEmbeddings(FakeUpstream):
    """Azure's embeddings route only: the OpenAI embeddings body at the deployment's URL."""

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/openai/deployments/{deployment}/embeddings", self._embed)]

    async def _embed(self, request: web.Request) -> web.Response:
        inputs = self.recorded(request).json["input"]
        data = [{"object": "embedding", "index": i, "embedding": [0.5, -0.25]} for i in range(len(inputs))]
        body = {
            "object": "list",
            "data": data,
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        }
        return web.Response(body=compact_json(body), content_type="application/json")


async def test_embeddings_go_to_the_deployments_embeddings_url(provider: AzureProvider) -> None:
    async with AzureEmbeddings() as fake:
        req = EmbeddingRequest(model="emb", inputs=["a", "b"])
        resp = await provider.embed(req, deployment(fake.url, "embed-prod"), CTX)
        assert fake.last.path == "/openai/deployments/embed-prod/embeddings"
        assert fake.last.query == {"api-version": DEFAULT_API_VERSION}
        assert fake.last.headers["api-key"] == KEY
    assert resp.vectors == [[0.5, -0.25], [0.5, -0.25]]


async def test_upstream_failures_name_azure(fake: OpenAIUpstream, provider: AzureProvider) -> None:
    fake.enqueue(Reply(status=404, error_message="The API deployment for this resource does not exist."))
    with pytest.raises(UpstreamBadRequest, match=r"^azure upstream returned 404: The API deployment") as err:
        await provider.complete(HI, deployment(fake.url), CTX)
    assert err.value.provider == "azure"
