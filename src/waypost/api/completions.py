"""``POST /v1/completions``, OpenAI's legacy text completions, as one more client format of the
chat data plane (``chat.chat_endpoint`` serves it, streaming and not).

An OpenAI-compatible deployment gets the body as it came, at its own ``/completions``, and the
answer is relayed as it came; any other provider answers a chat request made of the prompt (see
``wire/openai_completions``).
"""

from __future__ import annotations

import time

from waypost.api.formats import ClientFormat, chat_request
from waypost.wire.openai import chat as openai_chat
from waypost.wire.openai import completions as openai_completions

COMPLETIONS = ClientFormat(
    name=openai_completions.FORMAT,
    decode_request=openai_completions.decode_request,
    encode_response=lambda resp, ctx: openai_completions.encode_response(resp, chat_request(ctx).model),
    encode_error=openai_completions.encode_error,
    # The wire modules have no clock; chunks translated from upstreams without one get ours.
    stream_encoder=lambda ctx: openai_completions.StreamEncoder(
        chat_request(ctx).model, include_usage=chat_request(ctx).include_usage, created=int(time.time())
    ),
    usage_object=openai_chat.usage_to_openai,
)
