"""Record what the real Responses API clients send: ``python -m tests.clients_responses.record [NAME...]``.

Each client (the ``openai`` SDK, the Agents SDK, the Codex CLI) is pointed at a loopback ``Recorder``;
the requests it made are written to tests/fixtures/openai_responses/client_<name>.json with their
headers (the key and volatile values replaced by placeholders) and JSON bodies. Nothing leaves the
machine: Codex gets a fresh CODEX_HOME whose config names only the recorder as its provider.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai

from tests.clients_responses.codex import CodexRun, run_codex
from tests.clients_responses.recorder import Recorder, Turn
from tests.clients_responses.tools import agent_with_two_tools, run_agent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai_responses"
KEY = "sk-recorder-key"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


async def record_openai_create(url: str, rec: Recorder) -> None:
    rec.script[:] = [Turn(calls=[("get_weather", {"city": "Paris"})]), Turn(text="It is sunny in Paris.")]
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
        first = await client.responses.create(
            model="gpt-4.1-mini",
            instructions="You are terse.",
            input="What is the weather in Paris?",
            tools=[WEATHER],
            tool_choice="auto",
            parallel_tool_calls=False,
            temperature=0.2,
            max_output_tokens=200,
            metadata={"run": "record"},
            store=True,
        )
        call = next(i for i in first.output if i.type == "function_call")
        await client.responses.create(
            model="gpt-4.1-mini",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}],
            tools=[WEATHER],
            text={"format": {"type": "text"}},
            reasoning={"effort": "low", "summary": "auto"},
            include=["reasoning.encrypted_content"],
            store=False,
        )


async def record_openai_stream(url: str, rec: Recorder) -> None:
    rec.script[:] = [Turn(text='{"city": "Paris", "sky": "sunny"}')]
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "sky": {"type": "string"}},
        "required": ["city", "sky"],
        "additionalProperties": False,
    }
    async with (
        openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client,
        client.responses.stream(
            model="gpt-4.1-mini",
            input=[
                {"role": "developer", "content": "Answer in JSON."},
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            ],
            text={"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}},
            user="user-1",
            top_p=0.9,
            truncation="auto",
        ) as stream,
    ):
        async for _ in stream:
            pass
        await stream.get_final_response()


async def record_agents(url: str, rec: Recorder) -> None:
    rec.script[:] = [
        Turn(calls=[("lookup_city", {"name": "Paris"})]),
        Turn(calls=[("get_forecast", {"city": "Paris", "days": 2})]),
        Turn(text="Paris: sunny for two days."),
    ]
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
        agent = agent_with_two_tools(client, "gpt-4.1-mini")
        await run_agent(agent, "Forecast for Paris?", stream=False)


async def record_agents_stream(url: str, rec: Recorder) -> None:
    await record_agents(url, rec)  # the same script, run streamed
    rec.script[:] = [
        Turn(calls=[("lookup_city", {"name": "Oslo"})]),
        Turn(calls=[("get_forecast", {"city": "Oslo", "days": 1})]),
        Turn(text="Oslo: snow tomorrow."),
    ]
    rec.requests.clear()
    rec._served = 0
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
        agent = agent_with_two_tools(client, "gpt-4.1-mini")
        await run_agent(agent, "Forecast for Oslo?", stream=True)


async def record_codex(url: str, rec: Recorder) -> CodexRun:
    """A model name Codex has no metadata for (a gateway's own name): its fallback tool set."""
    rec.script[:] = [
        Turn(calls=[("exec_command", {"cmd": "echo hello > hello.txt"})]),
        Turn(text="Created hello.txt."),
    ]
    return await run_codex(
        url + "/v1", KEY, "Create a file hello.txt that says hello.", model="gateway-model"
    )


async def record_codex_known_model(url: str, rec: Recorder) -> CodexRun:
    """A model in Codex's own catalogue: its tools come as an ``additional_tools`` input item."""
    rec.script[:] = [Turn(text="Hello.")]
    return await run_codex(url + "/v1", KEY, "Say hello.", model="gpt-6.1-sol")


RECORDINGS: dict[str, Callable[[str, Recorder], Awaitable[Any]]] = {
    "openai_create": record_openai_create,
    "openai_stream": record_openai_stream,
    "agents": record_agents,
    "agents_stream": record_agents_stream,
    "codex": record_codex,
    "codex_known_model": record_codex_known_model,
}


def scrub(value: Any, replacements: dict[str, str]) -> Any:
    """``value`` with each volatile string (temporary paths, session ids) replaced by its placeholder."""
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [scrub(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, replacements) for k, v in value.items()}
    return value


_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


async def record(name: str) -> Path:
    async with Recorder() as rec:
        url = rec.url
        result = await RECORDINGS[name](url, rec)
    replacements = {KEY: "<api-key>", url: "<base-url>", url.removeprefix("http://"): "<host>"}
    if isinstance(result, CodexRun):
        replacements = {str(result.home): "<codex-home>", str(result.cwd): "<cwd>", **replacements}
        if result.returncode != 0:
            raise RuntimeError(f"codex exec failed ({result.returncode}): {result.stderr[-2000:]}")
    requests = []
    for r in rec.requests:
        entry = {"method": r.method, "path": r.path, "headers": r.headers, "body": r.json}
        requests.append(scrub(entry, replacements))
    text = json.dumps({"client": name, "requests": requests}, indent=2, ensure_ascii=False) + "\n"
    # Session and request ids are fresh uuids every run; the fixture keeps their place, not their value.
    ids: dict[str, str] = {}
    text = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"<uuid-{len(ids) + 1}>"), text)
    path = FIXTURES / f"client_{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def main(names: list[str]) -> None:
    for name in names or list(RECORDINGS):
        print(await record(name))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
