"""Strict checks of Responses API payloads against the official ``openai`` SDK's own models.

The SDK reads answers leniently (``construct``); these checks validate in pydantic's strict
mode instead, so that a missing required field or a wrong type fails a test rather than
surfacing as ``None`` in a client. Events are checked against the model their ``type`` names,
which gives a readable error, and then against the SDK's whole event union.
"""

from __future__ import annotations

from typing import Any, get_args

from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

_UNION: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def _event_models() -> dict[str, type[BaseModel]]:
    members = get_args(get_args(ResponseStreamEvent)[0])
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in members}


EVENT_MODELS = _event_models()


def validate_response(body: dict[str, Any]) -> Response:
    return Response.model_validate(body, strict=True)


def validate_event(event: dict[str, Any]) -> BaseModel:
    """One stream event, strictly; raises ``KeyError`` for a type the SDK does not know."""
    model = EVENT_MODELS[event["type"]]
    model.model_validate(event, strict=True)
    parsed: BaseModel = _UNION.validate_python(event, strict=True)
    return parsed


def accumulate(events: list[dict[str, Any]]) -> Response | None:
    """Run the events through the SDK's own stream accumulator (what ``responses.stream()``
    does): it raises on events out of order; the completed response, if any."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    final: Response | None = None
    for event in events:
        for out in state.handle_event(_UNION.validate_python(event)):
            if out.type == "response.completed":
                final = out.response
    return final
