"""The OpenAI Responses API (docs/responses.md): ``POST /v1/responses`` as one more client format
of the chat data plane, and the stored responses it keeps (``GET`` and ``DELETE
/v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``).

``POST`` takes the path every chat request takes (``api.dataplane``: authentication, the
pipeline's stages, metering) and is answered by ``chat.answer_chat``, streamed or not; what is
its own: the response id (``resp_...``; a native upstream's own id stays, relayed as it came),
``previous_response_id`` (the stored conversation read before the stages run, so that they see
the request the upstream gets) and ``store`` (``responses_state.Keeper``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Send

from waypost.api.chat import answer_chat, with_default_model
from waypost.api.dataplane import Endpoint
from waypost.api.errors import error_response
from waypost.api.formats import ClientFormat, chat_request
from waypost.api.responses_state import (
    STATE,
    Exchange,
    Keeper,
    as_items,
    context_items,
    lost_note,
    new_response_id,
    run_purge,
)
from waypost.api.state import Container
from waypost.core.context import RequestContext
from waypost.core.errors import BadRequest, GatewayError, NotFound, Overloaded
from waypost.metering.masking import Masker
from waypost.pipeline.stage import Reply
from waypost.security.principal import Principal
from waypost.settings import ResponsesSettings, Settings
from waypost.store.responses import Turn
from waypost.wire.openai import responses as openai_responses

log = logging.getLogger("waypost.responses")

PATHS = ("/v1/responses", "/responses")
LIST_LIMIT = 100  # the most input items one page lists (the API's own bound)


class PreviousResponseNotFound(BadRequest):
    """``previous_response_id`` names no response the caller may continue: OpenAI's 400."""

    code = "previous_response_not_found"


def exchange_of(ctx: RequestContext) -> Exchange:
    exchange = ctx.state[STATE]
    assert isinstance(exchange, Exchange)
    return exchange


RESPONSES = ClientFormat(
    name=openai_responses.FORMAT,
    decode_request=openai_responses.decode_request,
    encode_response=lambda resp, ctx: openai_responses.encode_response(
        resp,
        chat_request(ctx),
        response_id=exchange_of(ctx).response_id,
        created_at=exchange_of(ctx).created_at,
        body=exchange_of(ctx).body,
    ),
    encode_error=openai_responses.encode_error,
    stream_encoder=lambda ctx: openai_responses.StreamEncoder(
        chat_request(ctx),
        response_id=exchange_of(ctx).response_id,
        created_at=exchange_of(ctx).created_at,
        body=exchange_of(ctx).body,
    ),
    usage_object=openai_responses.usage_to_responses,
)


# -- POST /v1/responses --------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


async def _turns(container: Container, response_id: str, principal: Principal | None) -> list[Turn]:
    """The stored response ``response_id`` of the caller and the ones before it, newest first;
    empty when there is none the caller may read (or nothing is stored)."""
    settings = container.settings.responses
    if principal is None or not settings.store:
        return []
    try:
        turns = await container.store.responses.chain(
            response_id, principal.user_id, _now(), settings.max_chain + 1
        )
    except Exception as exc:
        log.warning("stored responses unreadable (%s: %s)", type(exc).__name__, exc)
        raise Overloaded("Stored responses cannot be read right now; try again shortly.") from None
    return list(turns)


async def prepare(ctx: RequestContext, container: Container) -> None:
    """The request's own state; with ``previous_response_id``, the stored conversation."""
    settings = container.settings.responses
    body = ctx.body if isinstance(ctx.body, dict) else None
    sent = body or {}
    store = sent.get("store")
    if store is not None and not isinstance(store, bool):
        raise BadRequest("Invalid type for 'store': expected a boolean.", param="store")
    previous = sent.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise BadRequest(
            "Invalid type for 'previous_response_id': expected a non-empty string.",
            param="previous_response_id",
        )
    keep = store is not False and settings.store
    if body is not None and store is not False and not settings.store:
        body = {**body, "store": False}  # the response says what happened: nothing is kept
    exchange = Exchange(new_response_id(), int(time.time()), body, keep, previous)
    ctx.state[STATE] = exchange
    if previous is None:
        return
    turns = await _turns(container, previous, ctx.principal)
    if not turns:
        raise PreviousResponseNotFound(
            f"Previous response with id '{previous}' not found.", param="previous_response_id"
        )
    if len(turns) > settings.max_chain:
        raise BadRequest(
            f"The conversation of previous_response_id '{previous}' has more than "
            f"{settings.max_chain} responses (responses.max_chain): start a new one.",
            param="previous_response_id",
        )
    exchange.context = context_items(turns)
    exchange.note = lost_note(turns)


def decode(ctx: RequestContext, container: Container) -> None:
    body = with_default_model(ctx.body, container.settings.routing.default_model)
    exchange = exchange_of(ctx)
    if exchange.context is not None and isinstance(body, dict):
        own = as_items(body.get("input"))
        if own is not None:  # else the decoder names what is wrong with ``input``
            # The upstream gets the whole conversation, not an id only this gateway knows.
            body = {k: v for k, v in body.items() if k != "previous_response_id"}
            body["input"] = [*exchange.context, *own]
    req = openai_responses.decode_request(body)
    ctx.req, ctx.decoder_notes, ctx.stream = req, len(req.notes), req.stream
    if exchange.note is not None:
        req.notes.append(exchange.note)


