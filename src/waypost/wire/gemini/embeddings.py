"""Canonical ``EmbeddingRequest`` <-> Gemini ``batchEmbedContents``.

One ``requests[]`` entry per input: ``{model: "models/{m}", content: {parts: [{text}]}, taskType?,
outputDimensionality?}``; the answer is ``embeddings[].values`` in input order. The retrieval hint
``input_type`` becomes ``taskType`` (``query`` -> ``RETRIEVAL_QUERY``, ``document`` ->
``RETRIEVAL_DOCUMENT``; Gemini's own task type names pass as they are).
"""

from __future__ import annotations

from typing import Any

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.types import EmbeddingRequest, EmbeddingResponse, Usage
from waypost.wire.encoded import Encoded
from waypost.wire.gemini.mapping import PROVIDER

TASK_TYPES = {
    "query": "RETRIEVAL_QUERY",
    "search_query": "RETRIEVAL_QUERY",
    "document": "RETRIEVAL_DOCUMENT",
    "search_document": "RETRIEVAL_DOCUMENT",
}
GEMINI_TASK_TYPES = frozenset(
    {
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)


def task_type(input_type: str | None) -> str | None:
    if not input_type:
        return None
    mapped = TASK_TYPES.get(input_type.lower())
    if mapped is not None:
        return mapped
    return input_type.upper() if input_type.upper() in GEMINI_TASK_TYPES else None


def encode_embed_request(req: EmbeddingRequest, model: str) -> Encoded:
    """The body for ``models/{model}:batchEmbedContents``, and what of ``req`` it could not carry."""
    if req.token_inputs is not None:
        raise BadRequest(
            "Gemini embedding models take text only; token arrays cannot be embedded.", param="input"
        )
    if not req.inputs:
        raise BadRequest("'input' must contain at least one text.", param="input")
    dropped: list[str] = []
    task = task_type(req.input_type)
    if req.input_type and task is None:
        dropped.append(f"input_type {req.input_type!r} dropped (no Gemini task type)")
    if req.user:
        dropped.append("user dropped (no Gemini equivalent)")
    requests: list[dict[str, Any]] = []
    for text in req.inputs:
        entry: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if task is not None:
            entry["taskType"] = task
        if req.dimensions is not None:
            entry["outputDimensionality"] = req.dimensions
        requests.append(entry)
    return Encoded({"requests": requests}, tuple(dropped))


def decode_embed_response(body: Any, model: str, count: int) -> EmbeddingResponse:
    """``{"embeddings": [{"values": [...]}, ...]}`` -> vectors, checked against the input count."""
    embeddings = body.get("embeddings") if isinstance(body, dict) else None
    if not isinstance(embeddings, list) or len(embeddings) != count:
        raise UpstreamError(
            f"{PROVIDER} upstream returned {len(embeddings) if isinstance(embeddings, list) else 'no'} "
            f"embeddings for {count} inputs",
            provider=PROVIDER,
        )
    vectors: list[list[float]] = []
    for item in embeddings:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise UpstreamError(
                f"{PROVIDER} upstream returned an embedding without values", provider=PROVIDER
            )
        vectors.append([float(v) for v in values])
    usage = Usage()
    meta = body.get("usageMetadata")
    if isinstance(meta, dict):
        tokens = meta.get("promptTokenCount")
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
            usage.input_tokens = tokens
    return EmbeddingResponse(model=model, vectors=vectors, usage=usage)
