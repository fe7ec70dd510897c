"""Requests in each client format, sent raw so the tests control every header."""

from __future__ import annotations

from typing import Any

from tests.api.client import Response, post
from tests.harness import GATEWAY_KEY

OPENAI_AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
ANTHROPIC_AUTH = {"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"}


async def ask_openai(
    url: str, model: str, text: str, headers: dict[str, str] | None = None, **fields: Any
) -> Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    return await post(url + "/v1/chat/completions", body, {**OPENAI_AUTH, **(headers or {})})


async def ask_anthropic(
    url: str, model: str, text: str, headers: dict[str, str] | None = None, **fields: Any
) -> Response:
    body = {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **fields}
    return await post(url + "/v1/messages", body, {**ANTHROPIC_AUTH, **(headers or {})})


ASK = {"openai": ask_openai, "anthropic": ask_anthropic}
