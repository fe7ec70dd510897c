"""The Bedrock Converse wire format (``/model/{id}/converse`` and ``/converse-stream``).

Bedrock is only ever an upstream: clients speak OpenAI or Anthropic, so this format is
encoded for requests and decoded for answers. The work is split by responsibility:

* ``encode_request`` / ``count_tokens_body``  (converse_request)
* ``decode_response``  (converse_response)
* ``StreamDecoder``  (converse_stream, fed by ``eventstream.EventStreamDecoder``)
* ``error_for`` and the usage / stop-reason vocabulary  (mapping)
* embedding bodies for InvokeModel  (bedrock_embeddings)

Usage convention: Bedrock's ``inputTokens`` excludes cache reads and writes; the canonical
``Usage.input_tokens`` includes them.
"""

from __future__ import annotations

from urllib.parse import quote

from waypost.wire.bedrock.converse_request import count_tokens_body, encode_request
from waypost.wire.bedrock.converse_response import decode_response
from waypost.wire.bedrock.converse_stream import StreamDecoder
from waypost.wire.bedrock.mapping import error_for, error_message, model_family, usage_from_bedrock

FORMAT = "bedrock"


def model_path(model_id: str, operation: str) -> str:
    """``/model/{modelId}/{operation}`` with the id percent-encoded as the AWS SDKs do it: every
    character but ``A-Za-z0-9-._~`` (so ``:`` and the ``/`` of ARNs are encoded too)."""
    return f"/model/{quote(model_id, safe='-._~')}/{operation}"


__all__ = [
    "FORMAT",
    "StreamDecoder",
    "count_tokens_body",
    "decode_response",
    "encode_request",
    "error_for",
    "error_message",
    "model_family",
    "model_path",
    "usage_from_bedrock",
]
