"""decode_request: an OpenAI Chat Completions body from a client -> canonical ChatRequest."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from waypost.core.errors import BadRequest
from waypost.core.types import (
    DocumentPart,
    ImagePart,
    ResponseFormat,
    TextPart,
    Thinking,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from waypost.wire.openai.chat import decode_request

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def minimal(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **extra}


# -- top-level fields ----------------------------------------------------------------------------


def test_every_modelled_field_is_decoded() -> None:
    req = decode_request(load("request_all_fields.json"))
    assert req.model == "gpt-4o-mini"
    assert req.max_tokens == 256
    assert req.temperature == 0.2
    assert req.top_p == 0.9
    assert req.top_k == 40
    assert req.stop == ["\n\n", "END"]
    assert req.tools == [
        Tool(
            name="get_weather",
            description="Current weather for a city",
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            strict=True,
        )
    ]
    assert req.tool_choice == ToolChoice(mode="tool", name="get_weather", parallel=False)
    assert req.response_format == ResponseFormat(
        type="json_schema",
        name="greeting",
        strict=True,
        schema={
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
            "additionalProperties": False,
        },
    )
    assert req.thinking == Thinking(effort="low")
    assert req.stream is True
    assert req.include_usage is True
    assert req.seed == 7
    assert req.presence_penalty == 0.5
    assert req.frequency_penalty == -0.5
    assert req.user == "user-1234"
    assert req.metadata == {"session": "abc"}


def test_source_format_and_the_clients_body_are_kept() -> None:
    body = load("request_all_fields.json")
    req = decode_request(body)
    assert req.source_format == "openai"
    assert req.passthrough is not None and req.passthrough.body is body


def test_unknown_fields_are_kept_in_the_clients_body_only_without_error() -> None:
    req = decode_request(minimal(logit_bias={"1": 5}, web_search_options={}, verbosity="low"))
    assert req.passthrough is not None
    assert req.passthrough.body["verbosity"] == "low"


def test_developer_and_system_messages_become_system() -> None:
    req = decode_request(load("request_all_fields.json"))
    assert req.messages[0].role == "system"
    assert req.messages[0].text() == "You are terse."


def test_message_name_is_kept() -> None:
    req = decode_request(load("request_all_fields.json"))
    assert req.messages[1].name == "alice"


def test_max_tokens_is_accepted_when_max_completion_tokens_is_absent() -> None:
    assert decode_request(minimal(max_tokens=99)).max_tokens == 99


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert decode_request(minimal(max_tokens=99, max_completion_tokens=50)).max_tokens == 50


def test_integral_float_is_accepted_for_an_integer_field() -> None:
    assert decode_request(minimal(max_tokens=100.0)).max_tokens == 100


def test_stop_as_a_single_string_becomes_a_list() -> None:
    assert decode_request(minimal(stop="###")).stop == ["###"]


def test_explicit_nulls_are_treated_as_absent() -> None:
    req = decode_request(minimal(temperature=None, stop=None, tools=None, stream_options=None, user=None))
    assert req.temperature is None
    assert req.stop == []
    assert req.tools == []


@pytest.mark.parametrize("value", ["auto", "none", "required"])
def test_tool_choice_strings(value: str) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert decode_request(minimal(tools=tools, tool_choice=value)).tool_choice == ToolChoice(mode=value)


def test_parallel_tool_calls_alone_sets_parallel_on_an_auto_choice() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    req = decode_request(minimal(tools=tools, parallel_tool_calls=False))
    assert req.tool_choice == ToolChoice(mode="auto", parallel=False)


def test_tool_without_parameters_gets_an_empty_object_schema() -> None:
    req = decode_request(minimal(tools=[{"type": "function", "function": {"name": "ping"}}]))
    assert req.tools[0].parameters == {"type": "object", "properties": {}}


def test_non_function_tools_are_dropped_with_a_note() -> None:
    tools = [
        {"type": "custom", "custom": {"name": "grammar"}},
        {"type": "function", "function": {"name": "f"}},
    ]
    req = decode_request(minimal(tools=tools))
    assert [t.name for t in req.tools] == ["f"]
    assert any("custom" in n for n in req.notes)


@pytest.mark.parametrize("kind", ["text", "json_object"])
def test_simple_response_formats(kind: str) -> None:
    req = decode_request(minimal(response_format={"type": kind}))
    assert req.response_format == ResponseFormat(type=kind)


def test_reasoning_effort_none_disables_thinking() -> None:
    assert decode_request(minimal(reasoning_effort="none")).thinking == Thinking(enabled=False, effort="none")


def test_anthropic_style_thinking_budget_is_accepted() -> None:
    req = decode_request(minimal(thinking={"type": "enabled", "budget_tokens": 4096}))
    assert req.thinking == Thinking(budget_tokens=4096)


def test_stream_without_stream_options_does_not_ask_for_usage() -> None:
    req = decode_request(minimal(stream=True))
    assert req.stream is True
    assert req.include_usage is False


def test_n_above_one_is_noted() -> None:
    assert any("n > 1" in n for n in decode_request(minimal(n=2)).notes)


def test_n_is_the_number_of_choices_and_one_by_default() -> None:
    assert decode_request(minimal(n=3)).choices == 3
    assert decode_request(minimal()).choices == 1


@pytest.mark.parametrize("value", [21, -1, 1.5])
def test_top_logprobs_outside_the_apis_range_is_refused(value: Any) -> None:
    with pytest.raises(BadRequest) as err:
        decode_request(minimal(logprobs=True, top_logprobs=value))
    assert err.value.param == "top_logprobs"


def test_top_logprobs_up_to_twenty_stays_in_the_clients_body() -> None:
    req = decode_request(minimal(logprobs=True, top_logprobs=20))
    assert req.passthrough is not None and req.passthrough.body["top_logprobs"] == 20


# -- content parts -------------------------------------------------------------------------------


def test_data_url_image_becomes_inline_image() -> None:
    req = decode_request(load("request_multimodal.json"))
    image = req.messages[1].content[1]
    assert isinstance(image, ImagePart)
    assert image.media_type == "image/png"
    assert image.data is not None and image.data.startswith("iVBORw0KGgo")
    assert image.url is None
    assert image.detail == "low"


def test_http_image_stays_a_url() -> None:
    req = decode_request(load("request_multimodal.json"))
    assert req.messages[1].content[2] == ImagePart(url="https://example.com/cat.jpg")


def test_file_data_becomes_a_document() -> None:
    req = decode_request(load("request_multimodal.json"))
    doc = req.messages[1].content[3]
    assert isinstance(doc, DocumentPart)
    assert doc.media_type == "application/pdf"
    assert doc.filename == "report.pdf"
    assert doc.data is not None and doc.data.startswith("JVBERi0")


def test_input_audio_is_dropped_with_a_note() -> None:
    req = decode_request(load("request_multimodal.json"))
    assert len(req.messages[1].content) == 4
    assert any("input_audio" in n for n in req.notes)


def test_system_content_parts_become_text() -> None:
    req = decode_request(load("request_multimodal.json"))
    assert req.messages[0].content == [TextPart(text="You describe images.")]


def test_percent_encoded_data_url_is_carried_as_base64() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/svg+xml,%3Csvg%2F%3E"}}
    req = decode_request(minimal(messages=[{"role": "user", "content": [part]}]))
    assert req.messages[0].content == [ImagePart(data="PHN2Zy8+", media_type="image/svg+xml")]


def test_cache_control_on_a_text_part_is_carried() -> None:
    part = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    req = decode_request(minimal(messages=[{"role": "user", "content": [part]}]))
    assert req.messages[0].content == [TextPart(text="long context", cache_control={"type": "ephemeral"})]


# -- assistant turns and tool results ----------------------------------------------------------


def test_assistant_tool_calls_and_reasoning_are_decoded_reasoning_first() -> None:
    req = decode_request(load("request_tool_turns.json"))
    assistant = req.messages[2]
    assert assistant.role == "assistant"
    assert assistant.content == [
        ThinkingPart(text="Two cities, so two calls."),
        ToolCallPart(id="call_paris", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCallPart(id="call_tokyo", name="get_weather", arguments='{"city":"Tokyo"}'),
    ]


def test_consecutive_tool_messages_merge_into_one_user_message() -> None:
    req = decode_request(load("request_tool_turns.json"))
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "user", "user"]
    results = req.messages[3].content
    assert results == [
        ToolResultPart(tool_call_id="call_paris", content=[TextPart(text="18C, cloudy")]),
        ToolResultPart(tool_call_id="call_tokyo", content=[TextPart(text="24C, sunny")]),
    ]


def test_thinking_blocks_keep_their_signatures_and_redacted_data() -> None:
    req = decode_request(load("request_thinking_blocks.json"))
    assert req.messages[1].content == [
        ThinkingPart(
            text="27 * 453 = 12231", signature="EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
        ),
        ThinkingPart(redacted=True, data="EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"),
        TextPart(text="12231"),
    ]


def test_assistant_refusal_part_is_kept_as_text() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
    ]
    req = decode_request(minimal(messages=messages))
    assert req.messages[1].content == [TextPart(text="I can't help with that.")]


def test_tool_call_arguments_given_as_an_object_become_json_text() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    req = decode_request(minimal(messages=[{"role": "assistant", "tool_calls": [call]}]))
    assert req.messages[0].content == [ToolCallPart(id="c1", name="f", arguments='{"a":1}')]


def test_legacy_function_call_and_result_are_paired_by_a_synthetic_id() -> None:
    req = decode_request(load("request_legacy_functions.json"))
    call = req.messages[1].content[0]
    result = req.messages[2].content[0]
    assert isinstance(call, ToolCallPart) and isinstance(result, ToolResultPart)
    assert call.name == "get_time"
    assert call.arguments == '{"tz":"UTC"}'
    assert result.tool_call_id == call.id
    assert result.text() == "12:00"


def test_legacy_functions_become_tools_and_function_call_a_tool_choice() -> None:
    req = decode_request(load("request_legacy_functions.json"))
    assert [t.name for t in req.tools] == ["get_time"]
    assert req.tool_choice == ToolChoice(mode="tool", name="get_time")


# -- validation ----------------------------------------------------------------------------------


def bad_param(body: Any) -> str | None:
    with pytest.raises(BadRequest) as info:
        decode_request(body)
    return info.value.param


@pytest.mark.parametrize("body", [None, [], "x", 3])
def test_body_that_is_not_an_object_is_rejected(body: Any) -> None:
    with pytest.raises(BadRequest):
        decode_request(body)


@pytest.mark.parametrize("model", [None, "", "  ", 5])
def test_model_must_be_a_non_empty_string(model: Any) -> None:
    assert bad_param({"model": model, "messages": [{"role": "user", "content": "hi"}]}) == "model"


@pytest.mark.parametrize("messages", [None, [], "hi", {"role": "user"}])
def test_messages_must_be_a_non_empty_list(messages: Any) -> None:
    assert bad_param({"model": "m", "messages": messages}) == "messages"


def test_a_message_that_is_not_an_object_is_named() -> None:
    assert bad_param(minimal(messages=[{"role": "user", "content": "a"}, "oops"])) == "messages[1]"


def test_an_unknown_role_is_named() -> None:
    assert bad_param(minimal(messages=[{"role": "robot", "content": "a"}])) == "messages[0].role"


def test_a_missing_role_is_named() -> None:
    assert bad_param(minimal(messages=[{"content": "a"}])) == "messages[0].role"


def test_content_of_the_wrong_type_is_named() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": 5},
    ]
    assert bad_param(minimal(messages=messages)) == "messages[2].content"


def test_a_text_part_without_text_is_named() -> None:
    assert (
        bad_param(minimal(messages=[{"role": "user", "content": [{"type": "text"}]}]))
        == "messages[0].content[0].text"
    )


def test_a_malformed_data_url_is_named() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64"}}
    assert (
        bad_param(minimal(messages=[{"role": "user", "content": [part]}]))
        == "messages[0].content[0].image_url.url"
    )


def test_a_tool_message_without_tool_call_id_is_named() -> None:
    assert bad_param(minimal(messages=[{"role": "tool", "content": "r"}])) == "messages[0].tool_call_id"


def test_a_tool_call_without_a_function_name_is_named() -> None:
    call = {"id": "c", "type": "function", "function": {"arguments": "{}"}}
    assert bad_param(minimal(messages=[{"role": "assistant", "tool_calls": [call]}])) == (
        "messages[0].tool_calls[0].function.name"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", "hot"),
        ("temperature", True),
        ("top_p", []),
        ("top_k", 1.5),
        ("max_tokens", "10"),
        ("max_completion_tokens", 0),
        ("seed", "7"),
        ("stream", "yes"),
        ("presence_penalty", {}),
        ("frequency_penalty", "x"),
        ("user", 5),
        ("metadata", "x"),
        ("tools", {"type": "function"}),
        ("tool_choice", "sometimes"),
        ("tool_choice", {"type": "mystery"}),
        ("parallel_tool_calls", "no"),
        ("response_format", {"type": "yaml"}),
        ("reasoning_effort", 3),
        ("stop", 5),
        ("stream_options", []),
    ],
)
def test_a_known_field_of_the_wrong_type_or_value_is_named(field: str, value: Any) -> None:
    param = bad_param(minimal(**{field: value}))
    assert param is not None
    assert param.split(".")[0] == field


def test_a_tool_without_a_name_is_named() -> None:
    assert (
        bad_param(minimal(tools=[{"type": "function", "function": {"description": "x"}}]))
        == "tools[0].function.name"
    )


def test_a_non_string_stop_entry_is_named() -> None:
    assert bad_param(minimal(stop=["a", 1])) == "stop[1]"


def test_include_usage_of_the_wrong_type_is_named() -> None:
    assert (
        bad_param(minimal(stream=True, stream_options={"include_usage": "yes"}))
        == "stream_options.include_usage"
    )


def test_decoding_never_mutates_the_body() -> None:
    body = load("request_tool_turns.json")
    before = copy.deepcopy(body)
    decode_request(body)
    assert body == before


def test_an_unknown_content_part_type_is_dropped_with_a_note() -> None:
    parts = [
        {"type": "video_url", "video_url": {"url": "https://x.test/v.mp4"}},
        {"type": "text", "text": "hi"},
    ]
    req = decode_request(minimal(messages=[{"role": "user", "content": parts}]))
    assert req.messages[0].content == [TextPart(text="hi")]
    assert any("video_url" in n for n in req.notes)


def test_an_uploaded_file_id_is_dropped_with_a_note() -> None:
    part = {"type": "file", "file": {"file_id": "file-abc"}}
    req = decode_request(minimal(messages=[{"role": "user", "content": [part]}]))
    assert req.messages[0].content == []
    assert any("file_id" in n for n in req.notes)


def test_allowed_tools_choice_keeps_its_mode_and_notes_the_list() -> None:
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}}
    tools = [{"type": "function", "function": {"name": "f"}}]
    req = decode_request(minimal(tools=tools, tool_choice=choice))
    assert req.tool_choice == ToolChoice(mode="required")
    assert any("allowed_tools" in n for n in req.notes)
