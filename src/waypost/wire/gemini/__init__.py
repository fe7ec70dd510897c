"""The Gemini API wire format (``generateContent``, ``streamGenerateContent``, ``countTokens``,
``batchEmbedContents``), from the gateway's side: requests out, responses and streams in.

The translation is split by responsibility; this module is the one to import:

* ``encode_request`` / ``encode_count_tokens``  (request)
* ``decode_response`` / ``decode_token_count``  (response)
* ``StreamDecoder``  (stream)
* ``encode_embed_request`` / ``decode_embed_response``  (embeddings)
* ``error_from_response``, the thought-signature convention  (mapping)

No client speaks Gemini to the gateway, so there is no decoder of Gemini requests and no
same-format fast path.
"""

from __future__ import annotations

from waypost.wire.gemini.embeddings import decode_embed_response, encode_embed_request
from waypost.wire.gemini.mapping import (
    SKIP_SIGNATURE,
    error_from_response,
    unwrap_signature,
    usage_from_gemini,
    wrap_signature,
)
from waypost.wire.gemini.request import encode_count_tokens, encode_request, model_path
from waypost.wire.gemini.response import decode_response, decode_token_count
from waypost.wire.gemini.stream import StreamDecoder

FORMAT = "gemini"

__all__ = [
    "FORMAT",
    "SKIP_SIGNATURE",
    "StreamDecoder",
    "decode_embed_response",
    "decode_response",
    "decode_token_count",
    "encode_count_tokens",
    "encode_embed_request",
    "encode_request",
    "error_from_response",
    "model_path",
    "unwrap_signature",
    "usage_from_gemini",
    "wrap_signature",
]
