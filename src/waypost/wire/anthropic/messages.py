"""The Anthropic Messages wire format (``POST /v1/messages``), both directions.

The translation is split by responsibility; this module is the one to import:

* ``decode_request`` / ``encode_request``  (request_decode / request_encode)
* ``decode_response`` / ``encode_response`` / ``encode_error``  (response)
* ``StreamDecoder`` / ``StreamEncoder``  (stream)

Usage convention: Anthropic's ``input_tokens`` excludes cache reads and writes, the canonical
``Usage.input_tokens`` includes them; the conversion happens here in both directions.
"""

from __future__ import annotations

from waypost.wire.anthropic.mapping import error_from_body, usage_to_anthropic
from waypost.wire.anthropic.request_decode import decode_request
from waypost.wire.anthropic.request_encode import encode_request
from waypost.wire.anthropic.response import decode_response, encode_error, encode_response
from waypost.wire.anthropic.stream import StreamDecoder, StreamEncoder
from waypost.wire.conventions import EFFORT_BUDGETS

FORMAT = "anthropic"

__all__ = [
    "EFFORT_BUDGETS",
    "FORMAT",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_request",
    "encode_response",
    "error_from_body",
    "usage_to_anthropic",
]
