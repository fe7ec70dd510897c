"""A loopback stand-in for OpenAI's /v1/responses that keeps what real clients send.

It answers just enough of the Responses API (a scripted turn: text, or function calls) for a client
to carry on, and logs every request's method, path, headers and JSON body. ``record.py`` points the
real clients at it to make the fixtures tests/fixtures/openai_responses/client_*.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.base import LoopbackServer, Recorded, compact_json, estimate_tokens


@dataclass(frozen=True)
class Turn:
    """One scripted answer: function calls ``(name, arguments)`` when given, else ``text``."""

    text: str = "Done."
    calls: Sequence[tuple[str, Mapping[str, Any]]] = ()


@dataclass
class Recorder(LoopbackServer):
    script: list[Turn] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    _served: int = 0

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return await self._listen(app)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=raw,
                json=parsed,
            )
        )
        if request.method == "POST" and request.path.endswith("/responses") and isinstance(parsed, dict):
            return await self._answer(request, parsed)
        if request.method == "GET" and request.path.endswith("/models"):
            return web.json_response({"object": "list", "data": [], "models": []})
        return web.json_response(
            {"error": {"message": f"not served: {request.path}", "type": "invalid_request_error"}}, status=404
        )

    def _turn(self) -> Turn:
        turn = self.script[self._served] if self._served < len(self.script) else Turn()
        self._served += 1
        return turn

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        n = self._served
        turn = self._turn()
        response_id = f"resp_rec{n:04d}"
        output: list[dict[str, Any]]
        if turn.calls:
            output = [
                {
                    "id": f"fc_rec{n:04d}_{i}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": f"call_rec{n:04d}_{i}",
                    "name": name,
                    "arguments": json.dumps(args),
                }
                for i, (name, args) in enumerate(turn.calls)
            ]
        else:
            output = [
                {
                    "id": f"msg_rec{n:04d}",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}
                    ],
                }
            ]
        final = response_object(body, response_id, output, "completed")
        if not body.get("stream"):
            return web.json_response(final)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await resp.prepare(request)
        for frame in stream_events(body, final):
            await resp.write(frame)
        await resp.write_eof()
        return resp


def response_object(
    body: Mapping[str, Any], response_id: str, output: list[dict[str, Any]], status: str
) -> dict[str, Any]:
    """A Response object echoing the request's parameters, as OpenAI's is."""
    usage_in = estimate_tokens(body.get("input"), body.get("instructions"))
    usage_out = estimate_tokens(output)
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model", "unknown"),
        "output": output if status == "completed" else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": {
            "input_tokens": usage_in,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": usage_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage_in + usage_out,
        }
        if status == "completed"
        else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def stream_events(body: Mapping[str, Any], final: dict[str, Any]) -> list[bytes]:
    """The typed event sequence of a streamed Response, framed as SSE."""
    events: list[dict[str, Any]] = []
    start = response_object(body, final["id"], [], "in_progress")
    events.append({"type": "response.created", "response": start})
    events.append({"type": "response.in_progress", "response": start})
    for index, item in enumerate(final["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            events.append({"type": "response.content_part.added", **where, "part": part})
            events.append({"type": "response.output_text.delta", **where, "delta": text, "logprobs": []})
            events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
            events.append({"type": "response.content_part.done", **where, "part": item["content"][0]})
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "arguments": ""},
                }
            )
            where = {"item_id": item["id"], "output_index": index}
            events.append(
                {"type": "response.function_call_arguments.delta", **where, "delta": item["arguments"]}
            )
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": final})
    return [
        b"event: " + e["type"].encode() + b"\ndata: " + compact_json({**e, "sequence_number": n}) + b"\n\n"
        for n, e in enumerate(events)
    ]
