"""The OpenAI Embeddings wire format (``POST /v1/embeddings``), both directions.

``encoding_format: "base64"`` is a base64 string of the vector as little-endian float32 values;
the ``openai`` Python SDK asks for it whenever its caller names no format, and decodes it
itself. Vectors are canonical float lists in between: an upstream may answer either encoding,
and the client gets the one it asked for.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from array import array
from typing import Any, Literal

from waypost.core.errors import BadRequest, UpstreamError
from waypost.core.passthrough import Passthrough
from waypost.core.types import EmbeddingRequest, EmbeddingResponse, Usage
from waypost.wire.encoded import Encoded, passthrough_body
from waypost.wire.openai.chat import encode_error
from waypost.wire.steering import is_steering_key

FORMAT = "openai"
FLOAT32_MAX = 3.4028234663852886e38
_MODELLED_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
# The body fields that carry each canonical field: what the fast path re-encodes for a stage's
# edit (``core.passthrough``).
PASSTHROUGH_FIELDS: dict[str, tuple[str, ...]] = {
    "inputs": ("input",),
    "token_inputs": ("input",),
    "dimensions": ("dimensions",),
    "encoding_format": ("encoding_format",),
    "user": ("user",),
}

__all__ = [
    "FORMAT",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_request",
    "encode_response",
    "vector_from_base64",
    "vector_to_base64",
]


def vector_to_base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def vector_from_base64(text: str) -> list[float]:
    """Raises ``ValueError`` when ``text`` is not base64 of whole float32 values."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("not valid base64") from exc
    if len(raw) % 4:
        raise ValueError("not a whole number of float32 values")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# -- client requests ------------------------------------------------------------------------------


def _bad(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_input(value: Any) -> tuple[list[str], list[list[int]] | None]:
    """(texts, token arrays): exactly one of them is non-empty."""
    if isinstance(value, str):
        if not value:
            raise _bad("'input' cannot be an empty string.", "input")
        return [value], None
    if not isinstance(value, list) or not value:
        raise _bad(
            "'input' must be a non-empty string, array of strings, array of integers or array of "
            "integer arrays.",
            "input",
        )
    if all(isinstance(v, str) for v in value):
        for i, text in enumerate(value):
            if not text:
                raise _bad(f"'input[{i}]' cannot be an empty string.", f"input[{i}]")
        return list(value), None
    if all(_is_int(v) for v in value):
        return [], [list(value)]
    if all(isinstance(v, list) for v in value):
        for i, tokens in enumerate(value):
            if not tokens or not all(_is_int(t) for t in tokens):
                raise _bad(f"'input[{i}]' must be a non-empty array of integers.", f"input[{i}]")
        return [], [list(v) for v in value]
    raise _bad(
        "'input' must be a string, an array of strings, an array of integers or an array of integer "
        "arrays, not a mixture.",
        "input",
    )


def decode_request(body: Any) -> EmbeddingRequest:
    """A client's embeddings body -> ``EmbeddingRequest`` (``passthrough`` keeps the body)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("'model' must be a non-empty string.", "model")
    if "input" not in body:
        raise _bad("Missing required parameter: 'input'.", "input")
    texts, tokens = _decode_input(body["input"])
    fmt = body.get("encoding_format")
    if fmt is None:
        fmt = "float"  # the API's own default; the SDK names base64 explicitly
    if fmt not in ("float", "base64"):
        raise _bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    encoding: Literal["float", "base64"] = "base64" if fmt == "base64" else "float"
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        raise _bad("'dimensions' must be an integer >= 1.", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string.", "user")
    req = EmbeddingRequest(
        model=model,
        inputs=texts,
        token_inputs=tokens,
        dimensions=dimensions,
        encoding_format=encoding,
        user=user,
        source_format=FORMAT,
        passthrough=Passthrough(body),
    )
    # Steering fields never reach an upstream (pipeline.bounds drops or refuses them).
    others = sorted(k for k in body if k not in _MODELLED_FIELDS and not is_steering_key(k))
    if others:
        req.notes.append("fields kept only for OpenAI-compatible upstreams: " + ", ".join(others))
    return req


# -- upstream requests and responses -------------------------------------------------------------


def encode_request(req: EmbeddingRequest, model: str) -> Encoded:
    """The body for an OpenAI-compatible ``/embeddings`` upstream. A body that came from an
    OpenAI client is forwarded with only the model and a stage's edits changed. Every field of
    the canonical request has a place in this format: nothing is dropped."""
    passthrough = req.passthrough
    if req.source_format == FORMAT and passthrough is not None:
        body = passthrough_body(passthrough, PASSTHROUGH_FIELDS, lambda: _build(req, model))
        body["model"] = model
        return Encoded(body)
    return Encoded(_build(req, model))


def _build(req: EmbeddingRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    if req.token_inputs is not None:
        body["input"] = req.token_inputs
    else:
        body["input"] = req.inputs
    body["encoding_format"] = req.encoding_format
    if req.dimensions is not None:
        body["dimensions"] = req.dimensions
    if req.user is not None:
        body["user"] = req.user
    return body


def _upstream_error(detail: str) -> UpstreamError:
    return UpstreamError(f"openai upstream returned an unusable embeddings body: {detail}", provider="openai")


def _vector(value: Any, index: int) -> list[float]:
    if isinstance(value, str):
        try:
            return vector_from_base64(value)
        except ValueError as exc:
            raise _upstream_error(f"data[{index}].embedding is {exc}") from None
    if not isinstance(value, list):
        raise _upstream_error(f"data[{index}].embedding is neither a list nor base64")
    try:
        numbers = array("d", value)  # one C-speed pass rejects anything that is not a number
    except TypeError:
        raise _upstream_error(f"data[{index}].embedding holds a value that is not a number") from None
    return numbers.tolist()


def decode_response(body: Any) -> EmbeddingResponse:
    """An upstream ``list`` of embeddings -> vectors in input order, validated."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise _upstream_error("no 'data' list")
    items = body["data"]
    ordered: list[list[float] | None] = [None] * len(items)
    for pos, item in enumerate(items):
        if not isinstance(item, dict):
            raise _upstream_error(f"data[{pos}] is not an object")
        index = item.get("index", pos)
        if not _is_int(index) or not 0 <= index < len(items) or ordered[index] is not None:
            raise _upstream_error(f"data[{pos}].index is missing, out of range or repeated")
        ordered[index] = _vector(item.get("embedding"), pos)
    vectors = [v for v in ordered if v is not None]
    for i, vector in enumerate(vectors):
        # The sum is inf or nan when any value is; the float32 range check needs no nan then.
        if vector and not (math.isfinite(sum(vector)) and max(map(abs, vector)) <= FLOAT32_MAX):
            raise _upstream_error(f"data[{i}].embedding holds a value that is not a finite float32")
    usage = body.get("usage")
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    tokens = prompt if isinstance(prompt, int) and not isinstance(prompt, bool) and prompt >= 0 else 0
    model = body.get("model")
    return EmbeddingResponse(
        model=model if isinstance(model, str) else "",
        vectors=vectors,
        usage=Usage(input_tokens=tokens),
    )


# -- client responses ----------------------------------------------------------------------------


def encode_response(
    resp: EmbeddingResponse, model: str, encoding_format: Literal["float", "base64"]
) -> dict[str, Any]:
    """The ``list`` body an OpenAI client reads, vectors in the format it asked for."""
    encode = vector_to_base64 if encoding_format == "base64" else None
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
        for i, v in enumerate(resp.vectors)
    ]
    tokens = resp.usage.input_tokens
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
