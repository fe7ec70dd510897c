"""Upper bounds on request fields, through a real gateway: a request above one is refused with a
400 naming the field, in the caller's format, and the upstream never sees it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from tests.api.client import Response, post
from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.harness import model, serve, settings

HUGE = 1_000_000_000
CEILING = 131072  # limits.max_output_tokens by default
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"


@dataclass
class Setup:
    url: str
    openai: OpenAIUpstream
    anthropic: AnthropicUpstream

    def hits(self) -> int:
        return self.openai.hits + self.anthropic.hits


@pytest.fixture
async def gw(openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream) -> AsyncIterator[Setup]:
    oai, ant = openai_upstream, anthropic_upstream
    config = settings(
        model("gpt", "openai", oai.url, oai.api_key, upstream_model="gpt-up"),
        model("claude", "anthropic", ant.url, ant.api_key, upstream_model="claude-up"),
        model("small", "openai", oai.url, oai.api_key, upstream_model="small-up", max_output_tokens=1000),
        model(
            "short",
            "anthropic",
            ant.url,
            ant.api_key,
            upstream_model="short-up",
            max_output_tokens=1000,
            fallbacks=["claude"],
        ),
        # The output ceiling keeps its default; the counts are lowered to keep the bodies small.
        limits={"max_choices": 4, "max_messages": 6, "max_tools": 3, "max_stop_sequences": 2},
    )
    async with serve(config) as url:
        yield Setup(url, oai, ant)


def openai_chat(name: str, **extra: Any) -> dict[str, Any]:
    return {"model": name, "messages": [{"role": "user", "content": "hi"}], **extra}


def anthropic_messages(name: str, **extra: Any) -> dict[str, Any]:
    return {"model": name, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}], **extra}


def openai_refusal(resp: Response, param: str) -> str:
    """The message of an OpenAI-format 400 that names ``param``."""
    assert resp.status == 400, resp.body
    error = resp.body["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    return str(error["message"])


def anthropic_refusal(resp: Response) -> str:
    assert resp.status == 400, resp.body
    assert resp.body["type"] == "error"
    assert resp.body["error"]["type"] == "invalid_request_error"
    return str(resp.body["error"]["message"])


# -- completions per request -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_n_above_the_limit_never_reaches_the_upstream(gw: Setup, stream: bool) -> None:
    resp = await post(gw.url + CHAT, openai_chat("gpt", n=1000, stream=stream))
    message = openai_refusal(resp, "n")
    assert message == "n: the request asks for 1000 completions, above the limit of 4."
    assert gw.hits() == 0


async def test_n_within_the_limit_reaches_the_upstream_as_sent(gw: Setup) -> None:
    resp = await post(gw.url + CHAT, openai_chat("gpt", n=4))
    assert resp.status == 200, resp.body
    assert gw.openai.last.json["n"] == 4


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 5}, "n"),
        ({"n": 2, "best_of": 8}, "best_of"),
        ({"prompt": ["a", "b", "c", "d", "e"]}, "prompt"),
    ],
)
async def test_legacy_completions_count_n_best_of_and_prompts(
    gw: Setup, extra: dict[str, Any], param: str
) -> None:
    resp = await post(gw.url + COMPLETIONS, {"model": "gpt", "prompt": "p", **extra})
    assert "above the limit of 4" in openai_refusal(resp, param)
    assert gw.hits() == 0


@pytest.mark.parametrize(("field", "value"), [("logprobs", 6), ("best_of", 21)])
async def test_legacy_completions_keep_the_apis_own_bounds(gw: Setup, field: str, value: int) -> None:
    resp = await post(gw.url + COMPLETIONS, {"model": "gpt", "prompt": "p", field: value})
    openai_refusal(resp, field)
    assert gw.hits() == 0


async def test_top_logprobs_above_twenty_never_reaches_the_upstream(gw: Setup) -> None:
    resp = await post(gw.url + CHAT, openai_chat("gpt", logprobs=True, top_logprobs=21))
    openai_refusal(resp, "top_logprobs")
    assert gw.hits() == 0


# -- output tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt", "claude"])
@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_openai_chat_output_above_the_ceiling_is_refused(
    gw: Setup, name: str, field: str, stream: bool
) -> None:
    resp = await post(gw.url + CHAT, openai_chat(name, stream=stream, **{field: HUGE}))
    message = openai_refusal(resp, field)
    assert message == f"{field}: {HUGE} exceeds the limit of {CEILING} for model '{name}'."
    assert gw.hits() == 0


async def test_a_huge_max_tokens_beside_a_small_max_completion_tokens_is_refused(gw: Setup) -> None:
    # The fast path forwards both, and a server that knows only max_tokens would honour that one.
    resp = await post(gw.url + CHAT, openai_chat("gpt", max_completion_tokens=10, max_tokens=HUGE))
    openai_refusal(resp, "max_tokens")
    assert gw.hits() == 0


@pytest.mark.parametrize("name", ["claude", "gpt"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_anthropic_max_tokens_above_the_ceiling_is_refused_in_anthropic_format(
    gw: Setup, name: str, stream: bool
) -> None:
    body = anthropic_messages(name, stream=stream)
    body["max_tokens"] = HUGE
    resp = await post(gw.url + MESSAGES, body)
    assert anthropic_refusal(resp) == f"max_tokens: {HUGE} exceeds the limit of {CEILING} for model '{name}'."
    assert gw.hits() == 0


async def test_a_thinking_budget_above_the_ceiling_is_refused(gw: Setup) -> None:
    body = anthropic_messages("claude", thinking={"type": "enabled", "budget_tokens": HUGE})
    assert anthropic_refusal(await post(gw.url + MESSAGES, body)).startswith("thinking.budget_tokens: ")
    assert gw.hits() == 0


async def test_legacy_completions_max_tokens_above_the_ceiling_is_refused(gw: Setup) -> None:
    resp = await post(gw.url + COMPLETIONS, {"model": "gpt", "prompt": "p", "max_tokens": HUGE})
    openai_refusal(resp, "max_tokens")
    assert gw.hits() == 0


async def test_a_models_own_maximum_is_its_limit(gw: Setup) -> None:
    over = await post(gw.url + CHAT, openai_chat("small", max_tokens=1001))
    assert (
        openai_refusal(over, "max_tokens") == "max_tokens: 1001 exceeds the limit of 1000 for model 'small'."
    )
    assert gw.hits() == 0
    at = await post(gw.url + CHAT, openai_chat("small", max_tokens=1000))
    assert at.status == 200, at.body
    assert gw.openai.last.json["max_tokens"] == 1000


async def test_a_deployment_below_the_request_is_skipped_for_its_fallback(gw: Setup) -> None:
    resp = await post(gw.url + MESSAGES, {**anthropic_messages("short"), "max_tokens": 2000})
    assert resp.status == 200, resp.body
    assert resp.headers["x-waypost-deployment"] == "claude"
    assert gw.anthropic.hits == 1
    assert gw.anthropic.last.json["model"] == "claude-up"


async def test_a_models_default_max_tokens_stays_within_its_maximum(gw: Setup) -> None:
    # No max_tokens from an OpenAI client: the Anthropic upstream needs one, and 4096 is too many.
    resp = await post(gw.url + CHAT, openai_chat("short"))
    assert resp.status == 200, resp.body
    assert gw.anthropic.last.json["max_tokens"] == 1000


def test_a_default_max_tokens_above_the_models_maximum_is_a_configuration_error() -> None:
    entry = model("m", "mock", max_output_tokens=4096, default_max_tokens=8192)
    with pytest.raises(
        ValidationError, match=r"default_max_tokens \(8192\) is above max_output_tokens \(4096\)"
    ):
        settings(entry)


# -- counts --------------------------------------------------------------------------------------------


def turns(count: int) -> list[dict[str, Any]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": "x"} for i in range(count)]


def function_tools(count: int) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": f"f{i}"}} for i in range(count)]


def anthropic_tools(count: int) -> list[dict[str, Any]]:
    return [{"name": f"f{i}", "input_schema": {"type": "object"}} for i in range(count)]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"messages": turns(7)}, "messages"),
        ({"tools": function_tools(4)}, "tools"),
        ({"functions": [{"name": f"f{i}"} for i in range(4)]}, "functions"),
        ({"stop": ["a", "b", "c"]}, "stop"),
    ],
)
async def test_openai_chat_counts_above_their_limits_are_refused(
    gw: Setup, extra: dict[str, Any], param: str
) -> None:
    resp = await post(gw.url + CHAT, openai_chat("gpt", **extra))
    assert "exceed the limit of" in openai_refusal(resp, param)
    assert gw.hits() == 0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"messages": turns(7)}, "messages"),
        ({"tools": anthropic_tools(4)}, "tools"),
        ({"stop_sequences": ["a", "b", "c"]}, "stop_sequences"),
    ],
)
async def test_anthropic_counts_above_their_limits_are_refused(
    gw: Setup, extra: dict[str, Any], field: str
) -> None:
    resp = await post(gw.url + MESSAGES, anthropic_messages("claude", **extra))
    assert anthropic_refusal(resp).startswith(f"{field}: ")
    assert gw.hits() == 0


async def test_counts_at_their_limits_pass(gw: Setup) -> None:
    body = anthropic_messages(
        "claude", messages=turns(5), tools=anthropic_tools(3), stop_sequences=["a", "b"]
    )
    resp = await post(gw.url + MESSAGES, body)
    assert resp.status == 200, resp.body
    assert len(gw.anthropic.last.json["tools"]) == 3


# -- embeddings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"input": ["x"] * 2049}, "input"),
        ({"input": [[1, 2]] * 2049}, "input"),
        ({"input": "x", "dimensions": 100_000}, "dimensions"),
    ],
)
async def test_embeddings_above_their_limits_never_reach_the_upstream(
    gw: Setup, extra: dict[str, Any], param: str
) -> None:
    resp = await post(gw.url + EMBEDDINGS, {"model": "gpt", **extra})
    openai_refusal(resp, param)
    assert gw.hits() == 0


async def test_embeddings_at_openais_limit_of_2048_inputs_pass(gw: Setup) -> None:
    resp = await post(gw.url + EMBEDDINGS, {"model": "gpt", "input": ["x"] * 2048})
    assert resp.status == 200, resp.body
    assert len(resp.body["data"]) == 2048
