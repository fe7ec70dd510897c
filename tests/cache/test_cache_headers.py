"""What a request asks of the cache and what the answer says: X-Cache-Status on every answer,
Cache-Control and X-Waypost-Cache per request, and which requests are cached at all."""

from __future__ import annotations

from typing import Any

from tests.cache.conftest import CALL_MICROS, cache_settings, chat
from tests.control.client import Control, control
from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream


async def test_a_second_identical_request_is_a_hit_and_reaches_no_upstream(
    api: Control, upstream: OpenAIUpstream
) -> None:
    first = await api.post("/v1/chat/completions", chat())
    second = await api.post("/v1/chat/completions", chat())

    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert upstream.hits == 1
    assert second.json()["choices"][0]["message"]["content"] == "The answer is 42."
    assert first.headers["x-waypost-cache-key"] == second.headers["x-waypost-cache-key"]
    assert second.json()["id"] != first.json()["id"]  # each answer its own id


async def test_a_hit_costs_nothing_and_says_so(api: Control) -> None:
    first = await api.post("/v1/chat/completions", chat())
    second = await api.post("/v1/chat/completions", chat())

    assert float(first.headers["x-waypost-cost-usd"]) == CALL_MICROS / 1_000_000
    assert float(second.headers["x-waypost-cost-usd"]) == 0
    assert second.json()["usage"]["cost_usd"] == 0
    # The usage describes the answer, as the first time.
    assert second.json()["usage"]["prompt_tokens"] == first.json()["usage"]["prompt_tokens"]


