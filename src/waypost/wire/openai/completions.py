"""The OpenAI legacy Completions wire format (``POST /v1/completions``), both directions.

An OpenAI-compatible upstream gets the client's body forwarded to its own ``/completions``
(``encode_request``'s fast path), so every field survives and its answer is relayed as it came.
Any other provider gets a chat request: the prompt becomes one user message, and the answer's
text comes back as a ``text_completion``. That translation carries ``max_tokens``,
``temperature``, ``top_p``, ``stop``, ``seed``, the penalties, ``user``, ``stream`` and
``stream_options.include_usage``; it cannot carry ``suffix``, ``echo``, ``logprobs``,
``logit_bias``, ``n``/``best_of`` above 1, more than one prompt, or prompts given as token ids,
and says so in the request's notes.
"""

from __future__ import annotations

from typing import Any

import orjson

from waypost.core.errors import BadRequest, GatewayError, StreamInterrupted, UpstreamError
from waypost.core.events import (
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    StreamEvent,
    TextDelta,
    UsageUpdate,
    fold,
)
from waypost.core.passthrough import Passthrough
from waypost.core.types import ChatRequest, ChatResponse, FinishReason, Message, TextPart, Usage
from waypost.wire.encoded import Encoded, passthrough_body
from waypost.wire.openai.chat import encode_error
from waypost.wire.openai.chat_response import (
    error_message,
    error_object,
    finish_from_openai,
    usage_from_openai,
    usage_to_openai,
)
from waypost.wire.openai.fields import bool_field, dict_field, float_field, int_field, stop_field, str_field
from waypost.wire.sse import encode_sse

