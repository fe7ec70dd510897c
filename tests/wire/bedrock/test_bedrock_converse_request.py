"""Canonical requests -> Bedrock Converse bodies: every field Converse can carry, what it cannot
(with a note), and the rules Bedrock enforces. Every client request fixture must encode to a body
the fake Bedrock (which checks the service's rules) accepts."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.bedrock_validation import validate_converse

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
from waypost.wire.anthropic import messages as anthropic_messages
from waypost.wire.bedrock.converse import count_tokens_body, encode_request, model_path
from waypost.wire.openai import chat as openai_chat

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CLAUDE = "anthropic.claude-sonnet-4-20250514-v1:0"
NOVA = "amazon.nova-pro-v1:0"
LLAMA = "meta.llama3-70b-instruct-v1:0"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).decode()
WEATHER = Tool(
    "get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def user(*parts: Any) -> Message:
    return Message("user", [TextPart(p) if isinstance(p, str) else p for p in parts])


def assistant(*parts: Any) -> Message:
    return Message("assistant", [TextPart(p) if isinstance(p, str) else p for p in parts])


def request(*messages: Message, **fields: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=list(messages), **fields)


def encode(req: ChatRequest, model: str = CLAUDE) -> dict[str, Any]:
    body, _ = encode_request(req, model)
    validate_converse(body)
    return body


def dropped(req: ChatRequest, model: str = CLAUDE) -> tuple[str, ...]:
    """The notes of encoding ``req`` (encoding is pure: the same every time)."""
    return encode_request(req, model).dropped


CLIENT_FIXTURES = [("openai", p) for p in sorted((FIXTURES / "openai").glob("request_*.json"))] + [
    ("anthropic", p) for p in sorted((FIXTURES / "anthropic").glob("request_*.json"))
]


@pytest.mark.parametrize("model", [CLAUDE, NOVA, LLAMA])
@pytest.mark.parametrize(("fmt", "path"), CLIENT_FIXTURES, ids=[f"{f}-{p.stem}" for f, p in CLIENT_FIXTURES])
def test_every_client_fixture_encodes_to_a_body_bedrock_accepts(fmt: str, path: Path, model: str) -> None:
    decoder = openai_chat.decode_request if fmt == "openai" else anthropic_messages.decode_request
    encode(decoder(json.loads(path.read_text())), model)


def test_the_openai_all_fields_fixture_carries_everything_converse_has() -> None:
    req = openai_chat.decode_request(
        json.loads((FIXTURES / "openai" / "request_all_fields.json").read_text())
    )
    body = encode(req)
    assert body["system"] == [{"text": "You are terse."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Say hi."}]}]
    assert body["inferenceConfig"] == {"maxTokens": 256, "temperature": 0.2, "stopSequences": ["\n\n", "END"]}
    assert body["additionalModelRequestFields"] == {"top_k": 40}
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "get_weather"}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["strict"] is True
    schema = body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]
    assert schema["name"] == "greeting" and json.loads(schema["schema"])["required"] == ["text"]
    notes = dropped(req)
    for field in ("seed", "presence_penalty", "frequency_penalty", "user", "parallel_tool_calls"):
        assert any(note.startswith(field) for note in notes), field


def test_the_model_id_goes_in_the_path_percent_encoded_like_the_aws_sdks() -> None:
    assert model_path(CLAUDE, "converse") == "/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x"
    assert model_path(arn, "converse-stream") == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-x"
        "/converse-stream"
    )
    assert "model" not in encode(request(user("hi")))


def test_system_messages_anywhere_become_system_blocks_with_cache_points() -> None:
    req = request(
        Message("system", [TextPart("Be brief.", cache_control={"type": "ephemeral"})]),
        user("hi"),
        Message("system", [TextPart("Answer in French.")]),
    )
    body = encode(req)
    assert body["system"] == [
        {"text": "Be brief."},
        {"cachePoint": {"type": "default"}},
        {"text": "Answer in French."},
    ]
    assert "a system message inside the conversation was moved to the system prompt" in dropped(req)


def test_cache_control_becomes_a_cache_point_after_its_block_keeping_the_ttl() -> None:
    req = request(
        user(TextPart("long context", cache_control={"type": "ephemeral", "ttl": "1h"}), "question")
    )
    assert encode(req)["messages"][0]["content"] == [
        {"text": "long context"},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
        {"text": "question"},
    ]


def test_a_cached_tool_gets_a_cache_point_after_its_spec() -> None:
    tool = Tool("search", parameters={"type": "object"}, cache_control={"type": "ephemeral"})
    tools = encode(request(user("hi"), tools=[tool]))["toolConfig"]["tools"]
    assert tools == [
        {"toolSpec": {"name": "search", "inputSchema": {"json": {"type": "object"}}}},
        {"cachePoint": {"type": "default"}},
    ]


def test_consecutive_turns_merge_and_blank_text_is_dropped() -> None:
    req = request(user("a"), user("   "), user("b"), assistant(""), assistant("c"))
    assert encode(req)["messages"] == [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
        {"role": "assistant", "content": [{"text": "c"}]},
    ]


def test_images_travel_as_bytes_in_their_format() -> None:
    body = encode(request(user(ImagePart(data=PNG, media_type="image/png"), "what is this?")))
    assert body["messages"][0]["content"][0] == {"image": {"format": "png", "source": {"bytes": PNG}}}


def test_an_image_data_url_is_sent_as_bytes() -> None:
    body = encode(request(user(ImagePart(url=f"data:image/jpeg;base64,{PNG}"), "x")))
    assert body["messages"][0]["content"][0] == {"image": {"format": "jpeg", "source": {"bytes": PNG}}}


def test_image_urls_are_dropped_with_a_note_and_never_fetched() -> None:
    req = request(user(ImagePart(url="https://example.com/cat.png"), "what is this?"))
    assert encode(req)["messages"][0]["content"] == [{"text": "what is this?"}]
    assert "image URLs dropped (Bedrock takes image bytes only)" in dropped(req)


def test_an_image_in_an_unsupported_format_is_dropped_with_a_note() -> None:
    req = request(user(ImagePart(data=PNG, media_type="image/tiff"), "x"))
    assert encode(req)["messages"][0]["content"] == [{"text": "x"}]
    assert any("image/tiff" in note for note in dropped(req))


def test_documents_travel_as_bytes_with_a_format_and_a_safe_unique_name() -> None:
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    req = request(
        user(
            DocumentPart(data=pdf, media_type="application/pdf", filename="report.v2.pdf"),
            DocumentPart(text="plain notes", title="report.v2.pdf"),
            "summarise",
        )
    )
    content = encode(req)["messages"][0]["content"]
    assert content[0] == {"document": {"format": "pdf", "name": "report v2 pdf", "source": {"bytes": pdf}}}
    assert content[1]["document"]["format"] == "txt"
    assert content[1]["document"]["name"] == "report v2 pdf (2)"
    assert base64.b64decode(content[1]["document"]["source"]["bytes"]) == b"plain notes"


def test_documents_by_url_are_dropped_with_a_note() -> None:
    req = request(user(DocumentPart(url="https://example.com/a.pdf"), "x"))
    encode(req)
    assert any("documents given by URL" in note for note in dropped(req))


def test_tool_calls_and_results_pair_up_with_safe_ids() -> None:
    long_id = "call/" + "x" * 80
    req = request(
        user("weather?"),
        assistant(ToolCallPart(long_id, "get_weather", '{"city": "Oslo"}')),
        user(ToolResultPart(long_id, [TextPart("sunny")]), "thanks"),
        tools=[WEATHER],
    )
    messages = encode(req)["messages"]
    use = messages[1]["content"][0]["toolUse"]
    result = messages[2]["content"][0]["toolResult"]
    assert use["input"] == {"city": "Oslo"} and use["name"] == "get_weather"
    assert use["toolUseId"] == result["toolUseId"] and len(use["toolUseId"]) <= 64
    assert "/" not in use["toolUseId"]
    assert result["content"] == [{"text": "sunny"}]


def test_tool_results_come_first_in_their_user_turn_and_errors_say_so() -> None:
    req = request(
        user("go"),
        assistant(ToolCallPart("t1", "get_weather", "{}")),
        user("also this", ToolResultPart("t1", [TextPart("boom")], is_error=True)),
        tools=[WEATHER],
    )
    content = encode(req)["messages"][2]["content"]
    assert content[0] == {"toolResult": {"toolUseId": "t1", "content": [{"text": "boom"}], "status": "error"}}
    assert content[1] == {"text": "also this"}


def test_an_empty_tool_result_is_sent_as_an_empty_json_object() -> None:
    req = request(
        user("go"), assistant(ToolCallPart("t1", "f", "{}")), user(ToolResultPart("t1")), tools=[WEATHER]
    )
    assert encode(req)["messages"][2]["content"][0]["toolResult"]["content"] == [{"json": {}}]


def test_images_inside_tool_results_are_carried() -> None:
    req = request(
        user("go"),
        assistant(ToolCallPart("t1", "shot", "{}")),
        user(ToolResultPart("t1", [ImagePart(data=PNG, media_type="image/png")])),
        tools=[Tool("shot")],
    )
    result = encode(req)["messages"][2]["content"][0]["toolResult"]
    assert result["content"] == [{"image": {"format": "png", "source": {"bytes": PNG}}}]


def test_tool_history_without_declared_tools_declares_the_tools_it_used() -> None:
    req = request(
        user("go"),
        assistant(ToolCallPart("t1", "lookup", '{"q": 1}')),
        user(ToolResultPart("t1", [TextPart("r")])),
    )
    config = encode(req)["toolConfig"]
    assert config == {
        "tools": [
            {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
        ]
    }
    assert any("declared for Bedrock" in note for note in dropped(req))


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (ToolChoice("auto"), {"auto": {}}),
        (ToolChoice("required"), {"any": {}}),
        (ToolChoice("tool", "get_weather"), {"tool": {"name": "get_weather"}}),
    ],
)
def test_tool_choice_maps_to_its_converse_union(choice: ToolChoice, expected: dict[str, Any]) -> None:
    assert (
        encode(request(user("hi"), tools=[WEATHER], tool_choice=choice))["toolConfig"]["toolChoice"]
        == expected
    )


def test_tool_choice_none_withholds_the_tools() -> None:
    req = request(user("hi"), tools=[WEATHER], tool_choice=ToolChoice("none"))
    assert "toolConfig" not in encode(req)


def test_tool_choice_none_keeps_tools_the_history_needs_without_a_choice() -> None:
    req = request(
        user("go"),
        assistant(ToolCallPart("t1", "get_weather", "{}")),
        user(ToolResultPart("t1", [TextPart("ok")])),
        tools=[WEATHER],
        tool_choice=ToolChoice("none"),
    )
    config = encode(req)["toolConfig"]
    assert "toolChoice" not in config and config["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert "tool_choice none sent as auto (Bedrock has no none choice)" in dropped(req)


def test_thinking_goes_to_additional_fields_for_anthropic_models_with_room_above_the_budget() -> None:
    req = request(
        user("think"), thinking=Thinking(budget_tokens=8000), max_tokens=1000, temperature=0.5, top_k=5
    )
    body = encode(req)
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 8000}}
    assert body["inferenceConfig"] == {"maxTokens": 12096}
    assert "temperature dropped (not allowed with thinking)" in dropped(req)
    assert "top_k dropped (not allowed with thinking)" in dropped(req)


def test_reasoning_effort_becomes_a_thinking_budget() -> None:
    body = encode(request(user("x"), thinking=Thinking(effort="low"), max_tokens=9000))
    assert body["additionalModelRequestFields"]["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_adaptive_thinking_keeps_its_effort_in_output_config() -> None:
    body = encode(request(user("x"), thinking=Thinking(adaptive=True, effort="high")))
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "adaptive"}}
    assert body["outputConfig"] == {"effort": "high"}


def test_thinking_is_dropped_with_a_forced_tool_choice() -> None:
    req = request(
        user("x"), tools=[WEATHER], tool_choice=ToolChoice("required"), thinking=Thinking(budget_tokens=2000)
    )
    assert "additionalModelRequestFields" not in encode(req)
    assert "thinking dropped: Anthropic models refuse it with a forced tool choice" in dropped(req)


def test_thinking_is_dropped_for_models_that_take_no_thinking_configuration() -> None:
    req = request(user("x"), thinking=Thinking(budget_tokens=2000))
    assert "additionalModelRequestFields" not in encode(req, NOVA)
    assert any(note.startswith("thinking dropped (on Bedrock") for note in dropped(req, NOVA))


def test_signed_thinking_is_replayed_as_reasoning_content_and_unsigned_is_dropped() -> None:
    req = request(
        user("q"),
        assistant(
            ThinkingPart("hmm", signature="sig-1"),
            ThinkingPart("unsigned"),
            ThinkingPart(redacted=True, data="b64=="),
            "a",
        ),
        user("next"),
    )
    content = encode(req)["messages"][1]["content"]
    assert content == [
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig-1"}}},
        {"reasoningContent": {"redactedContent": "b64=="}},
        {"text": "a"},
    ]
    assert "thinking without a signature dropped (Bedrock only accepts signed reasoning)" in dropped(req)


def test_a_tool_loop_continues_thinking_only_from_a_turn_that_starts_with_reasoning() -> None:
    history = [
        user("go"),
        assistant(ToolCallPart("t1", "get_weather", "{}")),
        user(ToolResultPart("t1", [TextPart("ok")])),
    ]
    req = request(*history, tools=[WEATHER], thinking=Thinking(budget_tokens=2000))
    assert "additionalModelRequestFields" not in encode(req)
    history[1] = assistant(ThinkingPart("plan", signature="s"), ToolCallPart("t1", "get_weather", "{}"))
    req = request(*history, tools=[WEATHER], thinking=Thinking(budget_tokens=2000))
    assert encode(req)["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2000


def test_without_thinking_reasoning_is_removed_from_a_final_prefill_turn() -> None:
    req = request(user("q"), assistant(ThinkingPart("t", signature="s"), "The answer is"))
    assert encode(req)["messages"][-1]["content"] == [{"text": "The answer is"}]


def test_sampling_fields_map_to_inference_config_with_temperature_clamped() -> None:
    req = request(user("x"), temperature=1.7, max_tokens=50, stop=["END", ""])
    body = encode(req, LLAMA)
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 1.0, "stopSequences": ["END"]}
    assert "temperature above 1 clamped to 1" in dropped(req, LLAMA)
    assert "additionalModelResponseFieldPaths" not in body


def test_anthropic_models_are_asked_which_stop_sequence_matched() -> None:
    body = encode(request(user("x"), stop=["END"]))
    assert body["additionalModelResponseFieldPaths"] == ["/stop_sequence"]


def test_anthropic_models_get_the_default_max_tokens_and_others_their_own_default() -> None:
    assert encode(request(user("x")))["inferenceConfig"] == {"maxTokens": 4096}
    assert "inferenceConfig" not in encode(request(user("x")), LLAMA)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (CLAUDE, {"top_k": 7}),
        (NOVA, {"inferenceConfig": {"topK": 7}}),
        ("mistral.mistral-large-2407-v1:0", {"top_k": 7}),
    ],
)
def test_top_k_goes_where_each_model_family_reads_it(model: str, expected: dict[str, Any]) -> None:
    assert encode(request(user("x"), top_k=7), model)["additionalModelRequestFields"] == expected


def test_top_k_is_dropped_for_models_not_known_to_take_it() -> None:
    req = request(user("x"), top_k=7)
    assert "additionalModelRequestFields" not in encode(req, LLAMA)
    assert any(note.startswith("top_k dropped") for note in dropped(req, LLAMA))


def test_json_object_mode_becomes_a_system_instruction() -> None:
    req = request(user("x"), response_format=ResponseFormat("json_object"))
    assert "JSON object" in encode(req)["system"][-1]["text"]
    assert "json_object response format approximated by a system instruction" in dropped(req)


def test_count_tokens_wraps_the_converse_input() -> None:
    req = request(
        Message("system", [TextPart("sys")]),
        user("hi"),
        tools=[WEATHER],
        thinking=Thinking(budget_tokens=1500),
    )
    body, _ = count_tokens_body(req, CLAUDE)
    converse = body["input"]["converse"]
    assert set(converse) == {"messages", "system", "toolConfig", "additionalModelRequestFields"}
    assert converse["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 1500}
    }
    validate_converse(converse, count_only=True)


def test_reasoning_signed_by_gemini_is_dropped_not_sent() -> None:
    from waypost.core.types import ChatRequest, Message, TextPart, ThinkingPart
    from waypost.wire.bedrock.converse import encode_request

    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("q")]),
            Message("assistant", [ThinkingPart("hmm", signature="gemini:thought:c2ln"), TextPart("a")]),
            Message("user", [TextPart("again")]),
        ],
    )
    body, notes = encode_request(req, "anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert body["messages"][1]["content"] == [{"text": "a"}]
    assert any("Gemini" in note for note in notes)


def test_reasoning_signed_by_openai_is_dropped_not_sent() -> None:
    from waypost.core.types import ChatRequest, Message, TextPart, ThinkingPart
    from waypost.wire.bedrock.converse import encode_request

    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("q")]),
            Message("assistant", [ThinkingPart("hmm", signature="openai:gAAAAABo"), TextPart("a")]),
            Message("user", [TextPart("again")]),
        ],
    )
    body, notes = encode_request(req, "anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert body["messages"][1]["content"] == [{"text": "a"}]
    assert any("OpenAI" in note for note in notes)
