"""Ollama ``/api/chat`` answers and ``/api/embed`` bodies -> canonical objects.

Upstream bodies are untrusted: missing or oddly typed fields degrade to defaults, never crash.
A non-streamed answer is the stream's final line whole, so it is read by the stream decoder
and folded: one code path, one behaviour for both.
"""

from __future__ import annotations

from typing import Any

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.events import fold
from waypost.core.types import ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from waypost.wire.encoded import Encoded
from waypost.wire.ollama.mapping import count, error_text
from waypost.wire.ollama.stream import StreamDecoder


def decode_response(obj: Any, response_id: str) -> ChatResponse:
    """A non-streamed ``/api/chat`` answer; ``response_id`` is a fresh id from the caller."""
    if not isinstance(obj, dict):
        raise UpstreamError("ollama upstream returned a body that is not a JSON object", provider="ollama")
    if obj.get("error") is not None:
        raise UpstreamError(f"ollama upstream error: {error_text(obj['error'])}", provider="ollama")
    # A whole answer is complete even when a server leaves out its "done".
    return fold(StreamDecoder(response_id).feed(obj if obj.get("done") is True else {**obj, "done": True}))


# -- embeddings ----------------------------------------------------------------------------------


def encode_embed_request(req: EmbeddingRequest, model: str) -> Encoded:
    """A body for ``POST /api/embed``, and what of ``req`` it could not carry."""
    if req.token_inputs is not None:
        raise BadRequest("Ollama embeddings take text input, not token arrays.", param="input")
    body: dict[str, Any] = {"model": model, "input": list(req.inputs)}
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    dropped = []
    if req.input_type is not None:
        dropped.append("input_type dropped: Ollama embeddings take no retrieval hint")
    if req.user is not None:
        dropped.append("user dropped: Ollama has no end-user field")
    return Encoded(body, tuple(dropped))


def decode_embed_response(obj: Any, model: str, expected: int) -> EmbeddingResponse:
    """An ``/api/embed`` answer with ``expected`` vectors, validated (the caller trusts it)."""
    if not isinstance(obj, dict):
        raise UpstreamError(
            "ollama upstream returned an embedding body that is not an object", provider="ollama"
        )
    if obj.get("error") is not None:
        raise UpstreamError(f"ollama upstream error: {error_text(obj['error'])}", provider="ollama")
    raw = obj.get("embeddings")
    if not isinstance(raw, list) or len(raw) != expected:
        raise UpstreamError(
            f"ollama upstream returned {len(raw) if isinstance(raw, list) else 'no'} embeddings "
            f"for {expected} inputs",
            provider="ollama",
        )
    vectors: list[list[float]] = []
    for vector in raw:
        if not isinstance(vector, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector
        ):
            raise UpstreamError(
                "ollama upstream returned an embedding that is not a list of numbers", provider="ollama"
            )
        vectors.append([float(x) for x in vector])
    name = obj.get("model")
    return EmbeddingResponse(
        model=name if isinstance(name, str) and name else model,
        vectors=vectors,
        usage=Usage(input_tokens=count(obj, "prompt_eval_count")),
    )
