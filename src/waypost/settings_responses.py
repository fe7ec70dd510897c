"""The ``responses`` settings section: the OpenAI Responses API (``POST /v1/responses``) and the
conversations it keeps (docs/responses.md; every key in docs/configuration.md).
``waypost.settings`` re-exports it: import it from there."""

from __future__ import annotations

from pydantic import Field

from waypost.settings_metering import _Strict

DAY = 86400.0


class ResponsesSettings(_Strict):
    # ``false``: /v1/responses and its stored-response routes are not served (404, like any
    # unknown route).
    enabled: bool = True
    # ``false``: no response is kept whatever a request's ``store`` says, so nothing of a
    # conversation reaches the database; ``previous_response_id`` then finds nothing.
    store: bool = True
    retention: float = Field(30 * DAY, gt=0)  # seconds a stored response is kept (OpenAI: 30 days)
    # A response whose stored record (input items, instructions, the response) is bigger than
    # this is answered but not kept.
    max_stored_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # How many earlier responses ``previous_response_id`` may chain through; a longer
    # conversation is refused with a 400 naming this key.
    max_chain: int = Field(1000, ge=1, le=100_000)
    # Seconds the record's write may hold back the answer's last byte (it is written before it,
    # so a follow-up on any replica finds it); a write that takes longer is given up, logged.
    write_timeout: float = Field(5.0, gt=0, le=120)
    purge_interval: float = Field(3600.0, gt=0)  # seconds between deletions of expired responses
