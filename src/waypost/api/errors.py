"""Rendering failures in the caller's wire format."""

from __future__ import annotations

import math

import orjson
from starlette.responses import Response

from waypost.api.formats import ClientFormat
from waypost.core.errors import GatewayError


def error_parts(fmt: ClientFormat, err: GatewayError) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers (``Retry-After``, the provider) for an error."""
    status, body = fmt.encode_error(err)
    headers = {}
    if err.retry_after is not None and status in (402, 429, 503, 529):
        headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
    if status in (402, 429) and not err.retryable:
        headers["x-should-retry"] = "false"  # the official SDKs would otherwise retry a spent budget
    if err.provider:
        headers["x-waypost-provider"] = err.provider
    return status, orjson.dumps(body), headers


def error_response(fmt: ClientFormat, err: GatewayError) -> Response:
    status, body, headers = error_parts(fmt, err)
    return Response(body, status_code=status, media_type="application/json", headers=headers)
