"""Embedding bodies for Bedrock's InvokeModel: Titan (one text per call) and Cohere (batches of
96), and the validation of what comes back."""

from __future__ import annotations

from typing import Any

import pytest

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import EmbeddingRequest
from waypost.wire.bedrock.embeddings import (
    check_inputs,
    cohere_bodies,
    cohere_vectors,
    embedding_family,
    titan_body,
    titan_vector,
)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("amazon.titan-embed-text-v2:0", "titan"),
        ("amazon.titan-embed-text-v1", "titan-v1"),
        ("cohere.embed-english-v3", "cohere"),
        ("cohere.embed-multilingual-v3", "cohere"),
        ("cohere.embed-v4:0", "cohere-v4"),
    ],
)
def test_embedding_models_are_recognised_by_family(model: str, family: str) -> None:
    assert embedding_family(model) == family


def test_a_chat_model_is_not_an_embedding_model() -> None:
    with pytest.raises(BadRequest, match="not a supported embedding model"):
        embedding_family("anthropic.claude-3-haiku-20240307-v1:0")


def test_titan_v2_takes_dimensions_and_normalises() -> None:
    req = EmbeddingRequest(model="m", inputs=["a"], dimensions=512)
    assert titan_body("a", req, "titan") == ({"inputText": "a", "dimensions": 512, "normalize": True}, ())


def test_titan_v1_takes_only_the_text_and_dimensions_are_noted_as_dropped() -> None:
    req = EmbeddingRequest(model="m", inputs=["a"], dimensions=512)
    body, dropped = titan_body("a", req, "titan-v1")
    assert body == {"inputText": "a"}
    assert dropped == ("dimensions dropped (this Titan embedding model has a fixed size)",)


def test_a_titan_answer_gives_its_vector_and_token_count() -> None:
    assert titan_vector({"embedding": [0.5, -1, 2], "inputTextTokenCount": 3}) == ([0.5, -1.0, 2.0], 3)


@pytest.mark.parametrize("body", [{}, {"embedding": []}, {"embedding": ["x"]}, {"embedding": [True]}, [1.0]])
def test_a_titan_answer_without_a_numeric_vector_is_an_upstream_error(body: Any) -> None:
    with pytest.raises(UpstreamError):
        titan_vector(body)


@pytest.mark.parametrize(
    ("input_type", "sent"),
    [
        (None, "search_document"),
        ("query", "search_query"),
        ("document", "search_document"),
        ("clustering", "clustering"),
    ],
)
def test_cohere_input_types_map_to_cohere_vocabulary(input_type: str | None, sent: str) -> None:
    req = EmbeddingRequest(model="m", inputs=["a"], input_type=input_type)
    assert cohere_bodies(req, "cohere") == ([{"texts": ["a"], "input_type": sent}], ())


def test_cohere_inputs_are_split_in_batches_of_96_in_order() -> None:
    req = EmbeddingRequest(model="m", inputs=[str(i) for i in range(200)])
    bodies, _ = cohere_bodies(req, "cohere")
    assert [len(b["texts"]) for b in bodies] == [96, 96, 8]
    assert [t for b in bodies for t in b["texts"]] == req.inputs


def test_cohere_v3_has_a_fixed_size_and_v4_takes_output_dimension() -> None:
    req = EmbeddingRequest(model="m", inputs=["a"], dimensions=256)
    bodies, dropped = cohere_bodies(req, "cohere")
    assert "output_dimension" not in bodies[0]
    assert dropped == ("dimensions dropped (Cohere Embed v3 has a fixed size)",)
    assert cohere_bodies(req, "cohere-v4")[0][0]["output_dimension"] == 256


def test_cohere_answers_are_read_as_a_list_or_by_type() -> None:
    assert cohere_vectors({"embeddings": [[1, 2]]}, 1) == [[1.0, 2.0]]
    assert cohere_vectors({"embeddings": {"float": [[3, 4]]}}, 1) == [[3.0, 4.0]]


def test_a_cohere_answer_with_the_wrong_number_of_vectors_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="1 embeddings for 2 texts"):
        cohere_vectors({"embeddings": [[1.0]]}, 2)


def test_token_inputs_and_empty_inputs_are_bad_requests() -> None:
    with pytest.raises(BadRequest):
        check_inputs(EmbeddingRequest(model="m", token_inputs=[[1]]))
    with pytest.raises(BadRequest):
        check_inputs(EmbeddingRequest(model="m", inputs=[]))