async def test_a_different_request_is_a_different_entry(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/v1/chat/completions", chat())
    other_text = await api.post("/v1/chat/completions", chat("Another question?"))
    other_model = await api.post("/v1/chat/completions", chat(model="gpt-big"))
    other_limit = await api.post("/v1/chat/completions", chat(max_tokens=99))
    other_field = await api.post("/v1/chat/completions", chat(service_tier="flex"))

    for answer in (other_text, other_model, other_limit, other_field):
        assert answer.headers["x-cache-status"] == "MISS"
    assert upstream.hits == 5


async def test_x_waypost_cache_bypass_neither_reads_nor_stores(
    api: Control, upstream: OpenAIUpstream
) -> None:
    await api.post("/v1/chat/completions", chat())
    bypassed = await api.post("/v1/chat/completions", chat("fresh"), headers={"x-waypost-cache": "bypass"})
    again = await api.post("/v1/chat/completions", chat(), headers={"X-Waypost-Cache": "bypass"})
    after = await api.post("/v1/chat/completions", chat("fresh"))

    assert bypassed.headers["x-cache-status"] == again.headers["x-cache-status"] == "BYPASS"
    assert "x-waypost-cache-key" not in again.headers
    assert after.headers["x-cache-status"] == "MISS"  # the bypassed answer was not stored
    assert upstream.hits == 4


async def test_cache_control_no_store_bypasses(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/v1/chat/completions", chat())
    answer = await api.post("/v1/chat/completions", chat(), headers={"cache-control": "no-store"})

    assert answer.headers["x-cache-status"] == "BYPASS"
    assert upstream.hits == 2


async def test_refresh_goes_upstream_and_replaces_the_entry(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/v1/chat/completions", chat())
    upstream.enqueue(Reply(text="A newer answer.", input_tokens=100, output_tokens=50))
    refreshed = await api.post("/v1/chat/completions", chat(), headers={"x-waypost-cache": "refresh"})
    hit = await api.post("/v1/chat/completions", chat())

    assert refreshed.headers["x-cache-status"] == "MISS"
    assert hit.headers["x-cache-status"] == "HIT"
    assert hit.json()["choices"][0]["message"]["content"] == "A newer answer."
    assert upstream.hits == 2


async def test_cache_control_no_cache_refreshes(api: Control, upstream: OpenAIUpstream) -> None:
    await api.post("/v1/chat/completions", chat())
    answer = await api.post("/v1/chat/completions", chat(), headers={"cache-control": "max-age=0, no-cache"})

    assert answer.headers["x-cache-status"] == "MISS"
    assert upstream.hits == 2


async def test_an_unknown_directive_is_a_400_naming_the_header(
    api: Control, upstream: OpenAIUpstream
) -> None:
    answer = await api.post("/v1/chat/completions", chat(), headers={"x-waypost-cache": "forever"})

    assert answer.status_code == 400
    assert "X-Waypost-Cache" in answer.json()["error"]["message"]
    assert "'forever'" in answer.json()["error"]["message"]
    assert upstream.hits == 0


async def test_sampled_requests_bypass_unless_configured(api: Control, upstream: OpenAIUpstream) -> None:
    warm = chat(temperature=0.7)
    unset = {k: v for k, v in chat().items() if k != "temperature"}

    answers = [await api.post("/v1/chat/completions", body) for body in (warm, warm, unset, unset)]

    assert [a.headers["x-cache-status"] for a in answers] == ["BYPASS"] * 4
    assert upstream.hits == 4


async def test_sampled_requests_are_cached_when_configured(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    async with control(cache_settings(upstream, cache={"sampled": True}, database=database)) as api:
        first = await api.post("/v1/chat/completions", chat(temperature=0.7))
        second = await api.post("/v1/chat/completions", chat(temperature=0.7))

    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert upstream.hits == 1


async def test_a_model_with_ttl_zero_is_never_cached(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = cache_settings(upstream, cache={"model_ttl": {"gpt-big": 0}}, database=database)
    async with control(config) as api:
        answers = [await api.post("/v1/chat/completions", chat(model="gpt-big")) for _ in range(2)]

    assert [a.headers["x-cache-status"] for a in answers] == ["BYPASS", "BYPASS"]
    assert upstream.hits == 2


async def test_several_choices_are_not_cached(api: Control, upstream: OpenAIUpstream) -> None:
    answers = [await api.post("/v1/chat/completions", chat(n=2)) for _ in range(2)]

    assert [a.headers["x-cache-status"] for a in answers] == ["BYPASS", "BYPASS"]


async def test_an_upstream_error_is_not_stored_and_says_miss(api: Control, upstream: OpenAIUpstream) -> None:
    upstream.enqueue(Reply(status=500, error_message="boom"))
    failed = await api.post("/v1/chat/completions", chat())
    retried = await api.post("/v1/chat/completions", chat())

    assert failed.status_code >= 500 and failed.headers["x-cache-status"] == "MISS"
    assert retried.status_code == 200 and retried.headers["x-cache-status"] == "MISS"
    assert upstream.hits == 2


async def test_a_streamed_miss_replays_as_a_stream_and_as_a_body(
    api: Control, upstream: OpenAIUpstream
) -> None:
    streamed = await api.post(
        "/v1/chat/completions", chat(stream=True, stream_options={"include_usage": True})
    )
    replayed = await api.post("/v1/chat/completions", chat(stream=True))
    whole = await api.post("/v1/chat/completions", chat())

    assert streamed.headers["x-cache-status"] == "MISS"
    assert replayed.headers["x-cache-status"] == whole.headers["x-cache-status"] == "HIT"
    assert replayed.headers["content-type"].startswith("text/event-stream")
    assert "The answer" in replayed.text and replayed.text.rstrip().endswith("data: [DONE]")
    assert whole.json()["choices"][0]["message"]["content"] == "The answer is 42."
    assert upstream.hits == 1


async def test_a_request_for_what_a_replay_cannot_carry_is_not_cached(
    api: Control, upstream: OpenAIUpstream
) -> None:
    answers = [await api.post("/v1/chat/completions", chat(logprobs=True)) for _ in range(2)]

    assert [a.headers["x-cache-status"] for a in answers] == ["BYPASS", "BYPASS"]
    assert upstream.hits == 2


async def test_embeddings_are_not_cached(api: Control, upstream: OpenAIUpstream) -> None:
    body = {"model": "gpt", "input": "hello"}
    answers = [await api.post("/v1/embeddings", body) for _ in range(2)]

    assert [a.headers["x-cache-status"] for a in answers] == ["BYPASS", "BYPASS"]
    assert upstream.hits == 2


async def test_with_the_cache_off_no_header_and_no_stage(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    config = cache_settings(upstream, cache={"enabled": False}, database=database)
    async with control(config) as api:
        answer = await api.post("/v1/chat/completions", chat())
        stages = [s.name for s in api.container.pipeline.stages]

    assert "x-cache-status" not in answer.headers
    assert "cache" not in stages and api.container.cache is None


async def test_legacy_completions_are_cached_apart_from_chat(api: Control, upstream: OpenAIUpstream) -> None:
    body = {"model": "gpt", "prompt": "What is the answer?", "max_tokens": 100, "temperature": 0}

    first = await api.post("/v1/completions", body)
    second = await api.post("/v1/completions", body)
    as_chat = await api.post("/v1/chat/completions", chat())

    assert [a.headers["x-cache-status"] for a in (first, second, as_chat)] == ["MISS", "HIT", "MISS"]
    assert second.json()["object"] == "text_completion"
    assert second.json()["choices"][0]["text"] == first.json()["choices"][0]["text"]
    assert upstream.hits == 2


async def test_a_forwarded_beta_header_is_part_of_the_key(
    upstream: OpenAIUpstream, claude_upstream: AnthropicUpstream, database: dict[str, Any]
) -> None:
    body = {
        "model": "claude",
        "max_tokens": 100,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    version = {"anthropic-version": "2023-06-01"}
    async with control(cache_settings(upstream, claude_upstream, database=database)) as api:
        plain = await api.post("/v1/messages", body, headers=version)
        beta = await api.post(
            "/v1/messages", body, headers={**version, "anthropic-beta": "context-1m-2025-08-07"}
        )
        beta_again = await api.post(
            "/v1/messages", body, headers={**version, "anthropic-beta": "context-1m-2025-08-07"}
        )
        other_version = await api.post("/v1/messages", body, headers={"anthropic-version": "2026-10-21"})

    assert [a.headers["x-cache-status"] for a in (plain, beta, beta_again)] == ["MISS", "MISS", "HIT"]
    # The API version shapes the wire format, not the answer: it does not split entries.
    assert other_version.headers["x-cache-status"] == "HIT"
    assert claude_upstream.hits == 2
