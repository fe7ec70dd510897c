"""Responses API requests from fixture bodies: a documented conversation with every item kind,
rebuilt from the canonical model, and other formats' requests built as Responses bodies."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

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
from waypost.wire.anthropic import messages as anthropic
from waypost.wire.openai.responses import decode_request, encode_request

FIXTURES = Path(__file__).parents[2] / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def canonical_only(req: ChatRequest) -> ChatRequest:
    """The request as if it had come from another format: no client body to pass through."""
    return dataclasses.replace(req, source_format=None, passthrough=None)


def test_a_documented_conversation_decodes_item_by_item() -> None:
    req = decode_request(fixture("openai_responses/request_conversation.json"))
    assert req.messages == [
        Message("system", [TextPart("You are a weather assistant.")]),
        Message("system", [TextPart("Answer in metric units.")]),
        Message(
            "user",
            [
                TextPart("What is the weather in Paris and Rome? Here is a map and last week's report."),
                ImagePart(data="iVBORw0KGgo=", media_type="image/png", detail="low"),
                DocumentPart(data="JVBERi0xLjQK", media_type="application/pdf", filename="report.pdf"),
            ],
        ),
        Message(
            "assistant",
            [
                ThinkingPart(
                    "Two cities: call the tool twice.", signature="openai:gAAAAABoEncryptedReasoning"
                ),
                ToolCallPart(id="call_paris", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCallPart(id="call_rome", name="get_weather", arguments='{"city":"Rome"}'),
            ],
        ),
        Message(
            "user",
            [
                ToolResultPart(tool_call_id="call_paris", content=[TextPart("18C, sunny")]),
                ToolResultPart(
                    tool_call_id="call_rome",
                    content=[
                        TextPart("24C, see the radar"),
                        ImagePart(url="https://example.com/rome-radar.png", detail="auto"),
                    ],
                ),
            ],
        ),
        Message("assistant", [TextPart("Paris: 18C and sunny. Rome: 24C.")]),
        Message("user", [TextPart("Thanks. Now the same as JSON.")]),
    ]


def test_a_documented_conversation_decodes_its_parameters() -> None:
    req = decode_request(fixture("openai_responses/request_conversation.json"))
    assert [t.name for t in req.tools] == ["get_weather"] and req.tools[0].strict is True
    assert req.hosted_tools == [{"type": "web_search", "search_context_size": "low"}]
    assert req.tool_choice is not None and (req.tool_choice.mode, req.tool_choice.parallel) == ("auto", True)
    assert req.response_format is not None
    assert (req.response_format.type, req.response_format.name) == ("json_schema", "weather")
    assert req.thinking is not None and req.thinking.effort == "low"
    assert (req.max_tokens, req.temperature, req.top_p) == (800, 0.5, 0.9)
    assert (req.metadata, req.user, req.stream) == ({"session": "s-1"}, "user-42", False)


def test_a_conversation_rebuilt_from_the_canonical_model_keeps_its_items() -> None:
    sent = fixture("openai_responses/request_conversation.json")
    out, _ = encode_request(canonical_only(decode_request(sent)), "gpt-up", stream=True)
    assert out["instructions"] == "You are a weather assistant.\n\nAnswer in metric units."
    # The items as sent, less what only OpenAI's storage uses (ids, status, annotations).
    assert decode_request({**out, "instructions": None}).messages == decode_request(sent).messages[2:]
    assert out["input"][1:4] == [
        {
            "type": "reasoning",
            "summary": sent["input"][2]["summary"],
            "encrypted_content": "gAAAAABoEncryptedReasoning",
        },
        {
            "type": "function_call",
            "call_id": "call_paris",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {
            "type": "function_call",
            "call_id": "call_rome",
            "name": "get_weather",
            "arguments": '{"city":"Rome"}',
        },
    ]
    assert out["input"][5]["output"] == sent["input"][6]["output"]


def test_a_conversation_rebuilt_from_the_canonical_model_keeps_its_parameters() -> None:
    sent = fixture("openai_responses/request_conversation.json")
    out, dropped = encode_request(canonical_only(decode_request(sent)), "gpt-up", stream=True)
    assert out["tools"] == sent["tools"]
    assert (out["tool_choice"], out["parallel_tool_calls"]) == ("auto", True)
    assert out["text"] == {"format": sent["text"]["format"]}
    assert out["reasoning"] == {"effort": "low"}
    assert out["include"] == ["reasoning.encrypted_content"]
    assert (out["model"], out["stream"], out["store"]) == ("gpt-up", True, False)
    for key in ("max_output_tokens", "temperature", "top_p", "metadata", "user"):
        assert out[key] == sent[key]
    assert dropped == ()


def test_an_anthropic_request_is_built_as_a_responses_body() -> None:
    sent = fixture("anthropic/request_claude_code.json")
    out, dropped = encode_request(anthropic.decode_request(sent), "gpt-up", stream=True)
    kinds = [item["type"] for item in out["input"]]
    calls = [i["call_id"] for i in out["input"] if i["type"] == "function_call"]
    results = [i["call_id"] for i in out["input"] if i["type"] == "function_call_output"]
    assert calls and sorted(calls) == sorted(results)
    assert "reasoning" not in kinds  # Anthropic's signed thinking means nothing to OpenAI
    assert any("thinking" in note for note in dropped)
    assert {t["name"] for t in out["tools"] if t["type"] == "function"} >= {"Read", "Bash"}
    assert out["max_output_tokens"] == sent["max_tokens"]
