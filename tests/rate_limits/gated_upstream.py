"""A fake OpenAI chat server whose streams wait at a gate: each sends its first chunk, then waits
until the test opens the gate, so a test knows which requests are in flight without timing them.
It counts the requests it received (``hits``) and bills a fixed usage per answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.fakes.base import LoopbackServer, new_id


class GatedUpstream(LoopbackServer):
    def __init__(self, *, input_tokens: int = 100, output_tokens: int = 50) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.hits = 0
        self.gate = asyncio.Event()
        self.status = 200  # another status answers every request with an OpenAI error

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return await self._listen(app)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.hits += 1
        if self.status != 200:
            error = {"message": "upstream trouble", "type": "server_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=self.status)
        base: dict[str, Any] = {"id": new_id("chatcmpl-"), "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "ok"}
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": self.usage(),
                }
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        async def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta or finish else []
            event = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())

        try:
            await chunk({"role": "assistant", "content": "first "})
            await self.gate.wait()
            await chunk({"content": "last"}, "stop")
            await chunk({}, usage=self.usage())
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the gateway stopped reading
        return response
