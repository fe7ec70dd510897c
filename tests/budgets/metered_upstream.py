"""A fake Anthropic Messages server that bills as it goes: a stream carries its cumulative usage
in a ``message_delta`` after every text delta (Anthropic's usage counts are cumulative; this
upstream reports them often, so that the gateway sees a stream's spend while it runs). It records
what each request was billed up to the moment the gateway stopped reading."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.fakes.base import LoopbackServer, new_id


class MeteredUpstream(LoopbackServer):
    def __init__(
        self,
        *,
        input_tokens: int = 10,
        output_tokens: int = 3000,
        chunks: int = 30,
        chunk_delay_s: float = 0.005,
        latency_s: float = 0.0,
    ) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.chunks = chunks
        self.chunk_delay_s = chunk_delay_s
        self.latency_s = latency_s
        self.billed: list[tuple[int, int]] = []  # (input, output) tokens reported, per request

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return await self._listen(app)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        slot = len(self.billed)
        self.billed.append((self.input_tokens, 0))
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        message = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        if not body.get("stream"):
            self.billed[slot] = (self.input_tokens, self.output_tokens)
            message["content"] = [{"type": "text", "text": "x " * self.chunks}]
            message["stop_reason"] = "end_turn"
            message["usage"]["output_tokens"] = self.output_tokens
            return web.json_response(message)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)

        async def send(kind: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())

        try:
            await send("message_start", {"type": "message_start", "message": message})
            await send(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            per_chunk = self.output_tokens // self.chunks
            for i in range(1, self.chunks + 1):
                await asyncio.sleep(self.chunk_delay_s)
                await send(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "x "},
                    },
                )
                usage = {"input_tokens": self.input_tokens, "output_tokens": per_chunk * i}
                await send("message_delta", {"type": "message_delta", "delta": {}, "usage": usage})
                self.billed[slot] = (self.input_tokens, per_chunk * i)
            await send("content_block_stop", {"type": "content_block_stop", "index": 0})
            usage = {"input_tokens": self.input_tokens, "output_tokens": per_chunk * self.chunks}
            await send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": usage,
                },
            )
            await send("message_stop", {"type": "message_stop"})
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the gateway stopped reading: billed up to the last report sent
        return response
