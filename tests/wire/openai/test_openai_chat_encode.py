"""encode_request: canonical ChatRequest -> body for an OpenAI-compatible upstream."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from waypost.core.passthrough import Passthrough
from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    ResponseFormat,
    TextPart,
    Thinking,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from waypost.wire.openai.chat import decode_request, encode_request

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def from_anthropic_client() -> ChatRequest:
    """A multi-turn agent request shaped the way the Anthropic decoder produces it."""
    return ChatRequest(
        model="claude-sonnet-4-5",
        source_format="anthropic",
        passthrough=Passthrough({"model": "claude-sonnet-4-5", "messages": []}),
        max_tokens=4096,
        thinking=Thinking(budget_tokens=4000),
        user="user_abc",
        tools=[
            Tool(
                name="screenshot",
                description="Capture the screen",
                parameters={"type": "object", "properties": {}},
                cache_control={"type": "ephemeral"},
            )
        ],
        messages=[
            Message(
                role="system",
                content=[
                    TextPart(text="You are a computer-use agent."),
                    TextPart(text="Be careful.", cache_control={"type": "ephemeral"}),
                ],
            ),
            Message(role="user", content=[TextPart(text="Open the settings.")]),
            Message(
                role="assistant",
                content=[
                    ThinkingPart(text="I should look at the screen first.", signature=SIGNATURE),
                    TextPart(text="Let me look."),
                    ToolCallPart(id="toolu_01", name="screenshot", arguments="{}"),
                ],
            ),
            Message(
                role="user",
                content=[
                    ToolResultPart(
                        tool_call_id="toolu_01",
                        content=[
                            TextPart(text="Screen captured."),
                            ImagePart(data=PNG, media_type="image/png"),
                        ],
                    ),
                    TextPart(text="Hurry up."),
                ],
            ),
        ],
    )


# -- fast path -----------------------------------------------------------------------------------


def test_fast_path_keeps_unknown_fields_and_replaces_the_model() -> None:
    body = load("request_all_fields.json")
    out = encode_request(decode_request(body), "gpt-4o-mini-2024-07-18", stream=True).body
    assert out["model"] == "gpt-4o-mini-2024-07-18"
    for key in ("store", "logit_bias", "prediction", "service_tier", "metadata", "messages", "tools"):
        assert out[key] == body[key]


def test_fast_path_streaming_forces_usage_and_keeps_other_stream_options() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_obfuscation": False},
    }
    out = encode_request(decode_request(body), "m", stream=True).body
    assert out["stream"] is True
    assert out["stream_options"] == {"include_obfuscation": False, "include_usage": True}


def test_fast_path_without_streaming_drops_stream_options() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {},
    }
    out = encode_request(decode_request(body), "m", stream=False).body
    assert "stream" not in out
    assert "stream_options" not in out


def test_fast_path_does_not_mutate_the_clients_body() -> None:
    body = load("request_all_fields.json")
    before = copy.deepcopy(body)
    encode_request(decode_request(body), "other", stream=True)
    assert body == before


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("sent", "field", "received"),
    [
        # The client's spelling is the upstream's: as it came.
        ({"max_tokens": 5}, "max_tokens", {"max_tokens": 5}),
        ({"max_completion_tokens": 5}, "max_completion_tokens", {"max_completion_tokens": 5}),
        # The other spelling: renamed, or a server that knows only max_tokens generates to the end.
        ({"max_completion_tokens": 5}, "max_tokens", {"max_tokens": 5}),
        ({"max_tokens": 5}, "max_completion_tokens", {"max_completion_tokens": 5}),
        # Both: max_completion_tokens is the limit (as the decoder reads it), in the upstream's field.
        ({"max_completion_tokens": 5, "max_tokens": 9}, "max_tokens", {"max_tokens": 5}),
        (
            {"max_completion_tokens": 5, "max_tokens": 9},
            "max_completion_tokens",
            {"max_completion_tokens": 5},
        ),
        (
            {"max_completion_tokens": None, "max_tokens": 9},
            "max_completion_tokens",
            {"max_completion_tokens": 9},
        ),
        ({}, "max_tokens", {}),
    ],
)
def test_fast_path_sends_the_token_limit_in_the_upstreams_field(
    sent: dict[str, Any], field: str, received: dict[str, Any]
) -> None:
    out = encode_request(
        decode_request({"model": "m", "messages": HI, **sent}), "m", stream=False, max_tokens_field=field
    ).body
    assert {k: v for k, v in out.items() if k in ("max_tokens", "max_completion_tokens")} == received


def test_a_request_without_its_clients_body_is_rebuilt_even_from_openai() -> None:
    req = decode_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], "verbosity": "low"})
    req.passthrough = None
    assert "verbosity" not in encode_request(req, "m", stream=False).body


# -- built from the canonical model -----------------------------------------------------------


def test_system_messages_stay_in_place_as_text() -> None:
    out = encode_request(from_anthropic_client(), "gpt-4.1", stream=False).body
    assert out["messages"][0] == {"role": "system", "content": "You are a computer-use agent.\n\nBe careful."}


def test_single_text_user_content_is_a_string() -> None:
    out = encode_request(from_anthropic_client(), "gpt-4.1", stream=False).body
    assert out["messages"][1] == {"role": "user", "content": "Open the settings."}


def test_assistant_turn_carries_text_tool_calls_and_signed_thinking() -> None:
    out = encode_request(from_anthropic_client(), "gpt-4.1", stream=False).body
    assert out["messages"][2] == {
        "role": "assistant",
        "content": "Let me look.",
        "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "screenshot", "arguments": "{}"}}
        ],
        "reasoning_content": "I should look at the screen first.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "I should look at the screen first.", "signature": SIGNATURE}
        ],
    }


def test_tool_results_come_first_and_their_images_follow_in_a_user_message() -> None:
    out = encode_request(from_anthropic_client(), "gpt-4.1", stream=False).body
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "toolu_01", "content": "Screen captured."}
    assert out["messages"][4] == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "text", "text": "Hurry up."},
        ],
    }
    assert len(out["messages"]) == 5


def test_parallel_tool_results_become_consecutive_tool_messages() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                role="user",
                content=[
                    ToolResultPart(tool_call_id="a", content=[TextPart(text="1")]),
                    ToolResultPart(tool_call_id="b", content=[TextPart(text="2")]),
                ],
            )
        ],
    )
    assert encode_request(req, "m", stream=False).body["messages"] == [
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
    ]


def test_tool_result_error_is_prefixed() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                role="user",
                content=[
                    ToolResultPart(tool_call_id="a", content=[TextPart(text="not found")], is_error=True)
                ],
            )
        ],
    )
    assert encode_request(req, "m", stream=False).body["messages"][0]["content"] == "[tool error] not found"


def test_image_only_tool_result_gets_a_pointer_text() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                role="user",
                content=[ToolResultPart(tool_call_id="a", content=[ImagePart(url="https://x.test/a.png")])],
            )
        ],
    )
    body, dropped = encode_request(req, "m", stream=False)
    tool, user = body["messages"]
    assert tool["content"]
    assert user["content"] == [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
    assert any("tool result images" in n for n in dropped)


def test_assistant_content_is_null_when_it_only_calls_tools() -> None:
    req = ChatRequest(
        model="m", messages=[Message(role="assistant", content=[ToolCallPart(id="c", name="f")])]
    )
    assert encode_request(req, "m", stream=False).body["messages"][0]["content"] is None


def test_redacted_thinking_is_carried_as_a_thinking_block() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                role="assistant", content=[ThinkingPart(redacted=True, data="opaque"), TextPart(text="ok")]
            )
        ],
    )
    msg = encode_request(req, "m", stream=False).body["messages"][0]
    assert msg["thinking_blocks"] == [{"type": "redacted_thinking", "data": "opaque"}]
    assert "reasoning_content" not in msg


def test_reasoning_history_can_be_left_out_for_strict_servers() -> None:
    out = encode_request(from_anthropic_client(), "gpt-4.1", stream=False, reasoning_history=False).body
    assert "reasoning_content" not in out["messages"][2]
    assert "thinking_blocks" not in out["messages"][2]


def test_documents_become_file_parts_and_text_documents_text() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                role="user",
                content=[
                    DocumentPart(data="JVBERi0=", media_type="application/pdf", filename="a.pdf"),
                    DocumentPart(text="plain body", title="Notes"),
                ],
            )
        ],
    )
    assert encode_request(req, "m", stream=False).body["messages"][0]["content"] == [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
        {"type": "text", "text": "Notes\n\nplain body"},
    ]


def test_cache_control_is_dropped_with_a_note() -> None:
    req = from_anthropic_client()
    dropped = encode_request(req, "gpt-4.1", stream=False).dropped
    assert dropped.count("cache_control dropped: OpenAI caches automatically") == 1
    assert req.notes == []


def test_metadata_is_dropped_with_a_note() -> None:
    req = ChatRequest(model="m", messages=[], metadata={"k": "v"})
    body, dropped = encode_request(req, "m", stream=False)
    assert "metadata" not in body
    assert any("metadata" in n for n in dropped)


def test_sampling_fields_are_carried() -> None:
    req = ChatRequest(
        model="m",
        messages=[],
        max_tokens=100,
        temperature=0.5,
        top_p=0.8,
        stop=["x"],
        seed=3,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        user="u",
    )
    out = encode_request(req, "m", stream=False).body
    assert {k: v for k, v in out.items() if k not in ("model", "messages")} == {
        "max_completion_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.8,
        "stop": ["x"],
        "seed": 3,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "user": "u",
    }


def test_max_tokens_field_can_be_chosen_for_older_servers() -> None:
    req = ChatRequest(model="m", messages=[], max_tokens=100)
    out = encode_request(req, "m", stream=False, max_tokens_field="max_tokens").body
    assert out["max_tokens"] == 100
    assert "max_completion_tokens" not in out


def test_top_k_is_sent_only_when_set() -> None:
    assert "top_k" not in encode_request(ChatRequest(model="m", messages=[]), "m", stream=False).body
    assert (
        encode_request(ChatRequest(model="m", messages=[], top_k=20), "m", stream=False).body["top_k"] == 20
    )


def test_streaming_asks_for_usage() -> None:
    out = encode_request(ChatRequest(model="m", messages=[]), "m", stream=True).body
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_tools_and_choice_are_encoded() -> None:
    req = ChatRequest(
        model="m",
        messages=[],
        tools=[Tool(name="f", description="d", parameters={"type": "object"}, strict=True)],
        tool_choice=ToolChoice(mode="tool", name="f", parallel=False),
    )
    out = encode_request(req, "m", stream=False).body
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert out["parallel_tool_calls"] is False


def test_tool_choice_is_not_sent_without_tools() -> None:
    req = ChatRequest(model="m", messages=[], tool_choice=ToolChoice(mode="none", parallel=True))
    out = encode_request(req, "m", stream=False).body
    assert "tool_choice" not in out
    assert "parallel_tool_calls" not in out


def test_json_schema_response_format_is_encoded() -> None:
    req = ChatRequest(
        model="m",
        messages=[],
        response_format=ResponseFormat(type="json_schema", name="x", schema={"type": "object"}, strict=True),
    )
    assert encode_request(req, "m", stream=False).body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True},
    }


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        (Thinking(budget_tokens=1024), "low"),
        (Thinking(budget_tokens=2048), "low"),
        (Thinking(budget_tokens=2049), "medium"),
        (Thinking(budget_tokens=8192), "medium"),
        (Thinking(budget_tokens=32000), "high"),
        (Thinking(budget_tokens=32000, effort="minimal"), "minimal"),
        (Thinking(enabled=False, effort="none"), "none"),
    ],
)
def test_thinking_maps_to_reasoning_effort(thinking: Thinking, effort: str) -> None:
    req = ChatRequest(model="m", messages=[], thinking=thinking)
    assert encode_request(req, "m", stream=False).body["reasoning_effort"] == effort


@pytest.mark.parametrize("thinking", [Thinking(enabled=False), Thinking(adaptive=True), Thinking()])
def test_thinking_without_a_budget_or_effort_sends_no_reasoning_effort(thinking: Thinking) -> None:
    req = ChatRequest(model="m", messages=[], thinking=thinking)
    assert "reasoning_effort" not in encode_request(req, "m", stream=False).body


# -- round trips: decode -> encode (rebuilt) -> decode ----------------------------------------


def canonical(req: ChatRequest) -> dict[str, Any]:
    fields = dataclasses.asdict(req)
    for key in ("passthrough", "source_format", "notes", "metadata"):
        fields.pop(key)
    return fields


@pytest.mark.parametrize(
    "name",
    [
        "request_all_fields.json",
        "request_multimodal.json",
        "request_tool_turns.json",
        "request_thinking_blocks.json",
        "request_legacy_functions.json",
    ],
)
def test_round_trip_through_a_rebuilt_body_keeps_the_canonical_request(name: str) -> None:
    first = decode_request(load(name))
    first.passthrough = None
    first.source_format = None
    body = encode_request(first, first.model, stream=first.stream).body
    second = decode_request(body)
    assert canonical(second) == canonical(first)
