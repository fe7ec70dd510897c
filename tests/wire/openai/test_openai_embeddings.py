"""OpenAI embeddings bodies <-> EmbeddingRequest / EmbeddingResponse, both vector encodings."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from openai.types import CreateEmbeddingResponse

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import EmbeddingRequest, EmbeddingResponse, Usage
from waypost.wire.openai.embeddings import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    vector_from_base64,
    vector_to_base64,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


# -- requests -------------------------------------------------------------------------------------


def test_a_string_input_is_one_text() -> None:
    req = decode_request({"model": "m", "input": "hello"})
    assert req.inputs == ["hello"]
    assert req.token_inputs is None


def test_a_list_of_strings_is_one_text_each() -> None:
    assert decode_request({"model": "m", "input": ["a", "b"]}).inputs == ["a", "b"]


def test_a_list_of_token_ids_is_one_tokenised_input() -> None:
    req = decode_request({"model": "m", "input": [1, 2, 3]})
    assert req.token_inputs == [[1, 2, 3]]
    assert req.inputs == []


def test_a_list_of_token_arrays_is_one_tokenised_input_each() -> None:
    assert decode_request({"model": "m", "input": [[1, 2], [3]]}).token_inputs == [[1, 2], [3]]


def test_without_encoding_format_floats_are_answered_as_the_api_does() -> None:
    assert decode_request({"model": "m", "input": "x"}).encoding_format == "float"


def test_base64_encoding_dimensions_and_user_are_read() -> None:
    req = decode_request(
        {"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 256, "user": "u1"}
    )
    assert (req.encoding_format, req.dimensions, req.user) == ("base64", 256, "u1")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["a", ""]}, "input[1]"),
        ({"model": "m", "input": ["a", 1]}, "input"),
        ({"model": "m", "input": [[1], []]}, "input[1]"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "x", "user": 5}, "user"),
    ],
)
def test_invalid_requests_name_the_offending_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        decode_request(body)
    assert err.value.param == param


def test_fields_not_modelled_are_noted_and_kept_in_the_clients_body() -> None:
    req = decode_request({"model": "m", "input": "x", "input_type": "query"})
    assert req.passthrough is not None
    assert req.passthrough.body == {"model": "m", "input": "x", "input_type": "query"}
    assert req.notes == ["fields kept only for OpenAI-compatible upstreams: input_type"]


def test_steering_fields_are_not_called_kept() -> None:
    req = decode_request({"model": "m", "input": "x", "input_type": "query", "api_key": "sk-x"})
    assert req.notes == ["fields kept only for OpenAI-compatible upstreams: input_type"]


def test_a_client_body_is_forwarded_with_only_the_model_replaced() -> None:
    req = decode_request({"model": "alias", "input": ["a"], "encoding_format": "base64", "input_type": "q"})
    assert encode_request(req, "text-embedding-3-small").body == {
        "model": "text-embedding-3-small",
        "input": ["a"],
        "encoding_format": "base64",
        "input_type": "q",
    }


def test_a_canonical_request_is_encoded_field_by_field() -> None:
    req = EmbeddingRequest(model="x", inputs=["a", "b"], dimensions=64, user="u")
    assert encode_request(req, "up").body == {
        "model": "up",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 64,
        "user": "u",
    }


# -- upstream responses ---------------------------------------------------------------------------


def test_float_vectors_and_usage_are_decoded() -> None:
    resp = decode_response(fixture("embeddings_float.json"))
    assert resp.vectors[0] == [0.0023064255, -0.009327292, 0.015797347, -0.0077780345]
    assert len(resp.vectors) == 2
    assert resp.usage == Usage(input_tokens=8)
    assert resp.model == "text-embedding-3-small"


def test_base64_vectors_are_decoded_as_little_endian_float32() -> None:
    resp = decode_response(fixture("embeddings_base64.json"))
    assert resp.vectors == [float32([0.0023064255, -0.009327292, 0.015797347, -0.0077780345])]


def test_vectors_come_back_in_input_order_whatever_the_upstream_order() -> None:
    body = fixture("embeddings_float.json")
    body["data"].reverse()
    resp = decode_response(body)
    assert resp.vectors[0][0] == 0.0023064255


@pytest.mark.parametrize(
    "data",
    [
        "not a list",
        [{"index": 0, "embedding": [0.1, "x"]}],
        [{"index": 0, "embedding": "***"}],
        [{"index": 0, "embedding": base64.b64encode(b"abc").decode()}],
        [{"index": 0, "embedding": [1e39]}],
        [{"index": 0, "embedding": {"values": [1]}}],
        [{"index": 0, "embedding": [0.1]}, {"index": 0, "embedding": [0.2]}],
        [{"index": 3, "embedding": [0.1]}],
    ],
    ids=["data", "number", "base64", "partial-float", "range", "shape", "repeated-index", "index-range"],
)
def test_unusable_upstream_bodies_are_upstream_errors(data: Any) -> None:
    with pytest.raises(UpstreamError):
        decode_response({"object": "list", "data": data, "usage": {"prompt_tokens": 1}})


def test_missing_usage_counts_zero_tokens() -> None:
    resp = decode_response({"data": [{"index": 0, "embedding": [0.5]}]})
    assert resp.usage.input_tokens == 0


# -- client responses -----------------------------------------------------------------------------


def test_base64_is_little_endian_float32() -> None:
    assert base64.b64decode(vector_to_base64([1.0, -2.5])) == struct.pack("<2f", 1.0, -2.5)


def test_base64_round_trips_float32_values_exactly() -> None:
    vector = float32([0.1, -0.2, 0.3])
    assert vector_from_base64(vector_to_base64(vector)) == vector


def test_response_carries_vectors_in_the_format_asked_and_validates_with_the_sdk() -> None:
    resp = EmbeddingResponse(model="up", vectors=[[0.5, -0.25]], usage=Usage(input_tokens=3))
    body = encode_response(resp, "alias", "float")
    parsed = CreateEmbeddingResponse.model_validate(body)
    assert parsed.data[0].embedding == [0.5, -0.25]
    assert parsed.model == "alias"
    assert (parsed.usage.prompt_tokens, parsed.usage.total_tokens) == (3, 3)


def test_base64_response_decodes_to_the_same_vectors() -> None:
    resp = EmbeddingResponse(model="up", vectors=[[0.5, -0.25], [1.0, 0.0]])
    body = encode_response(resp, "alias", "base64")
    assert [vector_from_base64(d["embedding"]) for d in body["data"]] == resp.vectors
    assert [d["index"] for d in body["data"]] == [0, 1]
