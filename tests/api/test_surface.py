"""The HTTP surface: bodies, errors, model list, health, request ids, open mode, the mock provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.harness import GATEWAY_KEY, model, serve, settings

FIXTURES = Path(__file__).parent.parent / "fixtures"
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
ANTHROPIC_HEADERS = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture
async def url() -> AsyncIterator[str]:
    config = settings(
        model("echo", "mock"),
        model("scripted", "mock", mock={"reply": "fixed answer", "chunks": 3}),
        model("agent", "mock", mock={"tool_arguments": {"city": "Oslo"}}),
        server={"max_body_bytes": 4096},
    )
    async with serve(config) as base:
        yield base


async def post(
    url: str, path: str, body: Any, headers: dict[str, str] | None = None, *, raw: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as session:
        data = raw if raw is not None else json.dumps(body).encode()
        hdrs = {"content-type": "application/json", **(AUTH if headers is None else headers)}
        async with session.post(url + path, data=data, headers=hdrs) as resp:
            text = await resp.read()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, parsed


async def get(url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as session, session.get(url + path, headers=headers or AUTH) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.json()


# -- bad input ------------------------------------------------------------------------------------


async def test_malformed_json_is_400_in_openai_format(url: str) -> None:
    status, _, body = await post(url, "/v1/chat/completions", None, raw=b'{"model": "echo", ')
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in body["error"]["message"]


async def test_malformed_json_is_400_in_anthropic_format(url: str) -> None:
    status, _, body = await post(url, "/v1/messages", None, ANTHROPIC_HEADERS, raw=b"[1,")
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"


async def test_empty_body_is_400(url: str) -> None:
    status, _, body = await post(url, "/v1/chat/completions", None, raw=b"")
    assert status == 400
    assert "empty" in body["error"]["message"]


async def test_missing_field_is_400_naming_it(url: str) -> None:
    status, _, body = await post(url, "/v1/chat/completions", {"model": "echo"})
    assert status == 400
    assert "messages" in body["error"]["message"]
    assert body["error"]["param"] == "messages"


async def test_anthropic_missing_max_tokens_is_400_naming_it(url: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    status, _, err = await post(url, "/v1/messages", body, ANTHROPIC_HEADERS)
    assert status == 400
    assert "max_tokens" in err["error"]["message"]


async def test_body_over_limit_is_413(url: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "x" * 5000}]}
    status, _, err = await post(url, "/v1/chat/completions", body)
    assert status == 413
    assert "limit" in err["error"]["message"]
    status, _, err = await post(url, "/v1/messages", {**body, "max_tokens": 5}, ANTHROPIC_HEADERS)
    assert status == 413
    assert err["error"]["type"] == "request_too_large"


async def test_unknown_route_is_json_404(url: str) -> None:
    status, _, body = await post(url, "/v1/nothing-here", {})
    assert status == 404
    assert body["error"]["type"] == "invalid_request_error"


async def test_missing_key_is_401_naming_how_to_send_it(url: str) -> None:
    status, _, body = await post(url, "/v1/chat/completions", {"model": "echo", "messages": []}, {})
    assert status == 401
    assert "Authorization: Bearer" in body["error"]["message"]


# -- keys, ids, headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"authorization": f"Bearer {GATEWAY_KEY}"}, {"x-api-key": GATEWAY_KEY}, {"api-key": GATEWAY_KEY}],
)
async def test_key_accepted_in_any_of_the_usual_headers(url: str, headers: dict[str, str]) -> None:
    body = {"model": "echo", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = await post(url, "/v1/messages", body, {**headers, "anthropic-version": "2026-10-21"})
    assert status == 200


async def test_messages_accepts_beta_query_and_any_version(url: str) -> None:
    body = {"model": "echo", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    headers = {**ANTHROPIC_HEADERS, "anthropic-version": "2099-01-01", "anthropic-beta": "some-beta-2025"}
    status, _, answer = await post(url, "/v1/messages?beta=true", body, headers)
    assert status == 200
    assert answer["content"][0]["text"] == "You said: hi"


async def test_request_id_is_echoed(url: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    _, headers, _ = await post(url, "/v1/chat/completions", body, {**AUTH, "x-request-id": "req-42.abc"})
    assert headers["x-request-id"] == "req-42.abc"


async def test_request_id_is_generated_when_absent_or_unsafe(url: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    _, headers, _ = await post(
        url, "/v1/chat/completions", body, {**AUTH, "x-request-id": "bad id\twith spaces"}
    )
    assert len(headers["x-request-id"]) == 32
    assert headers["x-request-id"] != "bad id\twith spaces"


async def test_error_responses_carry_request_id(url: str) -> None:
    _, headers, _ = await post(url, "/v1/chat/completions", {"model": "ghost", "messages": []})
    assert len(headers["x-request-id"]) == 32


async def test_response_names_provider_and_deployment(url: str) -> None:
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    _, headers, _ = await post(url, "/v1/chat/completions", body)
    assert headers["x-waypost-provider"] == "mock"
    assert headers["x-waypost-deployment"] == "echo"


# -- models and health ----------------------------------------------------------------------------


async def test_models_list_validates_with_openai_sdk(url: str) -> None:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY, _strict_response_validation=True)
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == ["echo", "scripted", "agent"]
    assert all(m.created > 0 and m.owned_by == "mock" for m in models)


async def test_models_list_in_anthropic_shape_for_anthropic_clients(url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=GATEWAY_KEY, _strict_response_validation=True)
    page = await client.models.list()
    assert [m.id for m in page.data] == ["echo", "scripted", "agent"]


async def test_models_list_requires_a_key(url: str) -> None:
    status, _, body = await get(url, "/v1/models", {"x-other": "1"})
    assert status == 401
    assert body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready"])
async def test_health_endpoints_answer_without_a_key(url: str, path: str) -> None:
    status, _, body = await get(url, path, {"x-other": "1"})
    assert status == 200
    assert body["status"] in ("ok", "alive", "ready")


async def test_health_shows_the_event_loops_lag(url: str) -> None:
    status, _, body = await get(url, "/health", {})
    assert status == 200
    assert set(body["event_loop"]) == {
        "lag_ms",
        "recent_max_lag_ms",
        "max_lag_ms",
        "stalls",
        "stall_threshold_ms",
    }
    assert body["event_loop"]["stall_threshold_ms"] == 50.0


async def test_open_mode_on_loopback_needs_no_key() -> None:
    async with serve(settings(model("echo", "mock"), api_keys=[])) as base:
        status, _, body = await post(
            base,
            "/v1/chat/completions",
            {"model": "echo", "messages": [{"role": "user", "content": "x"}]},
            {},
        )
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "You said: x"


# -- the mock provider ----------------------------------------------------------------------------


async def test_mock_echoes_and_scripts(url: str) -> None:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY, _strict_response_validation=True)
    echoed = await client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "ping"}]
    )
    assert echoed.choices[0].message.content == "You said: ping"
    scripted = await client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "x"}]
    )
    assert scripted.choices[0].message.content == "fixed answer"


async def test_mock_streams_in_pieces(url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=GATEWAY_KEY, _strict_response_validation=True)
    deltas = []
    async with client.messages.stream(
        model="scripted", max_tokens=50, messages=[{"role": "user", "content": "x"}]
    ) as s:
        async for text in s.text_stream:
            deltas.append(text)
        final = await s.get_final_message()
    assert "".join(deltas) == "fixed answer"
    assert len(deltas) == 3
    assert final.stop_reason == "end_turn"


async def test_mock_calls_a_tool_then_reports_its_result(url: str) -> None:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=GATEWAY_KEY, _strict_response_validation=True)
    tools = [
        {
            "name": "weather",
            "description": "w",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    first = await client.messages.create(
        model="agent",
        max_tokens=50,
        tools=tools,
        messages=[{"role": "user", "content": "weather?"}],  # type: ignore[arg-type]
    )
    call = first.content[0]
    assert call.type == "tool_use" and call.input == {"city": "Oslo"}
    assert first.stop_reason == "tool_use"
    second = await client.messages.create(
        model="agent",
        max_tokens=50,
        tools=tools,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": call.id, "name": "weather", "input": {"city": "Oslo"}}
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "rain"}]},
        ],
    )
    assert second.content[0].type == "text" and second.content[0].text == "Tool weather returned: rain"


async def test_mock_streamed_tool_call_assembles_arguments(url: str) -> None:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=GATEWAY_KEY, _strict_response_validation=True)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    async with client.chat.completions.stream(
        model="agent",
        tools=tools,
        messages=[{"role": "user", "content": "x"}],  # type: ignore[arg-type]
    ) as s:
        final = await s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert json.loads(call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"


# -- real-client shapes ---------------------------------------------------------------------------


async def test_claude_code_shaped_request_is_accepted(url: str) -> None:
    body = json.loads((FIXTURES / "anthropic" / "request_claude_code.json").read_text())
    body["model"] = "echo"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/v1/messages?beta=true",
            json=body,
            headers={
                "authorization": f"Bearer {GATEWAY_KEY}",
                "anthropic-version": "2023-06-01",
                "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            },
        ) as resp,
    ):
        raw = await resp.read()
    assert resp.status == 200, raw[:500]
    events = [line[7:] for line in raw.decode().splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"


async def test_mock_answers_json_mode_with_an_example_of_the_schema(url: str) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["spam", "ham"]}},
        "required": ["label"],
    }
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    }
    _, _, answer = await post(url, "/v1/chat/completions", body)
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"label": "spam"}


async def test_classify_works_against_the_mock(url: str) -> None:
    status, _, answer = await post(
        url, "/classify", {"model": "echo", "input": "buy now!", "labels": ["spam", "ham"]}
    )
    assert status == 200
    assert answer["result"] == {"label": "spam"}
    assert answer["call"]["provider"] == "mock"
