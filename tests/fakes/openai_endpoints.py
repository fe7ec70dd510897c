"""The fake OpenAI server's Embeddings and legacy Completions endpoints (``OpenAIUpstream`` routes them).

Embeddings are deterministic: each input's vector comes from the SHA-256 of the input, with values
that are multiples of 1/1024 so the float and base64 (little-endian float32) encodings carry exactly the
same numbers. A completion answers ``Reply.text`` or ``"echo: <prompt>"`` for each prompt.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.base import compact_json, estimate_tokens, new_id, split_text
from tests.fakes.openai_quirks import NO_USAGE

if TYPE_CHECKING:
    from tests.fakes.openai_upstream import OpenAIUpstream

DEFAULT_DIMENSIONS = 8


def fake_vector(item: str | list[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The vector the fake answers for one input (a text or a list of token ids)."""
    key = item.encode() if isinstance(item, str) else compact_json(item)
    raw = b"".join(hashlib.sha256(i.to_bytes(4, "big") + key).digest() for i in range(-(-dimensions // 32)))
    return [(b - 128) / 1024 for b in raw[:dimensions]]


def _bad(upstream: OpenAIUpstream, message: str, param: str | None = None) -> web.Response:
    return upstream._error(
        400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    )


def _embedding_inputs(value: Any) -> list[str | list[int]] | None:
    if isinstance(value, str):
        return [value] if value else None
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) and v for v in value):
        return list(value)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [list(value)]
    if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
        return list(value)
    return None


async def serve_embeddings(upstream: OpenAIUpstream, request: web.Request) -> web.StreamResponse:
    if (denied := upstream._auth_error(request)) is not None:
        return denied
    body = upstream.recorded(request).json
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _bad(upstream, "you must provide a model parameter")
    inputs = _embedding_inputs(body.get("input"))
    if inputs is None:
        return _bad(
            upstream,
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        )
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _bad(
            upstream,
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
        )
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dimensions, int) or dimensions < 1:
        return _bad(upstream, "Invalid value for 'dimensions': must be at least 1.", "dimensions")
    reply = upstream.take_reply()
    data = []
    for index, item in enumerate(inputs):
        vector = fake_vector(item, dimensions)
        embedding: Any = vector
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = reply.input_tokens
    if tokens is None:
        tokens = sum(len(i) if isinstance(i, list) else estimate_tokens(i) for i in inputs)
    answer = {
        "object": "list",
        "data": data,
        "model": reply.model or body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return await upstream.respond(
        request,
        reply,
        stream=False,
        body=lambda: answer,
        frames=list,
        error_frame=b"",
        headers={"x-request-id": new_id("req_"), "openai-processing-ms": "1"},
    )


def _prompts(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        return list(value)
    if all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
        return [" ".join(map(str, v)) for v in value]
    return None


async def serve_completions(upstream: OpenAIUpstream, request: web.Request) -> web.StreamResponse:
    if (denied := upstream._auth_error(request)) is not None:
        return denied
    body = upstream.recorded(request).json
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _bad(upstream, "you must provide a model parameter")
    prompts = _prompts(body.get("prompt"))
    if prompts is None:
        return _bad(upstream, "Missing required parameter: 'prompt'.", "prompt")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        return _bad(
            upstream,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    no_usage = NO_USAGE in upstream.quirks.get(body["model"], ())
    include_usage = include_usage and not no_usage
    reply = upstream.take_reply()
    texts = [reply.text if reply.text is not None else "echo: " + p for p in prompts]
    if body.get("echo") is True:
        texts = [p + t for p, t in zip(prompts, texts, strict=True)]
    finish = reply.finish_reason or "stop"
    prompt_tokens = reply.input_tokens if reply.input_tokens is not None else estimate_tokens(prompts)
    output_tokens = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(texts)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": prompt_tokens + output_tokens,
    }
    if reply.cache_read_tokens:  # OpenAI-compatible servers with a prefix cache (vLLM) report it
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cache_read_tokens}
    head = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": reply.model or body["model"],
    }

    def completion() -> dict[str, Any]:
        choices = [
            {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
            for i, text in enumerate(texts)
        ]
        return {**head, "choices": choices} if no_usage else {**head, "choices": choices, "usage": usage}

    def frames() -> list[bytes]:
        chunks: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            chunks += [
                {**head, "choices": [{"text": piece, "index": i, "logprobs": None, "finish_reason": None}]}
                for piece in split_text(text, reply.chunks)
            ]
            chunks.append(
                {**head, "choices": [{"text": "", "index": i, "logprobs": None, "finish_reason": finish}]}
            )
        if include_usage:
            chunks.append({**head, "choices": [], "usage": usage})
        return [b"data: " + compact_json(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]

    error = {
        "error": {"message": "The server had an error while processing your request.", "type": "server_error"}
    }
    return await upstream.respond(
        request,
        reply,
        stream=stream,
        body=completion,
        frames=frames,
        error_frame=b"data: " + compact_json(error) + b"\n\n",
        headers={"x-request-id": new_id("req_"), "openai-processing-ms": "1"},
    )