FORMAT = "openai_completions"
DONE = b"data: [DONE]\n\n"
# The API's own bounds; the bound on the completions generated (n x best_of x prompts) is a setting.
MAX_BEST_OF = 20
MAX_LOGPROBS = 5
# The completions body fields that carry each canonical field: what the fast path re-encodes
# for a stage's edit (``core.passthrough``).
PASSTHROUGH_FIELDS: dict[str, tuple[str, ...]] = {
    "messages": ("prompt",),
    "max_tokens": ("max_tokens",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "stop": ("stop",),
    "seed": ("seed",),
    "presence_penalty": ("presence_penalty",),
    "frequency_penalty": ("frequency_penalty",),
    "user": ("user",),
}

__all__ = [
    "DONE",
    "FORMAT",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "encode_error",
    "encode_request",
    "encode_response",
]

# Every finish reason as one of the three values a text_completion choice may carry.
_FINISH_TO_TEXT = {
    FinishReason.LENGTH: "length",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.REFUSAL: "content_filter",
}


def finish_to_text(reason: FinishReason | None) -> str:
    return _FINISH_TO_TEXT.get(reason, "stop") if reason is not None else "stop"


def completion_id(raw_id: str) -> str:
    if raw_id.startswith("cmpl-"):
        return raw_id
    return f"cmpl-{raw_id}" if raw_id else "cmpl-waypost"


# -- client requests ------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompt_text(prompt: Any, notes: list[str]) -> tuple[str, int]:
    """The one text a chat translation can carry, and how many prompts there are (each gets its
    own completions from an OpenAI-compatible upstream); notes what it cannot carry."""
    if isinstance(prompt, str):
        return prompt, 1
    if not isinstance(prompt, list) or not prompt:
        raise BadRequest(
            "'prompt' must be a string, an array of strings, an array of integers or an array of "
            "integer arrays.",
            param="prompt",
        )
    if all(isinstance(p, str) for p in prompt):
        if len(prompt) > 1:
            notes.append("prompt: only the first of several prompts is answered by non-OpenAI providers")
        return str(prompt[0]), len(prompt)
    tokens = all(_is_int(t) for t in prompt) or all(
        isinstance(p, list) and p and all(_is_int(t) for t in p) for p in prompt
    )
    if not tokens:
        raise BadRequest(
            "'prompt' must be a string, an array of strings, an array of integers or an array of "
            "integer arrays, not a mixture.",
            param="prompt",
        )
    notes.append("prompt: token-id prompts can only be answered by OpenAI-compatible upstreams")
    return "", len(prompt) if isinstance(prompt[0], list) else 1


def decode_request(body: Any) -> ChatRequest:
    """A legacy completions body -> ``ChatRequest`` (one user message; ``passthrough`` keeps the body)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' must be a non-empty string.", param="model")
    if body.get("prompt") is None:
        raise BadRequest("Missing required parameter: 'prompt'.", param="prompt")
    notes: list[str] = []
    text, prompts = _prompt_text(body["prompt"], notes)
    for name in ("suffix", "logit_bias"):
        if body.get(name) is not None:
            notes.append(f"{name} dropped (chat models have no equivalent)")
    if bool_field(body, "echo", "echo"):
        notes.append("echo dropped: the answer does not repeat the prompt")
    if int_field(body, "logprobs", "logprobs", minimum=0, maximum=MAX_LOGPROBS) is not None:
        notes.append("logprobs dropped")
    n = int_field(body, "n", "n", minimum=1) or 1
    best_of = int_field(body, "best_of", "best_of", minimum=1, maximum=MAX_BEST_OF) or 1
    for name, count in (("n", n), ("best_of", best_of)):
        if count > 1:
            notes.append(f"{name} > 1: only one completion is returned")
    stream_options = dict_field(body, "stream_options", "stream_options") or {}
    return ChatRequest(
        model=model,
        messages=[Message(role="user", content=[TextPart(text=text)])],
        max_tokens=int_field(body, "max_tokens", "max_tokens", minimum=0),
        choices=max(n, best_of) * prompts,  # best_of are generated, n of them returned
        temperature=float_field(body, "temperature", "temperature"),
        top_p=float_field(body, "top_p", "top_p"),
        stop=stop_field(body),
        stream=bool(bool_field(body, "stream", "stream")),
        include_usage=bool(bool_field(stream_options, "include_usage", "stream_options.include_usage")),
        seed=int_field(body, "seed", "seed"),
        presence_penalty=float_field(body, "presence_penalty", "presence_penalty"),
        frequency_penalty=float_field(body, "frequency_penalty", "frequency_penalty"),
        user=str_field(body, "user", "user"),
        source_format=FORMAT,
        passthrough=Passthrough(body),
        notes=notes,
    )


# -- upstream requests and responses -------------------------------------------------------------


def _stream_fields(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    if stream:
        body["stream"] = True
        options = body.get("stream_options")
        # Always asked for so streamed spend is metered; the client's own wish decides whether
        # the usage chunk is relayed.
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)  # OpenAI rejects stream_options without stream
    return body


def encode_request(req: ChatRequest, model: str, *, stream: bool) -> Encoded:
    """The body for an OpenAI-compatible ``/completions`` upstream. A client's own completions
    body is forwarded with only the model, the stream fields and a stage's edits changed."""
    passthrough = req.passthrough
    if req.source_format == FORMAT and passthrough is not None:
        body = passthrough_body(passthrough, PASSTHROUGH_FIELDS, lambda: _build(req, model))
        body["model"] = model
        return Encoded(_stream_fields(body, stream))
    return Encoded(_stream_fields(_build(req, model), stream))


def _build(req: ChatRequest, model: str) -> dict[str, Any]:
    """The body built from the canonical request: every field it has is carried."""
    body: dict[str, Any] = {"model": model, "prompt": "\n\n".join(m.text() for m in req.messages)}
    for name in (
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "user",
    ):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.stop:
        body["stop"] = list(req.stop)
    return body


def _first_choice(choices: Any) -> dict[str, Any] | None:
    for choice in choices if isinstance(choices, list) else []:
        if isinstance(choice, dict) and choice.get("index", 0) in (0, None):
            return choice
    return None


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _created(obj: dict[str, Any]) -> int:
    value = obj.get("created")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def decode_response(body: Any) -> ChatResponse:
    """An upstream ``text_completion`` -> ``ChatResponse`` (the first choice; usage for all).

    A body has the shape of a stream chunk that says everything: it is decoded as one and the
    events folded, so a body and a stream of the same answer cannot decode differently."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise UpstreamError("openai upstream returned a completion without 'choices'", provider="openai")
    decoder = StreamDecoder()
    try:
        return fold([*decoder.feed(body), *decoder.finish()])
    except StreamInterrupted as err:
        raise UpstreamError(err.message, provider="openai") from err


# -- client responses ----------------------------------------------------------------------------


def encode_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    """A canonical answer as the ``text_completion`` body an OpenAI client reads."""
    return {
        "id": completion_id(resp.id),
        "object": "text_completion",
        "created": resp.created,
        "model": model,
        "choices": [
            {
                "text": resp.text(),
                "index": 0,
                "logprobs": None,
                "finish_reason": finish_to_text(resp.finish_reason),
            }
        ],
        "usage": usage_to_openai(resp.usage),
    }


class StreamDecoder:
    """Upstream ``text_completion`` chunks -> canonical events (the first choice's text, one
    text block). Call ``finish()`` on [DONE]."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._open = False
        self._finish: Any = None
        self._usage: Usage | None = None

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        if self._done:
            return []
        if chunk.get("error") is not None:
            raise StreamInterrupted(error_message(chunk["error"]))
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(
                MessageStart(id=_text(chunk, "id"), model=_text(chunk, "model"), created=_created(chunk))
            )
        usage = usage_from_openai(chunk.get("usage"))
        if usage is not None:
            if self._usage is None:
                self._usage = usage
            else:
                self._usage.merge(usage)
        choice = _first_choice(chunk.get("choices"))
        if choice is not None:
            text = _text(choice, "text")
            if text:
                if not self._open:
                    self._open = True
                    out.append(BlockStart(0, "text"))
                out.append(TextDelta(0, text))
            reason = choice.get("finish_reason")
            if isinstance(reason, str) and reason:
                self._finish = reason
        return out

    def finish(self) -> list[StreamEvent]:
        if self._done:
            return []
        self._done = True
        if not self._started:
            raise StreamInterrupted("upstream stream ended before sending any chunk")
        out: list[StreamEvent] = []
        if self._open:
            out.append(BlockStop(0))
        if self._usage is not None:
            out.append(UsageUpdate(self._usage))
        out.append(Finish(finish_from_openai(self._finish, has_tool_calls=False)))
        out.append(MessageEnd())
        return out


class StreamEncoder:
    """Canonical events -> the SSE frames of a ``text_completion`` stream: text chunks, a last
    chunk with the finish reason, a usage chunk (empty ``choices``) when asked, ``[DONE]``.
    Thinking and tool calls have no place in this format and are left out."""

    def __init__(self, model: str, *, include_usage: bool, created: int = 0) -> None:
        self.model = model
        self.include_usage = include_usage
        self._id = completion_id("")
        self._created = created
        self._finished = False
        self._ended = False
        self._usage = Usage()

    def feed(self, ev: StreamEvent) -> bytes:
        if self._ended:
            return b""
        if isinstance(ev, TextDelta):
            return self._chunk(ev.text) if ev.text else b""
        if isinstance(ev, MessageStart):
            if ev.id:
                self._id = completion_id(ev.id)
            self._created = self._created or ev.created
            self._usage.merge(ev.usage)
        elif isinstance(ev, UsageUpdate):
            self._usage.merge(ev.usage)
        elif isinstance(ev, Finish):
            return self._finish(ev.reason)
        elif isinstance(ev, MessageEnd):
            return self._end()
        return b""

    def error(self, err: GatewayError) -> bytes:
        """The frame for a failure after the stream began; no [DONE] follows it."""
        self._ended = True
        return encode_sse(orjson.dumps(error_object(err)))

    def relay_end(self, start: MessageStart | None, usage: Usage) -> bytes:
        """As ``chat_stream.StreamEncoder.relay_end``: the usage chunk when the client asked for
        it, then ``[DONE]``."""
        self._ended = True
        if not self.include_usage:
            return DONE
        head = {**self._head(), "id": start.id if start is not None else self._id}
        if start is not None and start.created:
            head["created"] = start.created
        return encode_sse(orjson.dumps({**head, "choices": [], "usage": usage_to_openai(usage)})) + DONE

    def _finish(self, reason: FinishReason) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        return self._chunk("", finish_to_text(reason))

    def _end(self) -> bytes:
        out = self._finish(FinishReason.STOP)
        if self.include_usage:
            out += encode_sse(
                orjson.dumps({**self._head(), "choices": [], "usage": usage_to_openai(self._usage)})
            )
        self._ended = True
        return out + DONE

    def _head(self) -> dict[str, Any]:
        return {"id": self._id, "object": "text_completion", "created": self._created, "model": self.model}

    def _chunk(self, text: str, finish_reason: str | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
        return encode_sse(orjson.dumps({**self._head(), "choices": [choice]}))
