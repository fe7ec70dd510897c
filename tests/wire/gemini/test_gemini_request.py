"""Canonical requests -> Gemini ``generateContent`` bodies. Every body built here must also pass the
fake Gemini server's validation, which plays the rules of the real API."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fakes.gemini_upstream import InvalidArgument, validate_generate_request

from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Thinking,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from waypost.wire.gemini import SKIP_SIGNATURE, encode_count_tokens, encode_request, wrap_signature

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER = Tool(
    name="get_weather",
    description="Weather for a city",
    parameters={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"anyOf": [{"const": "c"}, {"const": "f"}]}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


def user(*parts: Part | str) -> Message:
    return Message("user", [TextPart(p) if isinstance(p, str) else p for p in parts])


def assistant(*parts: Part | str) -> Message:
    return Message("assistant", [TextPart(p) if isinstance(p, str) else p for p in parts])


def encode(*messages: Message, **fields: Any) -> tuple[dict[str, Any], list[str]]:
    req = ChatRequest(model="m", messages=list(messages), **fields)
    body, dropped = encode_request(req)
    validate_generate_request(body)
    return body, list(dropped)


def test_system_messages_become_the_system_instruction() -> None:
    body, notes = encode(
        Message("system", [TextPart("Be terse.")]), user("hi"), Message("system", [TextPart("No emoji.")])
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "No emoji."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert "a system message inside the conversation was moved to the system instruction" in notes


def test_assistant_turns_use_the_model_role_and_same_role_turns_merge() -> None:
    body, _ = encode(user("one"), user("two"), assistant("ok"), user("three"))
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "ok"}]},
        {"role": "user", "parts": [{"text": "three"}]},
    ]


def test_empty_text_parts_and_then_empty_turns_are_dropped() -> None:
    body, notes = encode(user("hi"), assistant(""), user("", "again"))
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}, {"text": "again"}]}]
    assert "an empty assistant message dropped" in notes


def test_tool_results_become_function_responses_named_after_their_call() -> None:
    body, _ = encode(
        user("weather?"),
        assistant(
            ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),
            ToolCallPart("call_2", "get_time", "{}"),
        ),
        user(
            "thanks",
            ToolResultPart("call_2", [TextPart("noon")]),
            ToolResultPart("call_1", [TextPart("no such city")], is_error=True),
        ),
        tools=[WEATHER, Tool(name="get_time")],
    )
    model_turn, results = body["contents"][1:]
    assert [p["functionCall"] for p in model_turn["parts"]] == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"},
        {"name": "get_time", "args": {}, "id": "call_2"},
    ]
    assert results["parts"] == [
        {"functionResponse": {"name": "get_time", "response": {"output": "noon"}, "id": "call_2"}},
        {"functionResponse": {"name": "get_weather", "response": {"error": "no such city"}, "id": "call_1"}},
        {"text": "thanks"},
    ]


def test_ids_the_gateway_synthesised_are_never_sent_to_gemini() -> None:
    call_id = "call_gemini_0123456789abcdef01234567"
    body, _ = encode(
        user("weather?"),
        assistant(ToolCallPart(call_id, "get_weather", '{"city":"Rome"}')),
        user(ToolResultPart(call_id, [TextPart("sunny")])),
    )
    assert "id" not in body["contents"][1]["parts"][0]["functionCall"]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}
    ]


def test_a_result_for_a_call_missing_from_the_history_is_sent_as_text() -> None:
    body, notes = encode(user("hi", ToolResultPart("call_gone", [TextPart("42")])))
    assert body["contents"][0]["parts"] == [{"text": "hi"}, {"text": "Tool result (call_gone): 42"}]
    assert any("unknown call 'call_gone'" in n for n in notes)


def test_images_in_tool_results_follow_the_function_responses() -> None:
    body, notes = encode(
        user("look"),
        assistant(ToolCallPart("c1", "screenshot", "{}")),
        user(ToolResultPart("c1", [TextPart("done"), ImagePart(data=PNG, media_type="image/png")])),
    )
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "screenshot", "response": {"output": "done"}, "id": "c1"}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]
    assert "images and documents in tool results moved after the function responses" in notes


def test_inline_images_and_data_urls_become_inline_data() -> None:
    body, _ = encode(
        user(
            "what is this?",
            ImagePart(data=PNG, media_type="image/png"),
            ImagePart(url=f"data:image/webp;base64,{PNG}"),
        )
    )
    assert body["contents"][0]["parts"][1:] == [
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"inlineData": {"mimeType": "image/webp", "data": PNG}},
    ]


def test_cloud_storage_and_files_api_uris_become_file_data() -> None:
    files_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc-123"
    body, _ = encode(user("compare", ImagePart(url="gs://bucket/cat.jpg"), DocumentPart(url=files_uri)))
    assert body["contents"][0]["parts"][1:] == [
        {"fileData": {"fileUri": "gs://bucket/cat.jpg", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": files_uri, "mimeType": "application/pdf"}},
    ]


def test_http_image_urls_are_dropped_never_fetched() -> None:
    body, notes = encode(user("look", ImagePart(url="https://example.com/cat.png")))
    assert body["contents"][0]["parts"] == [{"text": "look"}]
    assert "image URLs dropped: Gemini only reads inline images, gs:// and Files API URIs" in notes


def test_documents_travel_inline_or_as_text() -> None:
    body, _ = encode(
        user(
            "summarise",
            DocumentPart(data="JVBERi0xLjQK", media_type="application/pdf"),
            DocumentPart(text="Clause 1: be kind.", title="Terms"),
        )
    )
    assert body["contents"][0]["parts"][1:] == [
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0xLjQK"}},
        {"text": "Terms\n\nClause 1: be kind."},
    ]


def test_call_signatures_go_back_onto_the_call_gemini_signed() -> None:
    body, _ = encode(
        user("Paris and Rome?"),
        assistant(
            ThinkingPart("", wrap_signature("call1", "U0lHMg==")),
            ToolCallPart("a", "get_weather", '{"city":"Paris"}'),
            ToolCallPart("b", "get_weather", '{"city":"Rome"}'),
            ThinkingPart("", wrap_signature("call0", "U0lHMQ==")),
        ),
        user(ToolResultPart("a", [TextPart("sun")]), ToolResultPart("b", [TextPart("rain")])),
    )
    parts = body["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == ["U0lHMQ==", "U0lHMg=="]


def test_a_text_signature_goes_onto_the_last_text_part() -> None:
    body, _ = encode(
        user("hi"),
        assistant(ThinkingPart("", wrap_signature("text", "VEVYVA==")), "Hello", " there"),
        user("bye"),
    )
    assert body["contents"][1]["parts"] == [
        {"text": "Hello"},
        {"text": " there", "thoughtSignature": "VEVYVA=="},
    ]


def test_signed_thoughts_are_replayed_as_thought_parts() -> None:
    body, _ = encode(
        user("hi"), assistant(ThinkingPart("Pondering.", wrap_signature("thought", "VEg=")), "Hi!"), user("?")
    )
    assert body["contents"][1]["parts"][0] == {
        "text": "Pondering.",
        "thought": True,
        "thoughtSignature": "VEg=",
    }


def test_thinking_without_a_gemini_signature_is_dropped() -> None:
    body, notes = encode(
        user("hi"),
        assistant(
            ThinkingPart("Claude's reasoning", "EqQBCkgIBhABGAIiQL=="), ThinkingPart("unsigned"), "Hi!"
        ),
        user("?"),
    )
    assert body["contents"][1]["parts"] == [{"text": "Hi!"}]
    assert "thinking without a Gemini signature dropped" in notes


def test_calls_of_the_current_tool_loop_without_a_signature_get_the_skip_value() -> None:
    body, notes = encode(
        user("weather?"),
        assistant(
            ToolCallPart("a", "get_weather", '{"city":"Paris"}'), ToolCallPart("b", "get_weather", "{}")
        ),
        user(ToolResultPart("a", [TextPart("sun")]), ToolResultPart("b", [TextPart("rain")])),
    )
    parts = body["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in parts] == [SKIP_SIGNATURE, None]
    assert "tool calls without a Gemini thought signature sent with Gemini's skip value" in notes


def test_earlier_tool_loops_are_left_unsigned() -> None:
    body, _ = encode(
        user("weather?"),
        assistant(ToolCallPart("a", "get_weather", '{"city":"Paris"}')),
        user(ToolResultPart("a", [TextPart("sun")])),
        assistant("It is sunny."),
        user("thanks"),
    )
    assert "thoughtSignature" not in body["contents"][1]["parts"][0]


def test_tools_carry_their_full_json_schema_without_the_schema_uri() -> None:
    body, _ = encode(user("hi"), tools=[WEATHER])
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string"},
                            "unit": {"anyOf": [{"const": "c"}, {"const": "f"}]},
                        },
                        "required": ["city"],
                        "additionalProperties": False,
                    },
                }
            ]
        }
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (ToolChoice("auto"), {"mode": "AUTO"}),
        (ToolChoice("none"), {"mode": "NONE"}),
        (ToolChoice("required"), {"mode": "ANY"}),
        (ToolChoice("tool", "get_weather"), {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
def test_tool_choice_becomes_a_function_calling_mode(choice: ToolChoice, config: dict[str, Any]) -> None:
    body, _ = encode(user("hi"), tools=[WEATHER], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_sampling_options_go_into_the_generation_config() -> None:
    body, notes = encode(
        user("hi"),
        max_tokens=300,
        temperature=1.5,
        top_p=0.9,
        top_k=40,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        stop=["a", "b", "c", "d", "e", "f"],
    )
    assert body["generationConfig"] == {
        "maxOutputTokens": 300,
        "temperature": 1.5,
        "topP": 0.9,
        "topK": 40,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "stopSequences": ["a", "b", "c", "d", "e"],
    }
    assert "stop sequences beyond the first 5 dropped" in notes


def test_json_schema_output_uses_the_response_json_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False}
    body, _ = encode(user("hi"), response_format=ResponseFormat("json_schema", schema=schema, name="n"))
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_json_object_output_is_json_mode() -> None:
    body, _ = encode(user("hi"), response_format=ResponseFormat("json_object"))
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("thinking", "config"),
    [
        (Thinking(budget_tokens=2048), {"thinkingBudget": 2048, "includeThoughts": True}),
        (Thinking(effort="low"), {"thinkingBudget": 2048, "includeThoughts": True}),
        (Thinking(adaptive=True), {"thinkingBudget": -1, "includeThoughts": True}),
        (Thinking(enabled=False), {"thinkingBudget": 0}),
        (Thinking(effort="none"), {"thinkingBudget": 0}),
    ],
)
def test_thinking_becomes_a_thinking_config(thinking: Thinking, config: dict[str, Any]) -> None:
    body, _ = encode(user("hi"), thinking=thinking)
    assert body["generationConfig"]["thinkingConfig"] == config


def test_token_counts_send_the_whole_prompt_as_a_generate_request() -> None:
    req = ChatRequest(
        model="m", messages=[Message("system", [TextPart("Be terse.")]), user("hi")], tools=[WEATHER]
    )
    body, _ = encode_count_tokens(req, "gemini-2.5-flash")
    inner = body["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert inner["systemInstruction"] == {"parts": [{"text": "Be terse."}]}
    assert inner["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert inner["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    validate_generate_request(inner, count_only=True)


def test_the_fake_refuses_what_a_careless_translation_would_send() -> None:
    # The fake's rules are what make the tests above meaningful: check that they bite.
    with pytest.raises(InvalidArgument, match="empty text parameter"):
        validate_generate_request({"contents": [{"role": "user", "parts": [{"text": ""}]}]})
    with pytest.raises(InvalidArgument, match="valid role"):
        validate_generate_request({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})
    with pytest.raises(InvalidArgument, match="Base64 decoding failed"):
        validate_generate_request(
            {"contents": [{"role": "model", "parts": [{"text": "x", "thoughtSignature": "gemini:text:abc"}]}]}
        )
    with pytest.raises(InvalidArgument, match="Unknown name"):
        validate_generate_request({"contents": [{"parts": [{"text": "x"}]}], "system": "hi"})
