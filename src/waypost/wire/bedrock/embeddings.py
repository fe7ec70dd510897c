"""Embedding request and response bodies for Bedrock's InvokeModel (``POST /model/{id}/invoke``).

Two families are served:

* Amazon Titan Text Embeddings (``amazon.titan-embed-text-v2:0``): one text per call,
  ``{"inputText", "dimensions", "normalize"}`` -> ``{"embedding", "inputTextTokenCount"}``.
  The G1 model (``...-v1``) takes ``inputText`` only.
* Cohere Embed (``cohere.embed-*``): up to 96 texts per call, ``{"texts", "input_type"}`` ->
  ``{"embeddings": [[...]]}`` (v3) or ``{"embeddings": {"float": [[...]]}}`` (v4, which also takes
  ``output_dimension``). Cohere bodies carry no token count; Bedrock sends it in a header.
"""

from __future__ import annotations

from typing import Any, Literal

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import EmbeddingRequest
from waypost.wire.bedrock.mapping import PROVIDER
from waypost.wire.encoded import Encoded

EmbeddingFamily = Literal["titan", "titan-v1", "cohere", "cohere-v4"]

COHERE_BATCH = 96
_COHERE_INPUT_TYPES = {
    "query": "search_query",
    "document": "search_document",
    "search_query": "search_query",
    "search_document": "search_document",
    "classification": "classification",
    "clustering": "clustering",
}


def embedding_family(model_id: str) -> EmbeddingFamily:
    """Which body shape a model takes; a model that is neither is the caller's mistake."""
    lowered = model_id.lower()
    if "titan-embed" in lowered:
        return "titan" if "text-v2" in lowered else "titan-v1"
    if "cohere.embed" in lowered:
        return "cohere-v4" if "embed-v4" in lowered else "cohere"
    raise BadRequest(
        f"Bedrock model {model_id!r} is not a supported embedding model "
        "(Amazon Titan Text Embeddings or Cohere Embed).",
        param="model",
    )


def check_inputs(req: EmbeddingRequest) -> None:
    if req.token_inputs is not None:
        raise BadRequest("Bedrock embedding models take text, not token ids.", param="input")
    if not req.inputs:
        raise BadRequest("'input' must not be empty.", param="input")


def titan_body(text: str, req: EmbeddingRequest, family: EmbeddingFamily) -> Encoded:
    """The body that embeds ``text``, and what of ``req`` it could not carry."""
    body: dict[str, Any] = {"inputText": text}
    if family == "titan":
        if req.dimensions is not None:
            body["dimensions"] = req.dimensions
        body["normalize"] = True
    elif req.dimensions is not None:
        return Encoded(body, ("dimensions dropped (this Titan embedding model has a fixed size)",))
    return Encoded(body)


def titan_vector(body: Any) -> tuple[list[float], int]:
    """The vector and the input token count of one Titan response."""
    if not isinstance(body, dict):
        raise UpstreamError("bedrock upstream embedding response is not a JSON object", provider=PROVIDER)
    vector = _floats(body.get("embedding"))
    count = body.get("inputTextTokenCount")
    tokens = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 0
    return vector, tokens


def cohere_bodies(
    req: EmbeddingRequest, family: EmbeddingFamily
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """One body per batch of at most 96 texts, in order; and what of ``req`` they could not carry."""
    dropped: list[str] = []
    input_type = _COHERE_INPUT_TYPES.get(req.input_type or "document")
    if input_type is None:
        dropped.append(f"input_type {req.input_type!r} sent as search_document (not a Cohere input type)")
        input_type = "search_document"
    extra: dict[str, Any] = {}
    if family == "cohere-v4":
        extra["embedding_types"] = ["float"]
        if req.dimensions is not None:
            extra["output_dimension"] = req.dimensions
    elif req.dimensions is not None:
        dropped.append("dimensions dropped (Cohere Embed v3 has a fixed size)")
    bodies = [
        {"texts": req.inputs[i : i + COHERE_BATCH], "input_type": input_type, **extra}
        for i in range(0, len(req.inputs), COHERE_BATCH)
    ]
    return bodies, tuple(dropped)


def cohere_vectors(body: Any, expected: int) -> list[list[float]]:
    """The float vectors of one Cohere response, which must hold one per text sent."""
    if not isinstance(body, dict):
        raise UpstreamError("bedrock upstream embedding response is not a JSON object", provider=PROVIDER)
    embeddings = body.get("embeddings")
    if isinstance(embeddings, dict):
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list) or len(embeddings) != expected:
        raise UpstreamError(
            f"bedrock upstream returned {len(embeddings) if isinstance(embeddings, list) else 'no'} "
            f"embeddings for {expected} texts",
            provider=PROVIDER,
        )
    return [_floats(vector) for vector in embeddings]


def _floats(value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise UpstreamError(
            "bedrock upstream returned an embedding that is not a list of numbers", provider=PROVIDER
        )
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise UpstreamError(
                "bedrock upstream returned an embedding that is not a list of numbers", provider=PROVIDER
            )
        out.append(float(item))
    return out
