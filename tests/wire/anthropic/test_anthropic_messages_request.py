"""Anthropic Messages requests: client body -> canonical, and canonical -> upstream body."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from pydantic import TypeAdapter

from waypost.core.errors import BadRequest
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
from waypost.wire.anthropic.messages import FORMAT, decode_request, encode_request

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"


def claude_code_body() -> dict[str, Any]:
    return json.loads((FIXTURES / "request_claude_code.json").read_text())


def minimal(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    body.update(extra)
    return body


def assert_valid_params(body: dict[str, Any]) -> None:
    params = MessageCreateParamsStreaming if body.get("stream") else MessageCreateParamsNonStreaming
    TypeAdapter(params).validate_python(body, strict=True)


def openai_style_request(**extra: Any) -> ChatRequest:
    """A conversation shaped the way the OpenAI decoder builds it: two parallel calls, then results."""
    req = ChatRequest(
        model="gpt-4o",
        messages=[
            Message("system", [TextPart("You are a weather bot.")]),
            Message("user", [TextPart("Weather in Paris and Rome?")]),
            Message(
                "assistant",
                [
                    TextPart(""),
                    ToolCallPart("call_abc123", "get_weather", '{"city": "Paris"}'),
                    ToolCallPart("call_def456", "get_weather", '{"city": "Rome"}'),
                ],
            ),
            Message("user", [ToolResultPart("call_abc123", [TextPart("18C, sunny")])]),
            Message("user", [ToolResultPart("call_def456", [TextPart("24C, cloudy")])]),
        ],
        tools=[
            Tool(
                "get_weather",
                "Current weather",
                {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            )
        ],
        source_format="openai",
        passthrough=Passthrough({"model": "gpt-4o"}),
    )
    for key, value in extra.items():
        setattr(req, key, value)
    return req


def plain_request(**extra: Any) -> ChatRequest:
    """A fresh question (no tool loop in progress), so thinking may be turned on."""
    req = openai_style_request(**extra)
    req.messages.append(Message("assistant", [TextPart("Paris 18C, Rome 24C.")]))
    req.messages.append(Message("user", [TextPart("Thanks. And tomorrow?")]))
    return req


# -- decode: the Claude Code request ----------------------------------------------------------


def test_format_name_is_anthropic() -> None:
    assert FORMAT == "anthropic"


def test_decode_marks_the_source_and_keeps_the_clients_body() -> None:
    body = claude_code_body()
    req = decode_request(body)
    assert req.source_format == "anthropic"
    assert req.passthrough == Passthrough(body)
    assert req.passthrough.body is body
    assert req.model == "claude-sonnet-4-5-20250929"
    assert req.max_tokens == 32000
    assert req.stream is True


def test_decode_system_blocks_become_a_leading_system_message_with_cache_control() -> None:
    req = decode_request(claude_code_body())
    first = req.messages[0]
    assert first.role == "system"
    assert [p.text for p in first.content if isinstance(p, TextPart)] == [
        "You are Claude Code, Anthropic's official CLI for Claude.",
        "You are an interactive CLI tool that helps users with software engineering tasks.",
    ]
    assert isinstance(first.content[1], TextPart)
    assert first.content[1].cache_control == {"type": "ephemeral"}


def test_decode_system_string() -> None:
    req = decode_request(minimal(system="Be brief."))
    assert req.messages[0] == Message("system", [TextPart("Be brief.")])


def test_decode_system_entry_inside_messages_stays_at_its_position() -> None:
    req = decode_request(claude_code_body())
    roles = [m.role for m in req.messages]
    assert roles == ["system", "user", "assistant", "user", "system", "assistant", "user"]
    assert req.messages[4].text() == "The user has switched to plan mode."


def test_decode_user_text_blocks_keep_cache_control() -> None:
    req = decode_request(claude_code_body())
    part = req.messages[1].content[1]
    assert isinstance(part, TextPart)
    assert part.cache_control == {"type": "ephemeral"}


def test_decode_thinking_keeps_its_signature() -> None:
    req = decode_request(claude_code_body())
    assert req.messages[2].content[0] == ThinkingPart(
        text="I should read the test first.", signature="EqQBCkYIBxgCKkBsig=="
    )


def test_decode_redacted_thinking_keeps_its_data() -> None:
    req = decode_request(claude_code_body())
    part = req.messages[5].content[0]
    assert isinstance(part, ThinkingPart)
    assert part.redacted
    assert part.data and part.data.startswith("EmwKAhgBEgy3va3pzix")


def test_decode_tool_use_arguments_are_compact_json_of_the_input() -> None:
    req = decode_request(claude_code_body())
    calls = [p for p in req.messages[2].content if isinstance(p, ToolCallPart)]
    assert calls == [
        ToolCallPart("toolu_01A09q90qw90lq917835lq9", "Read", '{"file_path":"/repo/tests/test_math.py"}'),
        ToolCallPart(
            "toolu_01B4aNbQp8sQ6mXy3dP2K7Zc", "Read", '{"file_path":"/repo/src/math.py","limit":200}'
        ),
    ]


def test_decode_tool_results_string_and_blocks_with_cache_control() -> None:
    req = decode_request(claude_code_body())
    first, second = req.messages[3].content
    assert first == ToolResultPart(
        "toolu_01A09q90qw90lq917835lq9", [TextPart("def test_add():\n    assert add(2, 2) == 5\n")]
    )
    assert isinstance(second, ToolResultPart)
    assert second.text() == "def add(a, b):\n    return a + b\n"
    assert second.cache_control == {"type": "ephemeral"}


def test_decode_tool_result_error_flag() -> None:
    req = decode_request(claude_code_body())
    result = req.messages[6].content[0]
    assert isinstance(result, ToolResultPart)
    assert result.is_error is True
    assert result.text() == "1 failed"


def test_decode_tools_map_input_schema_to_parameters_and_keep_cache_control() -> None:
    req = decode_request(claude_code_body())
    assert [t.name for t in req.tools] == ["Read", "Bash", "TodoWrite"]
    assert req.tools[0].parameters["required"] == ["file_path"]
    assert req.tools[0].description == "Reads a file from the local filesystem."
    assert req.tools[2].cache_control == {"type": "ephemeral"}


def test_decode_server_tools_are_dropped_with_a_note() -> None:
    req = decode_request(claude_code_body())
    assert "web_search" not in [t.name for t in req.tools]
    assert any("web_search_20250305" in n for n in req.notes)


def test_decode_adaptive_thinking_with_effort_from_output_config() -> None:
    req = decode_request(claude_code_body())
    assert req.thinking == Thinking(enabled=True, adaptive=True, effort="high")


def test_decode_metadata_user_id_becomes_user() -> None:
    assert decode_request(claude_code_body()).user == "user_4f1e_account_9a2b_session_77c1"


def test_decode_unmodelled_claude_code_fields_are_noted_not_rejected() -> None:
    body = claude_code_body()
    body["container"] = "container_011CPR5CNjB747bTd36fQLFk"
    body["mcp_servers"] = [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}]
    body["cache_control"] = {"type": "ephemeral"}
    req = decode_request(body)
    note = next(n for n in req.notes if n.startswith("fields kept only"))
    for name in ("cache_control", "container", "context_management", "mcp_servers", "service_tier"):
        assert name in note


def test_decode_does_not_call_steering_fields_kept() -> None:
    # They never reach an upstream (the router's bounds stage drops or refuses them).
    req = decode_request({**claude_code_body(), "base_url": "http://evil", "user_config": {}})
    note = next(n for n in req.notes if n.startswith("fields kept only"))
    assert "base_url" not in note
    assert "user_config" not in note


def test_decode_tool_choice_auto_with_parallel_allowed() -> None:
    assert decode_request(claude_code_body()).tool_choice == ToolChoice("auto", parallel=True)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "any"}, ToolChoice("required")),
        ({"type": "none"}, ToolChoice("none")),
        (
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            ToolChoice("tool", "get_weather", parallel=False),
        ),
    ],
)
def test_decode_tool_choice(choice: dict[str, Any], expected: ToolChoice) -> None:
    assert decode_request(minimal(tool_choice=choice)).tool_choice == expected


def test_decode_sampling_and_stop_sequences() -> None:
    req = decode_request(minimal(temperature=0.2, top_p=0.9, top_k=40, stop_sequences=["</answer>"]))
    assert (req.temperature, req.top_p, req.top_k, req.stop) == (0.2, 0.9, 40, ["</answer>"])


def test_decode_enabled_thinking_with_budget() -> None:
    req = decode_request(minimal(thinking={"type": "enabled", "budget_tokens": 10000}))
    assert req.thinking == Thinking(enabled=True, budget_tokens=10000)


def test_decode_disabled_thinking() -> None:
    assert decode_request(minimal(thinking={"type": "disabled"})).thinking == Thinking(enabled=False)


def test_decode_output_config_json_schema_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False}
    req = decode_request(minimal(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert req.response_format == ResponseFormat(type="json_schema", schema=schema)


def test_decode_images_by_base64_and_url() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "Compare them."},
    ]
    req = decode_request(minimal(messages=[{"role": "user", "content": content}]))
    assert req.messages[0].content[:2] == [
        ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
        ImagePart(url="https://example.com/cat.jpg"),
    ]


def test_decode_documents_pdf_text_and_url_with_titles() -> None:
    content = [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="},
            "title": "Contract",
            "cache_control": {"type": "ephemeral"},
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "Grass is green."},
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    ]
    req = decode_request(minimal(messages=[{"role": "user", "content": content}]))
    assert req.messages[0].content == [
        DocumentPart(
            data="JVBERi0xLjQ=",
            media_type="application/pdf",
            title="Contract",
            cache_control={"type": "ephemeral"},
        ),
        DocumentPart(text="Grass is green.", media_type="text/plain"),
        DocumentPart(url="https://example.com/a.pdf"),
    ]


def test_decode_unknown_and_server_blocks_are_dropped_with_a_note() -> None:
    content = [
        {"type": "text", "text": "Searching."},
        {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": []},
        {"type": "some_future_block", "payload": 1},
    ]
    req = decode_request(
        minimal(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": content}])
    )
    assert req.messages[1].content == [TextPart("Searching.")]
    assert any("server_tool_use" in n for n in req.notes)
    assert any("some_future_block" in n for n in req.notes)


# -- decode: bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([1, 2], "body"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": "5", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": True, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": ["hi"]}, "messages.0"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]}, "messages.0.content"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
    ],
)
def test_decode_rejects_bad_shapes_naming_the_field(body: Any, param: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(body)
    assert info.value.param == param
    assert param in info.value.message


@pytest.mark.parametrize(
    ("block", "param"),
    [
        ("text", "messages.1.content.0"),
        ({"text": "no type"}, "messages.1.content.0.type"),
        ({"type": "text"}, "messages.1.content.0.text"),
        ({"type": "image", "source": "https://x"}, "messages.1.content.0.source"),
        (
            {"type": "image", "source": {"type": "base64", "data": "x"}},
            "messages.1.content.0.source.media_type",
        ),
        ({"type": "tool_use", "id": "t1", "name": "f", "input": "[]"}, "messages.1.content.0.input"),
        ({"type": "tool_use", "name": "f", "input": {}}, "messages.1.content.0.id"),
        ({"type": "tool_result", "content": "x"}, "messages.1.content.0.tool_use_id"),
        ({"type": "tool_result", "tool_use_id": "t", "content": 5}, "messages.1.content.0.content"),
        ({"type": "text", "text": "x", "cache_control": "ephemeral"}, "messages.1.content.0.cache_control"),
    ],
)
def test_decode_rejects_bad_blocks_naming_the_path(block: Any, param: str) -> None:
    body = minimal(messages=[{"role": "user", "content": "q"}, {"role": "user", "content": [block]}])
    with pytest.raises(BadRequest) as info:
        decode_request(body)
    assert info.value.param == param


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"system": 5}, "system"),
        ({"system": [{"type": "text"}]}, "system.0.text"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": 1.5}, "top_k"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"stream": "yes"}, "stream"),
        ({"tools": {"name": "f"}}, "tools"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema"),
        ({"tools": [{"input_schema": {"type": "object"}}]}, "tools.0.name"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": "on"}, "thinking"),
        ({"metadata": {"user_id": 42}}, "metadata.user_id"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
    ],
)
def test_decode_rejects_bad_options_naming_the_field(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as info:
        decode_request(minimal(**extra))
    assert info.value.param == param


# -- encode: fast path ------------------------------------------------------------------------


def test_fast_path_forwards_the_raw_body_with_model_and_stream_set() -> None:
    body = claude_code_body()
    original = copy.deepcopy(body)
    out = encode_request(decode_request(body), "claude-sonnet-4-5-20250929-upstream", stream=False).body
    assert out["model"] == "claude-sonnet-4-5-20250929-upstream"
    assert out["stream"] is False
    assert {k: v for k, v in out.items() if k not in ("model", "stream")} == {
        k: v for k, v in original.items() if k not in ("model", "stream")
    }
    assert body == original  # the client's body is not mutated


def test_fast_path_preserves_unknown_fields_and_server_tools() -> None:
    body = minimal(speed="fast", future_field={"x": 1}, tools=[{"type": "web_search_20250305", "name": "ws"}])
    out = encode_request(decode_request(body), "m", stream=True).body
    assert out["speed"] == "fast"
    assert out["future_field"] == {"x": 1}
    assert out["tools"] == [{"type": "web_search_20250305", "name": "ws"}]


def test_built_path_used_when_the_source_is_another_format() -> None:
    req = decode_request(minimal(speed="fast"))
    req.source_format = "openai"
    out = encode_request(req, "m", stream=False).body
    assert "speed" not in out


# -- encode: built from canonical -------------------------------------------------------------


def test_encode_hoists_system_and_merges_parallel_tool_results_into_one_user_turn() -> None:
    out = encode_request(openai_style_request(), "claude-sonnet-4-5", stream=False).body
    assert out["system"] == [{"type": "text", "text": "You are a weather bot."}]
    assert [m["role"] for m in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_abc123", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_def456", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert out["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "call_abc123",
            "content": [{"type": "text", "text": "18C, sunny"}],
        },
        {
            "type": "tool_result",
            "tool_use_id": "call_def456",
            "content": [{"type": "text", "text": "24C, cloudy"}],
        },
    ]
    assert_valid_params(out)


def test_encode_sets_model_stream_and_default_max_tokens() -> None:
    out = encode_request(
        openai_style_request(), "claude-haiku-4-5", stream=True, default_max_tokens=2048
    ).body
    assert (out["model"], out["stream"], out["max_tokens"]) == ("claude-haiku-4-5", True, 2048)
    out = encode_request(openai_style_request(max_tokens=300), "m", stream=False).body
    assert out["max_tokens"] == 300


def test_encode_tools_use_input_schema() -> None:
    out = encode_request(openai_style_request(), "m", stream=False).body
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]


def test_encode_puts_tool_results_before_text_in_a_user_turn() -> None:
    req = openai_style_request()
    req.messages.append(Message("user", [TextPart("And Berlin?")]))
    req.messages[-2].content.insert(0, TextPart("note first"))
    out = encode_request(req, "m", stream=False).body
    kinds = [b["type"] for b in out["messages"][-1]["content"]]
    assert kinds == ["tool_result", "tool_result", "text", "text"]


def test_encode_mid_conversation_system_message_is_hoisted_with_a_note() -> None:
    req = openai_style_request()
    req.messages.insert(3, Message("system", [TextPart("Use metric units.", {"type": "ephemeral"})]))
    out, dropped = encode_request(req, "m", stream=False)
    assert out["system"][-1] == {
        "type": "text",
        "text": "Use metric units.",
        "cache_control": {"type": "ephemeral"},
    }
    assert all(m["role"] != "system" for m in out["messages"])
    assert any("system message inside the conversation" in n for n in dropped)


def test_encode_images_by_url_base64_and_data_url() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                "user",
                [
                    ImagePart(url="https://example.com/cat.jpg", detail="high"),
                    ImagePart(data="iVBORw0KGgo=", media_type="image/png"),
                    ImagePart(url="data:image/jpeg;base64,/9j/4AAQSkZJRg=="),
                    TextPart("What are these?"),
                ],
            )
        ],
    )
    out, dropped = encode_request(req, "m", stream=False)
    assert [b.get("source") for b in out["messages"][0]["content"][:3]] == [
        {"type": "url", "url": "https://example.com/cat.jpg"},
        {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="},
    ]
    assert any("detail" in n for n in dropped)
    assert_valid_params(out)


def test_encode_documents() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                "user",
                [
                    DocumentPart(data="JVBERi0=", media_type="application/pdf", filename="a.pdf"),
                    DocumentPart(text="plain words", title="Notes"),
                    DocumentPart(url="https://example.com/b.pdf"),
                ],
            )
        ],
    )
    blocks = encode_request(req, "m", stream=False).body["messages"][0]["content"]
    assert blocks == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
            "title": "a.pdf",
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": "plain words"},
            "title": "Notes",
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}},
    ]


def test_encode_invalid_tool_arguments_become_an_empty_object_with_a_note() -> None:
    req = openai_style_request()
    req.messages[2].content[1] = ToolCallPart("call_abc123", "get_weather", '{"city": "Par')
    out, dropped = encode_request(req, "m", stream=False)
    assert out["messages"][1]["content"][0]["input"] == {}
    assert any("not valid JSON" in n for n in dropped)


def test_encode_sanitises_tool_ids_alike_for_calls_and_results() -> None:
    req = openai_style_request()
    req.messages[2].content[1] = ToolCallPart("call:abc/1", "get_weather", "{}")
    req.messages[3].content[0] = ToolResultPart("call:abc/1", [TextPart("ok")])
    out = encode_request(req, "m", stream=False).body
    assert out["messages"][1]["content"][0]["id"] == "call_abc_1"
    assert out["messages"][2]["content"][0]["tool_use_id"] == "call_abc_1"


def test_encode_drops_empty_text_blocks_and_empty_messages() -> None:
    req = openai_style_request()
    req.messages.append(Message("assistant", [TextPart("")]))
    out = encode_request(req, "m", stream=False).body
    assert all(b["type"] != "text" or b["text"] for m in out["messages"] for b in m["content"])
    assert out["messages"][-1]["role"] == "user"


def test_encode_tool_result_error_and_cache_control() -> None:
    req = openai_style_request()
    req.messages[3].content[0] = ToolResultPart(
        "call_abc123", [TextPart("boom")], is_error=True, cache_control={"type": "ephemeral"}
    )
    block = encode_request(req, "m", stream=False).body["messages"][2]["content"][0]
    assert block["is_error"] is True
    assert block["cache_control"] == {"type": "ephemeral"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice("auto"), {"type": "auto"}),
        (ToolChoice("none"), {"type": "none"}),
        (ToolChoice("required"), {"type": "any"}),
        (ToolChoice("tool", "get_weather"), {"type": "tool", "name": "get_weather"}),
        (ToolChoice("auto", parallel=False), {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice("required", parallel=True), {"type": "any"}),
    ],
)
def test_encode_tool_choice(choice: ToolChoice, expected: dict[str, Any]) -> None:
    out = encode_request(openai_style_request(tool_choice=choice), "m", stream=False).body
    assert out["tool_choice"] == expected


def test_encode_tool_choice_without_tools_is_dropped() -> None:
    req = openai_style_request(tools=[], tool_choice=ToolChoice("required"))
    assert "tool_choice" not in encode_request(req, "m", stream=False).body


def test_encode_stop_user_and_sampling() -> None:
    req = openai_style_request(stop=["END"], user="u-42", temperature=0.3, top_k=10)
    out = encode_request(req, "m", stream=False).body
    assert out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-42"}
    assert (out["temperature"], out["top_k"]) == (0.3, 10)


def test_encode_drops_top_p_when_temperature_is_set_and_clamps_temperature() -> None:
    req = openai_style_request(temperature=1.7, top_p=0.5)
    out = encode_request(req, "m", stream=False).body
    assert out["temperature"] == 1.0
    assert "top_p" not in out


def test_encoding_returns_its_notes_and_leaves_the_request_as_it_was() -> None:
    req = openai_style_request(seed=7, temperature=1.5)
    before = copy.deepcopy(req)
    encoded = encode_request(req, "m", stream=False)
    assert req == before
    assert encoded.dropped == ("temperature above 1 clamped to 1", "seed dropped (no Anthropic equivalent)")
    assert encode_request(req, "m", stream=True).dropped == encoded.dropped  # each encoding its own


def test_encode_drops_seed_and_penalties_with_notes() -> None:
    req = openai_style_request(seed=7, presence_penalty=0.5, frequency_penalty=0.1)
    out, dropped = encode_request(req, "m", stream=False)
    assert not {"seed", "presence_penalty", "frequency_penalty"} & out.keys()
    assert len([n for n in dropped if "dropped (no Anthropic equivalent)" in n]) == 3


def test_encode_thinking_budget_raises_max_tokens_above_it() -> None:
    req = plain_request(thinking=Thinking(budget_tokens=10000), max_tokens=1000)
    out, dropped = encode_request(req, "m", stream=False, default_max_tokens=4096)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 10000}
    assert out["max_tokens"] == 14096
    assert any("max_tokens raised" in n for n in dropped)


@pytest.mark.parametrize(("effort", "budget"), [("low", 2048), ("medium", 8192), ("high", 24576)])
def test_encode_reasoning_effort_maps_to_a_thinking_budget(effort: str, budget: int) -> None:
    req = plain_request(thinking=Thinking(effort=effort), max_tokens=64000)
    out = encode_request(req, "m", stream=False).body
    assert out["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert out["max_tokens"] == 64000


def test_encode_thinking_drops_temperature_and_top_k() -> None:
    req = plain_request(thinking=Thinking(effort="low"), temperature=0.7, top_k=5, top_p=0.99)
    out, dropped = encode_request(req, "m", stream=False)
    assert "temperature" not in out and "top_k" not in out
    assert out["top_p"] == 0.99
    assert any("temperature dropped" in n for n in dropped)


def test_encode_adaptive_thinking_keeps_effort_in_output_config() -> None:
    req = plain_request(thinking=Thinking(adaptive=True, effort="high"))
    out = encode_request(req, "m", stream=False).body
    assert out["thinking"] == {"type": "adaptive"}
    assert out["output_config"] == {"effort": "high"}


def test_encode_disabled_thinking() -> None:
    out = encode_request(openai_style_request(thinking=Thinking(enabled=False)), "m", stream=False).body
    assert out["thinking"] == {"type": "disabled"}


def test_encode_thinking_is_dropped_when_a_tool_is_forced() -> None:
    req = openai_style_request(thinking=Thinking(effort="high"), tool_choice=ToolChoice("required"))
    out = encode_request(req, "m", stream=False).body
    assert "thinking" not in out
    assert out["tool_choice"] == {"type": "any"}


def test_encode_signed_thinking_is_replayed_and_unsigned_dropped() -> None:
    req = openai_style_request()
    req.messages[2].content[0:0] = [ThinkingPart("hmm", signature="sig=="), ThinkingPart("unsigned")]
    req.messages[2].content.append(ThinkingPart(redacted=True, data="opaque"))
    encoded, dropped = encode_request(req, "m", stream=False)
    blocks = encoded["messages"][1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "hmm", "signature": "sig=="}
    assert blocks[-1] == {"type": "redacted_thinking", "data": "opaque"}
    assert len([b for b in blocks if b["type"] == "thinking"]) == 1
    assert any("without a signature" in n for n in dropped)


def test_encode_thinking_is_dropped_in_a_tool_loop_without_a_thinking_block() -> None:
    req = openai_style_request(thinking=Thinking(effort="high"), temperature=0.5)
    out, dropped = encode_request(req, "m", stream=False)
    assert "thinking" not in out
    assert out["temperature"] == 0.5
    assert any("no thinking block to continue from" in n for n in dropped)


def test_encode_thinking_is_kept_in_a_tool_loop_that_replays_signed_thinking() -> None:
    req = openai_style_request(thinking=Thinking(budget_tokens=2048), max_tokens=8000)
    req.messages[2].content.insert(0, ThinkingPart("plan the calls", signature="sig=="))
    out = encode_request(req, "m", stream=False).body
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert out["messages"][1]["content"][0]["type"] == "thinking"


def test_encode_thinking_off_strips_thinking_from_a_final_assistant_prefill() -> None:
    req = plain_request()
    req.messages.append(Message("assistant", [ThinkingPart("x", signature="s"), TextPart("The answer is")]))
    out = encode_request(req, "m", stream=False).body
    assert out["messages"][-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "The answer is"}],
    }


def test_encode_json_schema_uses_output_config_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    req = openai_style_request(response_format=ResponseFormat("json_schema", schema=schema, name="x"))
    out = encode_request(req, "m", stream=False).body
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert_valid_params(out)


def test_encode_json_object_appends_a_system_instruction() -> None:
    req = openai_style_request(response_format=ResponseFormat("json_object"))
    out, dropped = encode_request(req, "m", stream=False)
    assert "JSON object" in out["system"][-1]["text"]
    assert any("json_object" in n for n in dropped)


def test_encode_keeps_cache_control_on_tools_and_text() -> None:
    req = openai_style_request()
    req.tools[0].cache_control = {"type": "ephemeral"}
    first = req.messages[1].content[0]
    assert isinstance(first, TextPart)
    first.cache_control = {"type": "ephemeral", "ttl": "1h"}
    out = encode_request(req, "m", stream=False).body
    assert out["tools"][0]["cache_control"] == {"type": "ephemeral"}
    assert out["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


# -- round trip ------------------------------------------------------------------------------


def test_claude_code_request_survives_decode_then_built_encode() -> None:
    req = decode_request(claude_code_body())
    req.source_format = "elsewhere"  # force the built path
    out = encode_request(req, "claude-sonnet-4-5-20250929", stream=True).body
    again = decode_request(out)
    conversation = [m for m in req.messages if m.role != "system"]
    assert [m.content for m in again.messages if m.role != "system"] == [m.content for m in conversation]
    system_parts = [p for m in req.messages if m.role == "system" for p in m.content]
    assert [p for m in again.messages if m.role == "system" for p in m.content] == system_parts
    assert again.tools == req.tools
    assert again.thinking == req.thinking
    assert again.tool_choice == ToolChoice("auto")  # parallel allowed is the default, not re-sent
    assert_valid_params(out)


def test_decode_accepts_max_tokens_zero_for_cache_prewarming() -> None:
    assert decode_request(minimal(max_tokens=0)).max_tokens == 0


def test_decode_system_entry_with_text_blocks_inside_messages() -> None:
    entry = {
        "role": "system",
        "content": [{"type": "text", "text": "Plan mode.", "cache_control": {"type": "ephemeral"}}],
    }
    req = decode_request(minimal(messages=[{"role": "user", "content": "hi"}, entry]))
    assert req.messages[1] == Message("system", [TextPart("Plan mode.", {"type": "ephemeral"})])


def test_decode_unknown_blocks_inside_tool_results_are_dropped_with_a_note() -> None:
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "tool_reference", "tool_name": "Read"}, {"type": "text", "text": "ok"}],
    }
    req = decode_request(minimal(messages=[{"role": "user", "content": [result]}]))
    assert req.messages[0].content == [ToolResultPart("toolu_1", [TextPart("ok")])]
    assert any("tool_reference" in n for n in req.notes)


def test_thinking_signed_by_gemini_is_dropped_not_sent() -> None:
    """After a fallback from Gemini, its signatures would make Anthropic refuse the request."""
    from waypost.core.types import ChatRequest, Message, TextPart, ThinkingPart
    from waypost.wire.anthropic.messages import encode_request

    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("q")]),
            Message("assistant", [ThinkingPart("hmm", signature="gemini:thought:c2ln"), TextPart("a")]),
            Message("user", [TextPart("again")]),
        ],
    )
    body, dropped = encode_request(req, "claude", stream=False)
    assert body["messages"][1]["content"] == [{"type": "text", "text": "a"}]
    assert any("Gemini" in note for note in dropped)


def test_thinking_signed_by_openai_is_dropped_not_sent() -> None:
    """An OpenAI reasoning item's encrypted content (a Responses client's history) is OpenAI's alone."""
    from waypost.core.types import ChatRequest, Message, TextPart, ThinkingPart
    from waypost.wire.anthropic.messages import encode_request

    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("q")]),
            Message("assistant", [ThinkingPart("hmm", signature="openai:gAAAAABo"), TextPart("a")]),
            Message("user", [TextPart("again")]),
        ],
    )
    body, dropped = encode_request(req, "claude", stream=False)
    assert body["messages"][1]["content"] == [{"type": "text", "text": "a"}]
    assert any("OpenAI" in note for note in dropped)
