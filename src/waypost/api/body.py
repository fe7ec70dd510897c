"""Reading request bodies: size-limited, parsed once."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from waypost.core.errors import BadRequest, PayloadTooLarge


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body. Over ``limit`` bytes is 413 (checked before and while reading);
    malformed JSON is 400 naming the position."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {declared} bytes; the limit is {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body:
        raise BadRequest("Request body is empty; expected a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc.msg} at position {exc.pos}.") from None
