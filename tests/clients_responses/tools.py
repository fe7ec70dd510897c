"""The Agents SDK agent the client tests run: two function tools, whose calls it logs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import openai
from agents import Agent, ModelSettings, OpenAIResponsesModel, RunConfig, Runner, RunResult, function_tool
from agents.result import RunResultStreaming


@dataclass
class ToolLog:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def agent_with_two_tools(client: openai.AsyncOpenAI, model: str, log: ToolLog | None = None) -> Agent[None]:
    """An agent on ``client``'s /v1/responses with ``lookup_city`` and ``get_forecast``."""
    calls = log if log is not None else ToolLog()

    @function_tool
    def lookup_city(name: str) -> str:
        """Find a city by name; returns its country."""
        calls.calls.append(("lookup_city", {"name": name}))
        return f"{name} is a city in France."

    @function_tool
    def get_forecast(city: str, days: int) -> str:
        """The weather forecast of a city for some days."""
        calls.calls.append(("get_forecast", {"city": city, "days": days}))
        return f"{city}: sunny for {days} days."

    return Agent(
        name="forecaster",
        instructions="Look the city up, then get its forecast, then answer in one sentence.",
        model=OpenAIResponsesModel(model=model, openai_client=client),
        model_settings=ModelSettings(temperature=0.0, parallel_tool_calls=False),
        tools=[lookup_city, get_forecast],
    )


async def run_agent(agent: Agent[None], prompt: str, *, stream: bool) -> RunResult | RunResultStreaming:
    """Run the agent loop to its final answer, with tracing off (it would export to OpenAI)."""
    config = RunConfig(tracing_disabled=True)
    if not stream:
        return await Runner.run(agent, prompt, run_config=config, max_turns=6)
    result = Runner.run_streamed(agent, prompt, run_config=config, max_turns=6)
    async for _ in result.stream_events():
        pass
    return result
