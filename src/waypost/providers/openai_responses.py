"""OpenAI's own Responses API (``POST /responses``) as an upstream, for Responses clients.

A request decoded from a ``/v1/responses`` client goes to a deployment's ``/responses`` when the
deployment speaks that API (``speaks_responses``): the client's body forwarded with only the
model, ``stream`` and policy edits (``wire.openai.responses.encode_request``), and the answer
relayed as it came but for the model name the client asked for. Any other request, and a
Responses request to a deployment that does not speak the API, goes through chat completions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from waypost.core.errors import StreamInterrupted
from waypost.core.events import StreamEvent
from waypost.core.types import ChatRequest, ChatResponse
from waypost.providers.base import Deployment
from waypost.providers.streaming import END, SHOWN, Rewritten
from waypost.wire.openai import responses as openai_responses
from waypost.wire.sse import Frame, encode_frame

RESPONSES_PATH = "/responses"
FORMAT = openai_responses.FORMAT
# Hosts whose servers are known to serve the Responses API when ``responses_api`` is not set.
NATIVE_HOSTS = frozenset({"api.openai.com"})
_FINAL = frozenset({"response.completed", "response.incomplete"})
_WITH_RESPONSE = frozenset({"response.created", "response.in_progress", "response.queued", *_FINAL})


def speaks_responses(dep: Deployment) -> bool:
    """Whether ``dep`` takes Responses API requests at its own ``/responses``."""
    setting = dep.settings.responses_api
    if setting is not None:
        return setting
    return (urlsplit(dep.settings.resolved_base_url()).hostname or "") in NATIVE_HOSTS


def native(req: ChatRequest, dep: Deployment) -> bool:
    """Whether ``req`` goes to ``dep``'s ``/responses`` as it came (the same-format path)."""
    return req.source_format == FORMAT and speaks_responses(dep)


def encode(req: ChatRequest, dep: Deployment, *, stream: bool) -> tuple[dict[str, Any], tuple[str, ...]]:
    body, dropped = openai_responses.encode_request(req, dep.upstream_model, stream=stream)
    return body, dropped


def relayed_body(answer: dict[str, Any], data: bytes, model: str) -> bytes:
    """A non-streamed answer as the client gets it: as it came, but naming the client's model."""
    if answer.get("model") == model:
        return data
    return orjson.dumps({**answer, "model": model})


def decoded(answer: dict[str, Any]) -> ChatResponse:
    return openai_responses.decode_response(answer)


class ResponsesFrames:
    """Typed Responses events until the final one (``response.completed``/``.incomplete``);
    with ``model`` (a same-format client), the events that carry the response object name it."""

    __slots__ = ("_decoder", "_model", "_provider")

    def __init__(self, model: str | None, provider: str) -> None:
        self._decoder = openai_responses.StreamDecoder()
        self._model = model
        self._provider = provider

    def feed(self, frame: Frame, out: list[StreamEvent]) -> int | Rewritten:
        event = orjson.loads(frame[1])
        if not isinstance(event, dict):
            raise ValueError("a stream event that is not a JSON object")
        out += self._decoder.feed(event)
        etype = event.get("type")
        final = etype in _FINAL
        model = self._model
        if model is not None and etype in _WITH_RESPONSE:
            response = event.get("response")
            if isinstance(response, dict) and response.get("model") != model:
                event = {**event, "response": {**response, "model": model}}
                return Rewritten(encode_frame((frame[0], orjson.dumps(event))), end=final)
        return END if final else SHOWN

    def finish(self) -> list[StreamEvent]:
        raise StreamInterrupted(
            f"{self._provider} upstream stream ended without its final response event",
            provider=self._provider,
        )


def frames_for(
    req: ChatRequest, relay: bool, provider: str
) -> Callable[[Mapping[str, str]], ResponsesFrames]:
    frames = ResponsesFrames(req.model if relay else None, provider)
    return lambda _headers: frames


__all__ = [
    "RESPONSES_PATH",
    "ResponsesFrames",
    "decoded",
    "encode",
    "frames_for",
    "native",
    "relayed_body",
    "speaks_responses",
]
