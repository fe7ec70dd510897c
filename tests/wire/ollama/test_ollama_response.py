"""Recorded Ollama ``/api/chat`` answers and ``/api/embed`` bodies -> canonical objects."""

from __future__ import annotations

import calendar
import json
from pathlib import Path
from typing import Any

import pytest

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import EmbeddingRequest, FinishReason, TextPart, ThinkingPart, ToolCallPart, Usage
from waypost.wire import ollama

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ollama"
RID = "ollama-0123456789abcdef01234567"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_text_answer() -> None:
    resp = ollama.decode_response(recorded("response_text.json"), RID)
    assert resp.id == RID
    assert resp.model == "llama3.2"
    assert resp.content == [TextPart("Hello! How are you today?")]
    assert resp.finish_reason is FinishReason.STOP
    assert resp.usage == Usage(input_tokens=26, output_tokens=298)
    assert resp.created == calendar.timegm((2023, 12, 12, 14, 13, 43))


def test_tool_calls_get_arguments_as_json_text_and_synthesized_ids() -> None:
    resp = ollama.decode_response(recorded("response_tool_calls.json"), RID)
    calls = resp.tool_calls()
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        (
            "call_0123456789abcdef01234567_0",
            "get_current_weather",
            {"format": "celsius", "location": "Paris, FR"},
        ),
        (
            "call_0123456789abcdef01234567_1",
            "get_current_weather",
            {"format": "celsius", "location": "Lyon, FR"},
        ),
    ]
    assert resp.finish_reason is FinishReason.TOOL_CALLS
    assert resp.text() == ""


def test_synthesized_tool_ids_are_unique_per_response() -> None:
    first = ollama.decode_response(recorded("response_tool_calls.json"), "ollama-aaaa")
    second = ollama.decode_response(recorded("response_tool_calls.json"), "ollama-bbbb")
    assert {c.id for c in first.tool_calls()}.isdisjoint(c.id for c in second.tool_calls())


def test_a_tool_call_id_sent_by_the_upstream_is_kept() -> None:
    body = recorded("response_tool_calls.json")
    body["message"]["tool_calls"][0]["id"] = "call_from_upstream"
    assert ollama.decode_response(body, RID).tool_calls()[0].id == "call_from_upstream"


def test_thinking_comes_before_the_text() -> None:
    resp = ollama.decode_response(recorded("response_thinking.json"), RID)
    assert isinstance(resp.content[0], ThinkingPart)
    assert resp.content[0].text.startswith("Let me count")
    assert resp.content[1] == TextPart("There are three r's in strawberry.")


def test_done_reason_length_is_a_length_finish() -> None:
    assert ollama.decode_response(recorded("response_length.json"), RID).finish_reason is FinishReason.LENGTH


@pytest.mark.parametrize("reason", ["load", "unload", None, 42])
def test_other_done_reasons_are_a_natural_stop(reason: Any) -> None:
    body = recorded("response_text.json")
    body["done_reason"] = reason
    assert ollama.decode_response(body, RID).finish_reason is FinishReason.STOP


def test_an_error_body_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="model is required"):
        ollama.decode_response({"error": "model is required"}, RID)


@pytest.mark.parametrize(
    "body",
    [
        {"message": None, "done": True},
        {"message": {"content": 5, "tool_calls": "x"}, "prompt_eval_count": "many", "eval_count": -3},
        {"message": {"tool_calls": [{"function": {"arguments": {}}}, "junk", {"function": {"name": "f"}}]}},
        {"created_at": "yesterday", "model": 7},
    ],
)
def test_odd_bodies_degrade_to_defaults_never_crash(body: dict[str, Any]) -> None:
    resp = ollama.decode_response(body, RID)
    assert resp.usage.input_tokens >= 0 and resp.created == 0
    assert all(isinstance(p, TextPart | ToolCallPart) for p in resp.content)


def test_a_tool_call_without_arguments_gets_an_empty_object() -> None:
    body = {"message": {"tool_calls": [{"function": {"name": "ping"}}]}, "done": True}
    assert ollama.decode_response(body, RID).tool_calls()[0].arguments == "{}"


def test_a_body_that_is_not_an_object_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        ollama.decode_response([1, 2], RID)


def test_nanosecond_timestamps_with_an_offset_are_read() -> None:
    assert ollama.created_from_ollama("2023-08-04T08:52:19.385406455-07:00") == calendar.timegm(
        (2023, 8, 4, 15, 52, 19)
    )


# -- embeddings ------------------------------------------------------------------------------------


def test_embedding_request_sends_the_inputs_and_dimensions() -> None:
    req = EmbeddingRequest(model="e", inputs=["a", "b"], dimensions=256)
    assert ollama.encode_embed_request(req, "all-minilm") == (
        {"model": "all-minilm", "input": ["a", "b"], "dimensions": 256},
        (),
    )


def test_embedding_request_returns_what_it_cannot_carry() -> None:
    req = EmbeddingRequest(model="e", inputs=["a"], input_type="query", user="u")
    assert ollama.encode_embed_request(req, "all-minilm").dropped == (
        "input_type dropped: Ollama embeddings take no retrieval hint",
        "user dropped: Ollama has no end-user field",
    )
    assert req.notes == []


def test_token_array_inputs_are_refused_clearly() -> None:
    with pytest.raises(BadRequest, match="token arrays"):
        ollama.encode_embed_request(EmbeddingRequest(model="e", token_inputs=[[1, 2]]), "all-minilm")


def test_embedding_answer_gives_vectors_and_prompt_tokens() -> None:
    resp = ollama.decode_embed_response(recorded("embed_response.json"), "all-minilm", 2)
    assert resp.model == "all-minilm"
    assert len(resp.vectors) == 2 and resp.vectors[0][0] == pytest.approx(0.010071029)
    assert resp.usage.input_tokens == 8


def test_embedding_answer_with_the_wrong_number_of_vectors_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="2 embeddings for 3 inputs"):
        ollama.decode_embed_response(recorded("embed_response.json"), "all-minilm", 3)


def test_embedding_answer_with_non_numbers_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        ollama.decode_embed_response({"embeddings": [["x"]]}, "all-minilm", 1)
