"""Recorded Gemini responses and errors -> canonical responses and the error tree; embeddings both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from waypost.core.errors import (
    BadRequest,
    GatewayError,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamTimeout,
)
from waypost.core.types import (
    ChatRequest,
    EmbeddingRequest,
    FinishReason,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from waypost.wire.gemini import (
    decode_embed_response,
    decode_response,
    decode_token_count,
    encode_embed_request,
    encode_request,
    error_from_response,
    usage_from_gemini,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gemini"
FALLBACK_ID = "gemini-fresh0001"  # what the provider passes: a fresh id per answer


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_text_answer_keeps_its_signature_after_the_text() -> None:
    resp = decode_response(fixture("response_text.json"), FALLBACK_ID)
    assert resp.id == "Jk8VaMnYIfbWz7IP2s6Y8Ak"
    assert resp.model == "gemini-2.5-flash"
    assert resp.content == [
        TextPart("The capital of France is Paris."),
        ThinkingPart("", "gemini:text:CiQBcsjafL3lfW0tPH9BM3gkXUUOrbvVXmKr7PsFCLCVmGWL1nI="),
    ]
    assert resp.finish_reason == FinishReason.STOP


def test_usage_counts_cached_prompt_tokens_as_input_and_thoughts_as_output() -> None:
    usage = decode_response(fixture("response_text.json"), FALLBACK_ID).usage
    assert usage == Usage(
        input_tokens=1210, output_tokens=8 + 34, cache_read_tokens=1024, reasoning_tokens=34
    )


def test_server_tool_prompt_tokens_count_as_input() -> None:
    raw = {"promptTokenCount": 10, "toolUsePromptTokenCount": 5, "candidatesTokenCount": 3}
    assert usage_from_gemini(raw) == Usage(input_tokens=15, output_tokens=3)


def test_parallel_calls_get_distinct_ids_and_the_first_call_its_signature() -> None:
    resp = decode_response(fixture("response_parallel_calls.json"), FALLBACK_ID)
    thought, signature, paris, rome = resp.content
    assert isinstance(thought, ThinkingPart) and thought.text.startswith("**Checking two cities**")
    assert thought.signature is None
    assert signature == ThinkingPart(
        "", "gemini:call0:CtIBAVSoXO4Vd3n2pQ0kC0m6GhnkOvXHsl6t3x0hBZ2FJ5eQzqL3vZg0OeqZbQ4JjV0Kq9g="
    )
    assert isinstance(paris, ToolCallPart) and isinstance(rome, ToolCallPart)
    assert (paris.name, paris.input()) == ("get_weather", {"city": "Paris", "unit": "celsius"})
    assert (rome.name, rome.input()) == ("get_weather", {"city": "Rome", "unit": "celsius"})
    # Gemini gave no ids: they derive from the response id, so any reading of the answer agrees.
    assert (paris.id, rome.id) == (
        "call_gemini_vFoVaKqWDtvWz7IPyt2ZmAs_0",
        "call_gemini_vFoVaKqWDtvWz7IPyt2ZmAs_1",
    )
    assert resp.finish_reason == FinishReason.TOOL_CALLS  # Gemini says STOP after calls


def test_calls_of_an_answer_without_an_id_derive_theirs_from_the_callers_fresh_id() -> None:
    body = fixture("response_parallel_calls.json")
    del body["responseId"]
    resp = decode_response(body, FALLBACK_ID)
    assert [c.id for c in resp.tool_calls()] == [
        "call_gemini_gemini-fresh0001_0",
        "call_gemini_gemini-fresh0001_1",
    ]


def test_call_ids_from_gemini_are_kept() -> None:
    resp = decode_response(fixture("response_call_with_id.json"), FALLBACK_ID)
    assert [(p.id, p.name) for p in resp.tool_calls()] == [("fc_8f3k2j", "search_docs")]
    assert resp.text() == "Let me look that up."


@pytest.mark.parametrize(
    "name", ["response_text.json", "response_parallel_calls.json", "response_call_with_id.json"]
)
def test_replaying_an_answer_puts_every_signature_back_where_gemini_put_it(name: str) -> None:
    original = fixture(name)["candidates"][0]["content"]["parts"]
    resp = decode_response(fixture(name), FALLBACK_ID)
    results = [ToolResultPart(c.id, [TextPart("ok")]) for c in resp.tool_calls()]
    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [TextPart("q")]),
            Message("assistant", resp.content),
            Message("user", [*results, TextPart("next")]),
        ],
    )
    replayed = encode_request(req).body["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in replayed if not p.get("thought")] == [
        p.get("thoughtSignature") for p in original if not p.get("thought")
    ]


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    resp = decode_response(fixture("response_blocked.json"), FALLBACK_ID)
    assert resp.content == []
    assert resp.finish_reason == FinishReason.CONTENT_FILTER
    assert resp.usage.input_tokens == 17


def test_a_failed_function_call_with_no_content_is_a_retryable_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="MALFORMED_FUNCTION_CALL") as info:
        decode_response(fixture("response_malformed_call.json"), FALLBACK_ID)
    assert info.value.retryable


def test_max_tokens_is_a_length_finish() -> None:
    resp = decode_response(fixture("response_max_tokens.json"), FALLBACK_ID)
    assert resp.finish_reason == FinishReason.LENGTH
    assert resp.text() == "Once upon a time, in a land far"


@pytest.mark.parametrize("body", [[], {"usageMetadata": {}}, {"candidates": []}])
def test_a_body_without_candidates_is_an_upstream_error(body: Any) -> None:
    with pytest.raises(UpstreamError):
        decode_response(body, FALLBACK_ID)


def test_unknown_part_kinds_are_skipped() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "parts": [{"executableCode": {"language": "PYTHON", "code": "1+1"}}, {"text": "2"}],
                    "role": "model",
                },
                "finishReason": "STOP",
            }
        ]
    }
    assert decode_response(body, FALLBACK_ID).content == [TextPart("2")]


def test_token_count_reads_total_tokens() -> None:
    assert decode_token_count({"totalTokens": 31, "promptTokensDetails": []}) == 31
    with pytest.raises(UpstreamError):
        decode_token_count({"tokens": 3})


# -- errors ------------------------------------------------------------------------------------


def error(status: int, name: str) -> GatewayError:
    return error_from_response(status, (FIXTURES / name).read_bytes(), model="gem")


def test_quota_errors_are_rate_limits_with_googles_retry_delay() -> None:
    err = error(429, "error_quota.json")
    assert isinstance(err, RateLimited)
    assert err.retry_after == 23.0
    assert err.upstream_status == 429
    assert "You exceeded your current quota" in err.message


def test_an_invalid_api_key_is_the_gateways_problem_not_the_callers() -> None:
    err = error(400, "error_api_key.json")
    assert isinstance(err, UpstreamAuthError)
    assert err.message == "the gemini provider refused the gateway's credentials for model 'gem'"


def test_invalid_arguments_are_the_callers_bad_request() -> None:
    err = error(400, "error_invalid_argument.json")
    assert isinstance(err, UpstreamBadRequest)
    assert "contents.parts must not be empty" in err.message


def test_an_unsupported_location_lets_another_deployment_try() -> None:
    err = error(400, "error_location.json")
    assert type(err) is UpstreamError


def test_overload_maps_to_overloaded() -> None:
    assert isinstance(error(503, "error_overloaded.json"), Overloaded)


@pytest.mark.parametrize(
    ("status", "grpc", "cls"),
    [
        (403, "PERMISSION_DENIED", UpstreamAuthError),
        (404, "NOT_FOUND", UpstreamBadRequest),
        (413, "INVALID_ARGUMENT", PayloadTooLarge),
        (500, "INTERNAL", UpstreamError),
        (504, "DEADLINE_EXCEEDED", UpstreamTimeout),
    ],
)
def test_statuses_map_to_the_error_tree(status: int, grpc: str, cls: type[GatewayError]) -> None:
    body = json.dumps({"error": {"code": status, "message": "m", "status": grpc}}).encode()
    assert type(error_from_response(status, body, model="gem")) is cls


def test_a_body_that_is_not_json_still_maps_by_status() -> None:
    err = error_from_response(502, b"<html>Bad Gateway</html>", model="gem")
    assert type(err) is UpstreamError
    assert "Bad Gateway" in err.message


# -- embeddings --------------------------------------------------------------------------------


def test_embedding_requests_carry_task_type_and_dimensions() -> None:
    req = EmbeddingRequest(model="e", inputs=["a", "b"], input_type="query", dimensions=256)
    assert encode_embed_request(req, "gemini-embedding-001").body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "taskType": "RETRIEVAL_QUERY",
                "outputDimensionality": 256,
            }
            for text in ("a", "b")
        ]
    }


def test_document_inputs_are_retrieval_documents() -> None:
    req = EmbeddingRequest(model="e", inputs=["a"], input_type="document")
    assert encode_embed_request(req, "m").body["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"


def test_token_arrays_cannot_be_embedded() -> None:
    with pytest.raises(BadRequest, match="token arrays"):
        encode_embed_request(EmbeddingRequest(model="e", token_inputs=[[1, 2]]), "m")


def test_embedding_vectors_come_back_in_input_order() -> None:
    resp = decode_embed_response(fixture("embed_response.json"), "gemini-embedding-001", 2)
    assert resp.vectors == [[0.0123, -0.0456, 0.0789, -0.0012], [-0.0311, 0.0222, 0.0133, 0.0944]]


def test_a_missing_embedding_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="1 embeddings for 2 inputs"):
        decode_embed_response({"embeddings": [{"values": [0.1]}]}, "m", 2)
