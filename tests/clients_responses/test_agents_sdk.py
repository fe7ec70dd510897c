"""The OpenAI Agents SDK's agent loop over /v1/responses through the gateway: the fake model calls
the agent's two tools in turn, then answers; the SDK runs the tools and sends their results back."""

from __future__ import annotations

import json

import openai
import pytest

from tests.clients_responses.conftest import Gateway
from tests.clients_responses.tools import ToolLog, agent_with_two_tools, run_agent
from tests.fakes import Reply


def script_two_tools_then_answer(gateway: Gateway) -> None:
    gateway.upstream.enqueue(
        Reply(tool_calls=[("call_a1", "lookup_city", {"name": "Paris"})]),
        Reply(tool_calls=[("call_a2", "get_forecast", {"city": "Paris", "days": 2})]),
        Reply(text="Paris will be sunny for two days."),
    )


@pytest.mark.parametrize("stream", [False, True], ids=["run", "run_streamed"])
async def test_an_agent_calls_two_tools_then_answers(
    client: openai.AsyncOpenAI, gateway: Gateway, stream: bool
) -> None:
    script_two_tools_then_answer(gateway)
    log = ToolLog()

    result = await run_agent(
        agent_with_two_tools(client, gateway.model, log), "Forecast for Paris?", stream=stream
    )

    assert result.final_output == "Paris will be sunny for two days."
    assert log.calls == [("lookup_city", {"name": "Paris"}), ("get_forecast", {"city": "Paris", "days": 2})]
    assert gateway.upstream.hits == 3


async def test_the_last_model_call_carries_both_tool_results(
    client: openai.AsyncOpenAI, gateway: Gateway
) -> None:
    script_two_tools_then_answer(gateway)

    await run_agent(agent_with_two_tools(client, gateway.model), "Forecast for Paris?", stream=False)

    sent = json.dumps(gateway.upstream.last.json)
    assert "Paris is a city in France." in sent
    assert "Paris: sunny for 2 days." in sent
    assert "Forecast for Paris?" in sent
