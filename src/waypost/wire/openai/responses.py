"""The OpenAI Responses API wire format (``POST /v1/responses``), both directions.

One import point for the format; the work is split by responsibility:

* requests: ``responses_request`` (client bodies), ``responses_encode`` (upstream bodies),
  ``responses_input`` (input items <-> messages);
* answers: ``responses_output`` (output items <-> parts, the reasoning-signature convention),
  ``responses_body`` (the ``response`` object), ``responses_mapping`` (usage, status, errors),
  ``responses_stream`` (canonical events -> the typed event stream) and ``responses_decode``
  (an upstream's answers, streamed or not -> canonical events).
"""

from __future__ import annotations

from waypost.wire.openai.responses_body import encode_response, response_params
from waypost.wire.openai.responses_decode import StreamDecoder, decode_response
from waypost.wire.openai.responses_encode import encode_request
from waypost.wire.openai.responses_input import items_to_messages, messages_to_items
from waypost.wire.openai.responses_mapping import (
    FORMAT,
    encode_error,
    usage_from_responses,
    usage_to_responses,
)
from waypost.wire.openai.responses_output import encrypted_content, thinking_part
from waypost.wire.openai.responses_request import decode_request
from waypost.wire.openai.responses_stream import StreamEncoder

__all__ = [
    "FORMAT",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_request",
    "encode_response",
    "encrypted_content",
    "items_to_messages",
    "messages_to_items",
    "response_params",
    "thinking_part",
    "usage_from_responses",
    "usage_to_responses",
]
