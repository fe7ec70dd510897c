"""Canonical requests -> Ollama ``/api/chat`` bodies: what is carried, and what is dropped with a note."""

from __future__ import annotations

from typing import Any

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
from waypost.wire import ollama

WEATHER = Tool(
    name="get_weather",
    description="Weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def user(*parts: Any) -> Message:
    return Message("user", [TextPart(p) if isinstance(p, str) else p for p in parts])


def encode(req: ChatRequest, stream: bool = False) -> dict[str, Any]:
    return ollama.encode_request(req, "llama3.2", stream=stream).body


def dropped(req: ChatRequest) -> tuple[str, ...]:
    """The notes of encoding ``req`` (encoding is pure: the same every time)."""
    return ollama.encode_request(req, "llama3.2", stream=False).dropped


def test_plain_conversation_becomes_flat_messages() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message("system", [TextPart("Be terse.")]),
            user("hi"),
            Message("assistant", [TextPart("hello")]),
            user("again"),
        ],
    )
    assert encode(req) == {
        "model": "llama3.2",
        "stream": False,
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
    }


def test_stream_flag_is_always_sent_because_ollama_streams_by_default() -> None:
    req = ChatRequest(model="m", messages=[user("hi")])
    assert encode(req, stream=True)["stream"] is True
    assert encode(req, stream=False)["stream"] is False


def test_several_text_parts_are_joined_with_blank_lines() -> None:
    req = ChatRequest(model="m", messages=[user("first", "second")])
    assert encode(req)["messages"][0]["content"] == "first\n\nsecond"


def test_sampling_parameters_go_in_options() -> None:
    req = ChatRequest(
        model="m",
        messages=[user("hi")],
        max_tokens=100,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop=["END"],
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
    )
    assert encode(req)["options"] == {
        "num_predict": 100,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END"],
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
    }


def test_no_options_are_sent_when_none_are_set() -> None:
    assert "options" not in encode(ChatRequest(model="m", messages=[user("hi")]))


def test_inline_images_go_in_the_images_list_as_bare_base64() -> None:
    image = ImagePart(data="iVBORw0KGgo=", media_type="image/png")
    body = encode(ChatRequest(model="m", messages=[user("what is this?", image)]))
    assert body["messages"][0] == {"role": "user", "content": "what is this?", "images": ["iVBORw0KGgo="]}


def test_image_urls_are_dropped_with_a_note_never_fetched() -> None:
    req = ChatRequest(
        model="m", messages=[user("what is this?", ImagePart(url="https://example.com/cat.png"))]
    )
    body = encode(req)
    assert body["messages"][0] == {"role": "user", "content": "what is this?"}
    assert any("image given by URL dropped" in n for n in dropped(req))


def test_text_documents_are_inlined_and_binary_ones_dropped_with_a_note() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            user(
                DocumentPart(text="the body", title="Doc"),
                DocumentPart(data="JVBERi0=", media_type="application/pdf"),
            )
        ],
    )
    assert encode(req)["messages"][0]["content"] == "Doc\n\nthe body"
    assert any("documents dropped" in n for n in dropped(req))


def test_tool_definitions_use_the_function_schema() -> None:
    body = encode(ChatRequest(model="m", messages=[user("hi")], tools=[WEATHER]))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]


def test_assistant_tool_calls_carry_arguments_as_an_object() -> None:
    call = ToolCallPart(id="call_1", name="get_weather", arguments='{"city": "Paris", "days": [1, 2]}')
    req = ChatRequest(model="m", messages=[user("weather?"), Message("assistant", [call])])
    assert encode(req)["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}}],
    }


def test_tool_call_arguments_that_are_not_an_object_become_empty_with_a_note() -> None:
    call = ToolCallPart(id="call_1", name="get_weather", arguments="[1, 2]")
    req = ChatRequest(model="m", messages=[user("x"), Message("assistant", [call])])
    assert encode(req)["messages"][1]["tool_calls"][0]["function"]["arguments"] == {}
    assert any("not a JSON object" in n for n in dropped(req))


