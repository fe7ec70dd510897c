"""POST /classify, /plan and /embed through a real gateway: JSON results with what the call cost,
one retry for an unusable answer, routing and errors, in both spellings (Waypost's and the
original task API's) and their two answer shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.client import Response, post
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.fakes.openai_endpoints import fake_vector
from tests.harness import GATEWAY_KEY, model, serve, settings

PRICES = {"input": 2.0, "output": 8.0}


@dataclass
class Setup:
    url: str
    openai_upstream: OpenAIUpstream
    anthropic_upstream: AnthropicUpstream

    async def call(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Response:
        return await post(self.url + path, body, headers)


@pytest.fixture
async def setup(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> AsyncIterator[Setup]:
    oai, ant = openai_upstream, anthropic_upstream
    config = settings(
        model("gpt", "openai", oai.url, oai.api_key, upstream_model="gpt-up", prices=PRICES),
        model("claude", "anthropic", ant.url, ant.api_key, upstream_model="claude-up"),
        model("primary", "openai", oai.url, oai.api_key, upstream_model="primary-up", fallbacks=["claude"]),
        model(
            "emb",
            "openai",
            oai.url,
            oai.api_key,
            upstream_model="emb-up",
            prices={"input": 0.02, "output": 0},
        ),
        routing={"default_model": "gpt"},
    )
    async with serve(config) as url:
        yield Setup(url, oai, ant)


def system_text(body: dict[str, Any]) -> str:
    """The system prompt an upstream received, in either format."""
    if "system" in body:
        system = body["system"]
        return system if isinstance(system, str) else "\n".join(b["text"] for b in system)
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")


# -- /classify ----------------------------------------------------------------------------------------


async def test_classify_returns_the_models_json_and_what_the_call_cost(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='{"label": "spam"}', input_tokens=1000, output_tokens=50))
    resp = await setup.call("/classify", {"model": "gpt", "input": "BUY NOW", "labels": ["spam", "ham"]})
    assert resp.status == 200
    assert resp.body["result"] == {"label": "spam"}
    call = resp.body["call"]
    assert {k: call[k] for k in ("provider", "model", "deployment", "input_tokens", "output_tokens")} == {
        "provider": "openai",
        "model": "gpt-up",
        "deployment": "gpt",
        "input_tokens": 1000,
        "output_tokens": 50,
    }
    assert call["cost_usd"] == 0.0024  # 1,000 x $2 + 50 x $8 per million
    assert call["attempts"] == 1
    assert call["latency_ms"] >= 0
    assert resp.headers["x-waypost-deployment"] == "gpt"


async def test_classify_asks_for_json_naming_the_labels(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='{"label": "ham"}'))
    await setup.call(
        "/classify",
        {"model": "gpt", "input": "hello mum", "labels": ["spam", "ham"], "system": "Be strict."},
    )
    body = setup.openai_upstream.last.json
    # Providers with structured output enforce the label set through the schema.
    schema = body["response_format"]["json_schema"]["schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert schema["properties"]["label"]["enum"] == ["spam", "ham"]
    assert system_text(body).startswith("Be strict.")
    assert '"spam", "ham"' in system_text(body)
    assert body["messages"][-1] == {"role": "user", "content": "hello mum"}


async def test_classify_works_with_a_provider_without_json_mode(setup: Setup) -> None:
    setup.anthropic_upstream.enqueue(Reply(text='{"label": "ham", "confidence": 0.9}'))
    resp = await setup.call("/classify", {"model": "claude", "input": {"subject": "hi"}})
    assert resp.body["result"] == {"label": "ham", "confidence": 0.9}
    assert resp.body["call"]["cost_usd"] is None  # no prices configured for this model
    sent = setup.anthropic_upstream.last.json
    assert "JSON" in system_text(sent)
    assert sent["messages"][0]["content"][0]["text"] == '{"subject":"hi"}'


async def test_an_answer_in_a_code_fence_is_accepted(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='```json\n{"label": "spam"}\n```'))
    resp = await setup.call("/classify", {"model": "gpt", "input": "x", "labels": ["spam"]})
    assert resp.body["result"] == {"label": "spam"}


async def test_invalid_json_is_retried_once_showing_the_model_its_answer(setup: Setup) -> None:
    setup.openai_upstream.enqueue(
        Reply(text="It is spam.", input_tokens=100, output_tokens=4),
        Reply(text='{"label": "spam"}', input_tokens=120, output_tokens=5),
    )
    resp = await setup.call("/classify", {"model": "gpt", "input": "x", "labels": ["spam", "ham"]})
    assert resp.status == 200
    assert resp.body["result"] == {"label": "spam"}
    assert (resp.body["call"]["attempts"], resp.body["call"]["input_tokens"]) == (2, 220)
    assert resp.body["call"]["output_tokens"] == 9
    retry = setup.openai_upstream.last.json["messages"]
    assert retry[-2] == {"role": "assistant", "content": "It is spam."}
    assert "not valid JSON" in retry[-1]["content"]


async def test_a_label_outside_the_list_counts_as_unusable(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='{"label": "eggs"}'), Reply(text='{"label": "eggs"}'))
    resp = await setup.call("/classify", {"model": "gpt", "input": "x", "labels": ["spam", "ham"]})
    assert resp.status == 502
    assert "label 'eggs' is not one of ['spam', 'ham']" in resp.body["error"]["message"]
    assert setup.openai_upstream.hits == 2


async def test_a_second_invalid_answer_is_a_502_naming_the_problem(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text="nope"), Reply(text="still nope"))
    resp = await setup.call("/classify", {"model": "gpt", "input": "x"})
    assert resp.status == 502
    assert resp.body["error"]["type"] == "upstream_error"
    message = resp.body["error"]["message"]
    assert "did not answer with usable JSON in 2 calls" in message
    assert "not valid JSON" in message and "'still nope'" in message


async def test_fallbacks_apply(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(status=500))
    setup.anthropic_upstream.enqueue(Reply(text='{"label": "ham"}'))
    resp = await setup.call("/classify", {"model": "primary", "input": "x"})
    assert resp.status == 200
    call = resp.body["call"]
    assert (call["provider"], call["deployment"], call["attempts"]) == ("anthropic", "claude", 2)


# -- /plan --------------------------------------------------------------------------------------------


async def test_plan_returns_the_plan_object(setup: Setup) -> None:
    plan = {"steps": [{"do": "search"}, {"do": "answer"}]}
    setup.openai_upstream.enqueue(Reply(text=json.dumps(plan)))
    resp = await setup.call(
        "/plan", {"model": "gpt", "context": "Find flights to Oslo", "system": "Plan trips."}
    )
    assert resp.body["result"] == plan
    sent = setup.openai_upstream.last.json
    assert system_text(sent).startswith("Plan trips.")
    assert sent["messages"][-1]["content"] == "Find flights to Oslo"


async def test_a_plan_that_is_not_an_object_is_retried(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='["search", "answer"]'), Reply(text='{"steps": ["search"]}'))
    resp = await setup.call("/plan", {"model": "gpt", "context": {"goal": "x"}})
    assert resp.body["result"] == {"steps": ["search"]}
    assert "not an object" in setup.openai_upstream.last.json["messages"][-1]["content"]


# -- /embed -------------------------------------------------------------------------------------------


async def test_embed_returns_one_vector_per_input(setup: Setup) -> None:
    resp = await setup.call("/embed", {"model": "emb", "input": ["a", "b"]})
    assert resp.body["result"] == {"vectors": [fake_vector("a"), fake_vector("b")]}
    assert setup.openai_upstream.last.json == {
        "model": "emb-up",
        "input": ["a", "b"],
        "encoding_format": "float",
    }


async def test_embed_of_one_text_reports_its_cost(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(input_tokens=500))
    resp = await setup.call("/embed", {"model": "emb", "input": "hello", "dimensions": 4})
    assert resp.body["result"] == {"vectors": [fake_vector("hello", 4)]}
    call = resp.body["call"]
    assert (call["input_tokens"], call["output_tokens"], call["cost_usd"]) == (500, 0, 0.00001)


async def test_embed_with_a_model_that_cannot_embed_is_a_400(setup: Setup) -> None:
    resp = await setup.call("/embed", {"model": "claude", "input": "x"})
    assert resp.status == 400
    assert "does not support embeddings" in resp.body["error"]["message"]


# -- the original task API's spelling ---------------------------------------------------------------

AI_CALL_LOG_KEYS = {
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost_microcents",
    "latency_ms",
    "success",
}


async def test_classify_with_prompt_answers_in_the_original_shape(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='{"label": "spam"}', input_tokens=1000, output_tokens=50))
    # The original clients name no model: the gateway's default (routing.default_model) serves.
    resp = await setup.call("/classify", {"prompt": "BUY NOW", "labels": ["spam", "ham"]})
    assert resp.status == 200
    assert set(resp.body) == {"result", "ai_call_log"}
    assert resp.body["result"] == {"label": "spam"}
    log = resp.body["ai_call_log"]
    assert set(log) == AI_CALL_LOG_KEYS
    assert {k: log[k] for k in AI_CALL_LOG_KEYS - {"latency_ms"}} == {
        "provider": "openai",
        "model": "gpt-up",
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "cost_microcents": 240_000,  # $0.0024 in millionths of a cent
        "success": True,
    }
    assert isinstance(log["latency_ms"], int) and log["latency_ms"] >= 0
    assert resp.headers["x-waypost-deployment"] == "gpt"
    sent = setup.openai_upstream.last.json
    assert sent["model"] == "gpt-up"
    assert sent["messages"][-1] == {"role": "user", "content": "BUY NOW"}


async def test_classify_with_system_prompt_puts_it_before_the_instruction(setup: Setup) -> None:
    setup.anthropic_upstream.enqueue(Reply(text='{"label": "ham"}'))
    resp = await setup.call(
        "/classify", {"model": "claude", "prompt": "hello mum", "system_prompt": "Be strict."}
    )
    assert resp.body["result"] == {"label": "ham"}
    assert resp.body["ai_call_log"]["cost_microcents"] is None  # no prices: the cost is unknown
    assert resp.body["ai_call_log"]["provider"] == "anthropic"
    assert system_text(setup.anthropic_upstream.last.json).startswith("Be strict.")


async def test_plan_with_system_prompt_answers_in_the_original_shape(setup: Setup) -> None:
    plan = {"steps": ["search"]}
    setup.openai_upstream.enqueue(
        Reply(text='["search"]', input_tokens=100, output_tokens=3),
        Reply(text=json.dumps(plan), input_tokens=130, output_tokens=6),
    )
    resp = await setup.call("/plan", {"context": "Find flights to Oslo", "system_prompt": "Plan trips."})
    assert resp.status == 200
    assert resp.body["result"] == plan
    log = resp.body["ai_call_log"]
    # Both model calls add up, as in Waypost's shape.
    assert (log["prompt_tokens"], log["completion_tokens"]) == (230, 9)
    assert log["cost_microcents"] == round((230 * 2.0 + 9 * 8.0) / 1e6 * 1e8)
    assert system_text(setup.openai_upstream.last.json).startswith("Plan trips.")


async def test_plan_without_a_model_uses_the_default_and_keeps_waypost_s_shape(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='{"steps": []}'))
    resp = await setup.call("/plan", {"context": "x", "system": "Plan."})
    assert set(resp.body) == {"result", "call"}
    assert resp.body["call"]["deployment"] == "gpt"


async def test_embed_with_text_answers_in_the_original_shape(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(input_tokens=500))
    resp = await setup.call("/embed", {"model": "emb", "text": "hello", "dimensions": 4})
    assert resp.status == 200
    log = resp.body.pop("ai_call_log")
    assert resp.body == {"embeddings": [fake_vector("hello", 4)], "model": "emb", "dimensions": 4}
    assert set(log) == AI_CALL_LOG_KEYS
    assert (log["model"], log["prompt_tokens"], log["completion_tokens"]) == ("emb-up", 500, 0)
    assert log["cost_microcents"] == 1000  # 500 tokens at $0.02 per million: $0.00001
    assert setup.openai_upstream.last.json["input"] == ["hello"]


async def test_embed_with_a_list_of_texts(setup: Setup) -> None:
    resp = await setup.call("/embed", {"model": "emb", "text": ["a", "b"]})
    assert resp.body["embeddings"] == [fake_vector("a"), fake_vector("b")]
    assert resp.body["dimensions"] == len(fake_vector("a"))


async def test_a_body_mixing_the_spellings_is_a_400_naming_both(setup: Setup) -> None:
    resp = await setup.call("/plan", {"context": "x", "system": "a", "system_prompt": "b"})
    assert resp.status == 400
    message = resp.body["error"]["message"]
    assert "mixes two spellings" in message
    assert "system (Waypost's)" in message and "system_prompt (the original task API's)" in message


# -- bad requests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/classify", {"model": "", "input": "x"}, "model"),
        ("/classify", {"model": "gpt"}, "input"),
        ("/classify", {"model": "gpt", "prompt": "x", "input": "y"}, "prompt"),
        ("/classify", {"prompt": "x", "system": "Be strict."}, "prompt"),
        ("/classify", {"input": "x", "system_prompt": "Be strict."}, "system_prompt"),
        ("/classify", {"system_prompt": "Be strict."}, "input"),
        ("/classify", {"model": "gpt", "input": "x", "labels": []}, "labels"),
        ("/classify", {"model": "gpt", "input": "x", "lables": ["a"]}, "lables"),
        ("/plan", {"model": "gpt"}, "context"),
        ("/plan", {"model": "gpt", "context": "x", "system": 3}, "system"),
        ("/plan", {"context": "x", "system_prompt": 3}, "system_prompt"),
        ("/plan", {"context": "x", "system": "a", "system_prompt": "b"}, "system_prompt"),
        ("/embed", {"input": "x"}, "model"),
        ("/embed", {"model": "emb", "text": ""}, "text"),
        ("/embed", {"model": "emb", "text": "x", "input": "x"}, "text"),
        ("/embed", {"model": "emb"}, "input"),
        ("/embed", {"model": "emb", "input": []}, "input"),
        ("/embed", {"model": "emb", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
async def test_bad_requests_are_400s_naming_the_field(setup: Setup, path: str, body: Any, param: str) -> None:
    resp = await setup.call(path, body)
    assert resp.status == 400
    assert resp.body["error"]["param"] == param
    assert setup.openai_upstream.hits == 0


@pytest.mark.parametrize("path", ["/classify", "/plan", "/embed"])
async def test_task_endpoints_need_the_gateway_key(setup: Setup, path: str) -> None:
    resp = await setup.call(path, {"model": "gpt", "input": "x"}, {"authorization": "Bearer wrong-key-123"})
    assert resp.status == 401
    assert resp.body["error"]["type"] == "authentication_error"


async def test_an_unknown_model_is_a_404(setup: Setup) -> None:
    resp = await setup.call("/classify", {"model": "nope", "input": "x"})
    assert resp.status == 404
    assert resp.body["error"]["code"] == "model_not_found"


async def test_task_answers_carry_the_request_id(setup: Setup) -> None:
    setup.openai_upstream.enqueue(Reply(text='{"label": "a"}'))
    resp = await setup.call(
        "/classify",
        {"model": "gpt", "input": "x"},
        {"authorization": f"Bearer {GATEWAY_KEY}", "x-request-id": "t-1"},
    )
    assert resp.headers["x-request-id"] == "t-1"
