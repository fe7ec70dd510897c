"""POST /v1/embeddings through a real gateway: the OpenAI SDK's default (base64) and float formats,
the OpenAI-compatible fast path, the mock, routing and errors."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import pytest

from tests.api.client import post
from tests.fakes import OpenAIUpstream, Reply
from tests.fakes.openai_endpoints import fake_vector
from tests.harness import GATEWAY_KEY, model, serve, settings
from waypost.providers.mock import embedding_vector


@dataclass
class Setup:
    url: str
    upstream: OpenAIUpstream


@pytest.fixture
async def setup(openai_upstream: OpenAIUpstream) -> AsyncIterator[Setup]:
    key = openai_upstream.api_key
    config = settings(
        model("emb", "openai", openai_upstream.url, key, upstream_model="text-embedding-3-small"),
        model("flaky", "openai", openai_upstream.url, key, upstream_model="primary-up", fallbacks=["emb"]),
        model("mock-emb", "mock"),
        model("chat-only", "anthropic", "http://127.0.0.1:9", "unused-key"),
        server={"max_body_bytes": 4096},
    )
    async with serve(config) as url:
        yield Setup(url, openai_upstream)


@pytest.fixture
async def client(setup: Setup) -> AsyncIterator[openai.AsyncOpenAI]:
    # The SDK declares ``embedding: list[float]`` and decodes base64 only after validating, so strict
    # validation rejects the base64 it asks for by default from any server: this client is not strict.
    client = openai.AsyncOpenAI(base_url=setup.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def strict(setup: Setup) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        base_url=setup.url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    )
    yield client
    await client.close()


async def test_sdk_default_base64_gives_the_upstream_vectors(
    setup: Setup, client: openai.AsyncOpenAI
) -> None:
    result = await client.embeddings.create(model="emb", input=["hello", "world"])
    assert [d.embedding for d in result.data] == [fake_vector("hello"), fake_vector("world")]
    assert setup.upstream.last.json["encoding_format"] == "base64"


async def test_explicit_float_validates_strictly(setup: Setup, strict: openai.AsyncOpenAI) -> None:
    result = await strict.embeddings.create(model="emb", input="hello", encoding_format="float")
    assert result.data[0].embedding == fake_vector("hello")
    assert result.model == "emb"
    assert result.usage.prompt_tokens == result.usage.total_tokens > 0


async def test_upstream_gets_the_body_with_only_the_model_replaced(
    setup: Setup, strict: openai.AsyncOpenAI
) -> None:
    await strict.embeddings.create(
        model="emb",
        input=[[1, 2, 3]],
        encoding_format="float",
        dimensions=4,
        user="u-1",
        extra_body={"x_extra": 1},
    )
    assert setup.upstream.last.path == "/v1/embeddings"
    assert setup.upstream.last.json == {
        "model": "text-embedding-3-small",
        "input": [[1, 2, 3]],
        "encoding_format": "float",
        "dimensions": 4,
        "user": "u-1",
        "x_extra": 1,
    }


async def test_base64_is_little_endian_float32_on_the_wire(setup: Setup) -> None:
    resp = await post(
        setup.url + "/v1/embeddings", {"model": "emb", "input": "hi", "encoding_format": "base64"}
    )
    raw = base64.b64decode(resp.body["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == fake_vector("hi")


async def test_floats_from_a_provider_are_served_as_base64_when_asked(
    setup: Setup, client: openai.AsyncOpenAI
) -> None:
    resp = await post(
        setup.url + "/v1/embeddings", {"model": "mock-emb", "input": "hi", "encoding_format": "base64"}
    )
    assert isinstance(resp.body["data"][0]["embedding"], str)
    result = await client.embeddings.create(model="mock-emb", input="hi")
    assert result.data[0].embedding == embedding_vector(b"hi", 16)


async def test_mock_vectors_are_deterministic_unit_vectors_of_the_asked_size(
    strict: openai.AsyncOpenAI,
) -> None:
    result = await strict.embeddings.create(
        model="mock-emb", input=["same", "same", "other"], encoding_format="float", dimensions=5
    )
    first, second, third = (d.embedding for d in result.data)
    assert first == second != third
    assert len(first) == 5
    assert abs(sum(v * v for v in first) - 1) < 1e-6


async def test_answers_carry_request_id_and_who_served(setup: Setup) -> None:
    resp = await post(
        setup.url + "/v1/embeddings",
        {"model": "emb", "input": "hi"},
        {"authorization": f"Bearer {GATEWAY_KEY}", "x-request-id": "emb-req-1"},
    )
    assert resp.status == 200
    assert resp.headers["x-request-id"] == "emb-req-1"
    assert (resp.headers["x-waypost-provider"], resp.headers["x-waypost-deployment"]) == ("openai", "emb")


async def test_a_failing_deployment_falls_back(setup: Setup, strict: openai.AsyncOpenAI) -> None:
    setup.upstream.enqueue(Reply(status=500))
    raw = await strict.embeddings.with_raw_response.create(model="flaky", input="hi", encoding_format="float")
    assert raw.headers["x-waypost-deployment"] == "emb"
    assert raw.headers["x-waypost-attempts"] == "2"
    assert [r.json["model"] for r in setup.upstream.requests] == ["primary-up", "text-embedding-3-small"]


async def test_a_model_that_cannot_embed_is_a_400(strict: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not support embeddings"):
        await strict.embeddings.create(model="chat-only", input="hi", encoding_format="float")


async def test_an_unknown_model_is_a_404(strict: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await strict.embeddings.create(model="nope", input="hi", encoding_format="float")


async def test_an_empty_input_is_a_400_naming_it(setup: Setup) -> None:
    resp = await post(setup.url + "/v1/embeddings", {"model": "emb", "input": ""})
    assert resp.status == 400
    assert resp.body["error"]["param"] == "input"
    assert setup.upstream.hits == 0


async def test_a_missing_key_is_a_401(setup: Setup) -> None:
    resp = await post(setup.url + "/v1/embeddings", {"model": "emb", "input": "hi"}, {})
    assert resp.status == 401
    assert resp.body["error"]["type"] == "authentication_error"


async def test_a_body_over_the_limit_is_a_413(setup: Setup) -> None:
    resp = await post(setup.url + "/v1/embeddings", {"model": "emb", "input": "x" * 5000})
    assert resp.status == 413


async def test_upstream_rate_limit_reaches_the_sdk_with_retry_after(
    setup: Setup, strict: openai.AsyncOpenAI
) -> None:
    setup.upstream.enqueue(Reply(status=429, retry_after="12"))
    with pytest.raises(openai.RateLimitError) as err:
        await strict.embeddings.create(model="emb", input="hi", encoding_format="float")
    assert err.value.response.headers["retry-after"] == "12"


async def test_too_few_vectors_from_the_upstream_is_a_502(setup: Setup, strict: openai.AsyncOpenAI) -> None:
    setup.upstream.enqueue(Reply(raw_body=b'{"object": "list", "data": [], "model": "m", "usage": {}}'))
    with pytest.raises(openai.APIStatusError) as err:
        await strict.embeddings.create(model="emb", input=["a", "b"], encoding_format="float")
    assert err.value.status_code == 502
    assert "0 embeddings for 2 inputs" in err.value.message
