"""Upstream failures reach each SDK as the right exception, status and headers."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.e2e.conftest import Gateway, upstream_model
from tests.fakes import Reply

UPSTREAMS = ["openai", "anthropic"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_rate_limit_passes_providers_retry_after(
    gateway: Gateway,
    upstream: str,
    stream: bool,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    gateway.upstream(upstream).enqueue(
        Reply(status=429, retry_after="37"), Reply(status=429, retry_after="37")
    )
    with pytest.raises(openai.RateLimitError) as oai_err:
        await openai_client.chat.completions.create(
            model=upstream_model(upstream), messages=[{"role": "user", "content": "hi"}], stream=stream
        )
    assert oai_err.value.response.headers["retry-after"] == "37"
    with pytest.raises(anthropic.RateLimitError) as ant_err:
        await anthropic_client.messages.create(
            model=upstream_model(upstream),
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            stream=stream,
        )
    assert ant_err.value.response.headers["retry-after"] == "37"


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_overload_is_503_to_openai_and_529_to_anthropic(
    gateway: Gateway,
    upstream: str,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    status = 503 if upstream == "openai" else 529
    gateway.upstream(upstream).enqueue(Reply(status=status), Reply(status=status))
    with pytest.raises(openai.APIStatusError) as oai_err:
        await openai_client.chat.completions.create(
            model=upstream_model(upstream), messages=[{"role": "user", "content": "hi"}]
        )
    assert oai_err.value.status_code == 503
    with pytest.raises(anthropic.APIStatusError) as ant_err:
        await anthropic_client.messages.create(
            model=upstream_model(upstream), max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert ant_err.value.status_code == 529
    assert ant_err.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_upstream_400_is_a_400_with_the_providers_message(
    gateway: Gateway, upstream: str, openai_client: openai.AsyncOpenAI
) -> None:
    gateway.upstream(upstream).enqueue(Reply(status=400, error_message="prompt is too long"))
    with pytest.raises(openai.BadRequestError) as err:
        await openai_client.chat.completions.create(
            model=upstream_model(upstream), messages=[{"role": "user", "content": "hi"}]
        )
    assert "prompt is too long" in err.value.message


@pytest.mark.parametrize("upstream", UPSTREAMS)
async def test_upstream_500_is_a_502(
    gateway: Gateway, upstream: str, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    gateway.upstream(upstream).enqueue(Reply(status=500))
    with pytest.raises(anthropic.APIStatusError) as err:
        await anthropic_client.messages.create(
            model=upstream_model(upstream), max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 502


async def test_unknown_model_is_404_in_both_formats(
    gateway: Gateway, openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(openai.NotFoundError) as oai_err:
        await openai_client.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "hi"}]
        )
    assert oai_err.value.code == "model_not_found"
    with pytest.raises(anthropic.NotFoundError) as ant_err:
        await anthropic_client.messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert ant_err.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


async def test_wrong_gateway_key_is_401_in_both_formats(gateway: Gateway) -> None:
    oai = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="wrong-key-123", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await oai.chat.completions.create(model="via-openai", messages=[{"role": "user", "content": "hi"}])
    ant = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="wrong-key-123", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        await ant.messages.create(
            model="via-openai", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert gateway.openai_upstream.hits == 0