def test_tool_results_become_tool_messages_named_after_their_call() -> None:
    calls = [
        ToolCallPart(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCallPart(id="call_2", name="get_time", arguments="{}"),
    ]
    results = Message(
        "user",
        [
            ToolResultPart("call_1", [TextPart("sunny")]),
            ToolResultPart("call_2", [TextPart("noon")], is_error=True),
            TextPart("and now?"),
        ],
    )
    req = ChatRequest(model="m", messages=[user("q"), Message("assistant", calls), results])
    assert encode(req)["messages"][2:] == [
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "[tool error] noon", "tool_name": "get_time"},
        {"role": "user", "content": "and now?"},
    ]


def test_images_in_tool_results_stay_on_the_tool_message() -> None:
    call = ToolCallPart(id="call_1", name="screenshot", arguments="{}")
    result = ToolResultPart(
        "call_1", [TextPart("here"), ImagePart(data="iVBORw0KGgo=", media_type="image/png")]
    )
    req = ChatRequest(
        model="m", messages=[user("q"), Message("assistant", [call]), Message("user", [result])]
    )
    assert encode(req)["messages"][2] == {
        "role": "tool",
        "content": "here",
        "tool_name": "screenshot",
        "images": ["iVBORw0KGgo="],
    }


def test_json_object_mode_is_format_json() -> None:
    req = ChatRequest(model="m", messages=[user("hi")], response_format=ResponseFormat(type="json_object"))
    assert encode(req)["format"] == "json"


def test_json_schema_mode_sends_the_schema_as_format() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    req = ChatRequest(
        model="m", messages=[user("hi")], response_format=ResponseFormat(type="json_schema", schema=schema)
    )
    assert encode(req)["format"] == schema


def test_text_response_format_sends_no_format() -> None:
    req = ChatRequest(model="m", messages=[user("hi")], response_format=ResponseFormat(type="text"))
    assert "format" not in encode(req)


def test_thinking_with_a_budget_turns_think_on_and_notes_the_budget() -> None:
    req = ChatRequest(model="m", messages=[user("hi")], thinking=Thinking(budget_tokens=2048))
    assert encode(req)["think"] is True
    assert any("thinking budget dropped" in n for n in dropped(req))


def test_disabled_thinking_turns_think_off() -> None:
    req = ChatRequest(model="m", messages=[user("hi")], thinking=Thinking(enabled=False))
    assert encode(req)["think"] is False


def test_reasoning_effort_becomes_a_think_level() -> None:
    req = ChatRequest(model="m", messages=[user("hi")], thinking=Thinking(effort="high"))
    assert encode(req)["think"] == "high"


def test_adaptive_thinking_leaves_the_models_default() -> None:
    # Sending think=true to a model without thinking is an error; thinking models think anyway.
    req = ChatRequest(model="m", messages=[user("hi")], thinking=Thinking(adaptive=True))
    assert "think" not in encode(req)


def test_earlier_thinking_is_sent_back_as_the_messages_thinking() -> None:
    turn = Message("assistant", [ThinkingPart(text="hmm", signature="sig"), TextPart("answer")])
    req = ChatRequest(model="m", messages=[user("q"), turn, user("more")])
    assert encode(req)["messages"][1] == {"role": "assistant", "content": "answer", "thinking": "hmm"}


def test_tool_choice_none_is_carried_by_not_offering_the_tools() -> None:
    req = ChatRequest(model="m", messages=[user("hi")], tools=[WEATHER], tool_choice=ToolChoice(mode="none"))
    assert "tools" not in encode(req)
    assert dropped(req) == ()


def test_forced_tool_choice_is_dropped_with_a_note() -> None:
    req = ChatRequest(
        model="m",
        messages=[user("hi")],
        tools=[WEATHER],
        tool_choice=ToolChoice(mode="tool", name="get_weather"),
    )
    assert "tools" in encode(req)
    assert any("tool_choice dropped" in n for n in dropped(req))


def test_cache_control_and_metadata_are_dropped_with_notes() -> None:
    req = ChatRequest(
        model="m",
        messages=[Message("user", [TextPart("hi", cache_control={"type": "ephemeral"})])],
        metadata={"user_id": "u1"},
    )
    body = encode(req)
    assert "metadata" not in body
    assert any("cache_control" in n for n in dropped(req))
    assert any("metadata dropped" in n for n in dropped(req))