def endpoint(settings: Settings) -> Endpoint:
    """The ``POST`` endpoint; what it stores is masked as audit bodies are (``audit.mask_patterns``,
    like ``responses``, is read at start)."""
    masker = Masker(settings.audit.mask_patterns)

    async def run(ctx: RequestContext, container: Container, reply: Reply | None, send: Send) -> None:
        exchange = exchange_of(ctx)
        if exchange.keep:
            send = Keeper(
                send, ctx, exchange, container.store.responses, container.settings.responses, masker
            )
        await answer_chat(ctx, container, RESPONSES, reply, send)

    return Endpoint("responses", RESPONSES, decode, run, prepare=prepare)


# -- the stored responses --------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        data if isinstance(data, bytes) else orjson.dumps(data), status, media_type="application/json"
    )


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


async def _stored(request: Request) -> tuple[Container, Principal, str]:
    container: Container = request.app.state.container
    principal = await container.authenticator.authenticate(request.headers)
    response_id = request.path_params["response_id"]
    if not container.settings.responses.store:
        raise _not_found(response_id)
    return container, principal, response_id


async def stored_response(request: Request) -> Response:
    """``GET`` or ``DELETE /v1/responses/{id}``."""
    return await (delete(request) if request.method == "DELETE" else retrieve(request))


async def retrieve(request: Request) -> Response:
    """``GET /v1/responses/{id}``: the stored response object, as its caller got it."""
    try:
        container, principal, response_id = await _stored(request)
        try:
            row = await container.store.responses.get(response_id, principal.user_id, _now())
        except Exception as exc:
            log.warning("stored responses unreadable (%s: %s)", type(exc).__name__, exc)
            raise Overloaded("Stored responses cannot be read right now; try again shortly.") from None
        if row is None:
            raise _not_found(response_id)
    except GatewayError as err:
        return error_response(RESPONSES, err)
    return _json(row.response.encode())


async def delete(request: Request) -> Response:
    """``DELETE /v1/responses/{id}``: forget the stored response."""
    try:
        container, principal, response_id = await _stored(request)
        try:
            gone = await container.store.responses.delete(response_id, principal.user_id, _now())
        except Exception as exc:
            log.warning("stored responses not writable (%s: %s)", type(exc).__name__, exc)
            raise Overloaded("Stored responses cannot be changed right now; try again shortly.") from None
        if not gone:
            raise _not_found(response_id)
    except GatewayError as err:
        return error_response(RESPONSES, err)
    return _json({"id": response_id, "object": "response", "deleted": True})


def _page_params(request: Request) -> tuple[int, bool, str | None]:
    """``limit`` (1-100, 20), ``order`` (``desc``: newest first, the default) and ``after``."""
    query = request.query_params
    raw = query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_LIMIT:
        raise BadRequest(
            f"Invalid 'limit': {raw!r}; expected an integer from 1 to {LIST_LIMIT}.", param="limit"
        )
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest(f"Invalid 'order': {order!r}; expected 'asc' or 'desc'.", param="order")
    return limit, order == "desc", query.get("after") or None


async def input_items(request: Request) -> Response:
    """``GET /v1/responses/{id}/input_items``: the items the response was made from (those of
    the conversation before it, then its own input), a page at a time."""
    try:
        container, principal, response_id = await _stored(request)
        limit, newest_first, after = _page_params(request)
        turns = await _turns(container, response_id, principal)
        if not turns:
            raise _not_found(response_id)
        items = [*context_items(turns[1:]), *orjson.loads(turns[0].input)]
        if newest_first:
            items.reverse()
        start = 0
        if after is not None:
            ids = [item.get("id") if isinstance(item, dict) else None for item in items]
            if after not in ids:
                raise BadRequest(
                    f"No input item with id '{after}' in response '{response_id}'.", param="after"
                )
            start = ids.index(after) + 1
    except GatewayError as err:
        return error_response(RESPONSES, err)
    page = items[start : start + limit]
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": start + limit < len(items),
        }
    )


def routes(settings: ResponsesSettings) -> list[Route]:
    """The stored-response routes, under both spellings of the API's path (none when
    ``responses.enabled`` is off)."""
    if not settings.enabled:
        return []
    return [
        route
        for base in PATHS
        for route in (
            Route(base + "/{response_id}", stored_response, methods=["GET", "DELETE"]),
            Route(base + "/{response_id}/input_items", input_items, methods=["GET"]),
        )
    ]


def post_routes(settings: Settings) -> dict[str, Endpoint]:
    """The data plane's ``POST`` routes of the API (none when ``responses.enabled`` is off)."""
    if not settings.responses.enabled:
        return {}
    return dict.fromkeys(PATHS, endpoint(settings))


async def purge(container: Container) -> None:
    """The background deletion of expired responses (``responses.purge_interval``)."""
    await run_purge(container.store.responses, container.settings.responses.purge_interval)
