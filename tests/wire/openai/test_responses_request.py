"""Responses API requests: client bodies -> canonical requests, and canonical -> upstream bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from waypost.core.errors import BadRequest
from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from waypost.wire.openai import chat as openai_chat
from waypost.wire.openai.responses import decode_request, encode_request

FIXTURES = Path(__file__).parents[2] / "fixtures" / "openai_responses"
PNG = "iVBORw0KGgo="


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "hi", **fields}


def test_string_input_is_one_user_message_and_instructions_the_system_prompt() -> None:
    req = decode_request(body(instructions="Be terse."))
    assert [(m.role, m.text()) for m in req.messages] == [("system", "Be terse."), ("user", "hi")]
    assert req.source_format == "openai_responses"
    assert req.include_usage


def test_items_without_type_are_messages_and_developer_is_system() -> None:
    req = decode_request(
        body(
            input=[
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
            ]
        )
    )
    assert [(m.role, m.text()) for m in req.messages] == [
        ("system", "rules"),
        ("user", "q"),
        ("assistant", "a"),
    ]


def test_an_assistant_turn_of_reasoning_and_calls_is_one_message_and_outputs_one_user_message() -> None:
    req = decode_request(
        body(
            input=[
                {"role": "user", "content": "weather?"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "think"}],
                    "encrypted_content": "gAAA",
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "c1",
                    "name": "w",
                    "arguments": '{"c":"a"}',
                },
                {
                    "type": "function_call",
                    "id": "fc_2",
                    "call_id": "c2",
                    "name": "w",
                    "arguments": '{"c":"b"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sun"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
            ]
        )
    )
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    thinking, first, second = req.messages[1].content
    assert thinking == ThinkingPart(text="think", signature="openai:gAAA")
    assert first == ToolCallPart(id="c1", name="w", arguments='{"c":"a"}')
    assert isinstance(second, ToolCallPart) and second.id == "c2"
    results = req.messages[2].content
    assert [(r.tool_call_id, r.text()) for r in results if isinstance(r, ToolResultPart)] == [
        ("c1", "sun"),
        ("c2", "rain"),
    ]


def test_images_and_files_become_parts() -> None:
    req = decode_request(
        body(
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "low"},
                        {"type": "input_image", "image_url": "https://example.com/a.png"},
                        {
                            "type": "input_file",
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JVBE",
                        },
                        {"type": "input_file", "file_url": "https://example.com/b.pdf"},
                    ],
                }
            ]
        )
    )
    inline, linked, doc, remote = req.messages[0].content
    assert inline == ImagePart(data=PNG, media_type="image/png", detail="low")
    assert isinstance(linked, ImagePart) and linked.url == "https://example.com/a.png"
    assert doc == DocumentPart(data="JVBE", media_type="application/pdf", filename="a.pdf")
    assert isinstance(remote, DocumentPart) and remote.url == "https://example.com/b.pdf"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": None}, "input"),
        ({"input": 3}, "input"),
        ({"model": ""}, "model"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        (
            {"input": [{"type": "function_call", "call_id": "c1", "name": "w", "arguments": 5}]},
            "input[0].arguments",
        ),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "s"}}}, "text.format.schema"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ],
)
def test_invalid_fields_are_refused_naming_the_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_request(body(**fields))
    assert caught.value.param == param


def test_function_tools_are_tools_and_built_in_tools_hosted() -> None:
    req = decode_request(
        body(
            tools=[
                {"type": "function", "name": "w", "parameters": {"type": "object"}, "strict": True},
                {"type": "web_search", "external_web_access": False},
                {"type": "namespace", "name": "ns", "tools": [{"type": "function", "name": "f"}]},
            ],
            tool_choice={"type": "function", "name": "w"},
            parallel_tool_calls=False,
        )
    )
    assert [t.name for t in req.tools] == ["w", "ns__f"]
    assert req.hosted_tools == [{"type": "web_search", "external_web_access": False}]
    assert req.tool_choice is not None and (req.tool_choice.mode, req.tool_choice.name) == ("tool", "w")
    assert req.tool_choice.parallel is False


def test_text_format_reasoning_and_sampling() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = decode_request(
        body(
            text={"format": {"type": "json_schema", "name": "r", "schema": schema, "strict": True}},
            reasoning={"effort": "low", "summary": "auto"},
            max_output_tokens=64,
            temperature=0.5,
            top_p=0.9,
            user="u1",
            metadata={"k": "v"},
            stream=True,
        )
    )
    assert req.response_format is not None and req.response_format.schema == schema
    assert req.thinking is not None and req.thinking.effort == "low"
    assert (req.max_tokens, req.temperature, req.top_p, req.user, req.stream) == (64, 0.5, 0.9, "u1", True)
    assert req.metadata == {"k": "v"}


def test_the_fast_path_keeps_unknown_fields_and_sets_model_and_stream() -> None:
    sent = body(store=False, include=["reasoning.encrypted_content"], prompt_cache_key="k", future_field=1)
    req = decode_request(sent)
    out, dropped = encode_request(req, "gpt-up", stream=True)
    assert out == {**sent, "model": "gpt-up", "stream": True}
    assert dropped == ()
    assert sent["model"] == "m"  # the client's body is never changed


def test_an_edited_field_is_re_encoded_over_the_client_body() -> None:
    req = decode_request(body(max_output_tokens=500, text={"format": {"type": "text"}, "verbosity": "low"}))
    req.edit(max_tokens=100)
    out, _ = encode_request(req, "up", stream=False)
    assert out["max_output_tokens"] == 100
    assert out["text"] == {"format": {"type": "text"}, "verbosity": "low"}  # not edited: as sent


def test_a_chat_request_is_built_as_a_responses_body() -> None:
    req = openai_chat.decode_request(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sun"},
            ],
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
            "max_tokens": 50,
            "stop": ["END"],
        }
    )
    out, dropped = encode_request(req, "up", stream=False)
    assert out["instructions"] == "sys"
    assert out["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sun"},
    ]
    assert out["tools"] == [
        {"type": "function", "name": "w", "parameters": {"type": "object"}, "strict": False}
    ]
    assert out["max_output_tokens"] == 50 and out["store"] is False
    assert any("stop" in note for note in dropped)


def test_only_openai_reasoning_is_replayed_to_a_responses_upstream() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("q")]),
            Message("assistant", [ThinkingPart("mine", signature="openai:blob"), TextPart("a")]),
            Message("assistant", [ThinkingPart("theirs", signature="anthropic-sig"), TextPart("b")]),
        ],
    )
    out, dropped = encode_request(req, "up", stream=False)
    reasoning = [i for i in out["input"] if i["type"] == "reasoning"]
    assert [r["encrypted_content"] for r in reasoning] == ["blob"]
    assert dropped


@pytest.mark.parametrize(
    "name", ["client_openai_create", "client_openai_stream", "client_agents", "client_codex"]
)
def test_what_real_clients_send_decodes(name: str) -> None:
    recorded = json.loads((FIXTURES / f"{name}.json").read_text())
    for request in recorded["requests"]:
        req = decode_request(request["body"])
        assert req.messages
        out, _ = encode_request(req, "up", stream=bool(request["body"].get("stream")))
        assert out["input"] == request["body"]["input"]


def test_tools_of_an_additional_tools_item_are_tools_and_the_item_no_message() -> None:
    extra = {
        "type": "additional_tools",
        "role": "developer",
        "tools": [{"type": "namespace", "name": "clock", "tools": [{"type": "function", "name": "now"}]}],
    }
    req = decode_request(body(input=[extra, {"role": "user", "content": "time?"}]))
    assert [t.name for t in req.tools] == ["clock__now"]
    assert [m.role for m in req.messages] == ["user"]


def test_a_call_to_a_namespaced_function_goes_back_in_its_namespace() -> None:
    from waypost.core.types import ChatResponse
    from waypost.wire.openai.responses import encode_response

    sent = body(
        tools=[{"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "lookup"}]}]
    )
    req = decode_request(sent)
    resp = ChatResponse(
        id="x", model="m", content=[ToolCallPart(id="c1", name="crm__lookup", arguments="{}")]
    )
    out = encode_response(resp, req, response_id="resp_1", created_at=1, body=sent)
    call = out["output"][0]
    assert (call["namespace"], call["name"], call["call_id"]) == ("crm", "lookup", "c1")
