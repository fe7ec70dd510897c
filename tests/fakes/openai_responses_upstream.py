"""A fake of OpenAI's Responses API (``POST /v1/responses``) beside the Chat Completions fake.

It answers scripted ``Reply``s in the Responses wire format: a ``response`` object, or the typed
event stream (``event:`` lines, ``sequence_number`` from 0, an ``obfuscation`` field on deltas
unless ``stream_options.include_obfuscation`` is false) ending with ``response.completed`` or
``response.incomplete``. Thinking is a ``reasoning`` item (its text as a summary when
``reasoning.summary`` is set, its signature as ``encrypted_content`` when ``include`` asks for
it); tool calls are ``function_call`` items (only the first with ``parallel_tool_calls: false``);
``max_output_tokens`` cuts the text by words and makes the response incomplete. A scripted
error status answers OpenAI's error JSON; ``error_event_after_chunks`` ends a stream with an
``error`` event, or with ``response.failed`` when ``failure`` says so (the error's code is the
reply's ``error_type``, ``server_error`` by default). It refuses what OpenAI refuses and a
gateway may send wrongly: unknown top-level parameters, a missing model or input, bad input
items, tools or ``include`` values.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from aiohttp import web

from tests.fakes.base import Reply, compact_json, estimate_tokens, new_id, split_text
from tests.fakes.openai_responses_validation import validate_responses_request
from tests.fakes.openai_upstream import InvalidRequest, OpenAIUpstream, error_body

Failure = Literal["error", "response.failed"]
"""How a stream fails after its first events: OpenAI's ``error`` event or ``response.failed``."""


def last_user_text(body: dict[str, Any]) -> str:
    value = body.get("input")
    if isinstance(value, str):
        return value
    for item in reversed(value or []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def obfuscation() -> str:
    """What OpenAI pads delta events with (``stream_options.include_obfuscation``, on by default)
    so that their sizes do not reveal the tokens: random characters of a random length."""
    return secrets.token_urlsafe(12)[: 1 + secrets.randbelow(16)]


class _Answer:
    """One scripted reply as a Responses API answer."""

    def __init__(self, reply: Reply, body: dict[str, Any]) -> None:
        self.reply = reply
        self.body = body
        self.id = new_id("resp_")
        self.created = int(time.time())
        words = (reply.text if reply.text is not None else "" if reply.tool_calls else
                 f"echo: {last_user_text(body)}").split(" ")  # fmt: skip
        limit = body.get("max_output_tokens")
        self.cut = reply.finish_reason == "length" or (limit is not None and len(words) > limit)
        self.text = " ".join(words[:limit] if limit is not None else words)
        options = body.get("stream_options") or {}
        self.obfuscate = options.get("include_obfuscation", True) is not False
        self.items: list[dict[str, Any]] = []
        if reply.thinking is not None:
            self.items.append(self._reasoning(*reply.thinking))
        if self.text:
            self.items.append(
                {
                    "id": new_id("msg_"),
                    "type": "message",
                    "role": "assistant",
                    "status": "incomplete" if self.cut else "completed",
                    "content": [
                        {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
                    ],
                }
            )
        calls = list(reply.tool_calls)
        # Without parallel tool calls the model makes one call per turn.
        for call_id, name, args in calls[:1] if body.get("parallel_tool_calls") is False else calls:
            self.items.append(
                {
                    "id": new_id("fc_"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call_id,
                    "name": name,
                    "arguments": compact_json(args).decode(),
                }
            )

    def _reasoning(self, text: str, signature: str) -> dict[str, Any]:
        """A reasoning item: a summary only when ``reasoning.summary`` asks for one, the encrypted
        reasoning only when ``include`` names ``reasoning.encrypted_content``."""
        summary = (self.body.get("reasoning") or {}).get("summary")
        item: dict[str, Any] = {
            "id": new_id("rs_"),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if summary else [],
        }
        if "reasoning.encrypted_content" in (self.body.get("include") or []):
            item["encrypted_content"] = signature
        return item

    def usage(self) -> dict[str, Any]:
        reply = self.reply
        inputs = (
            reply.input_tokens if reply.input_tokens is not None else estimate_tokens(self.body.get("input"))
        )
        outputs = (
            reply.output_tokens if reply.output_tokens is not None else max(1, estimate_tokens(self.text))
        )
        return {
            "input_tokens": inputs,
            "input_tokens_details": {
                "cached_tokens": reply.cache_read_tokens,
                "cache_write_tokens": reply.cache_write_tokens,
            },
            "output_tokens": outputs,
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": inputs + outputs,
        }

    @property
    def final_status(self) -> str:
        return "incomplete" if self.cut else "completed"

    def response(self, status: str = "in_progress", error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response object at ``status``: with its output and usage once it has ended."""
        body = self.body
        ended = status in ("completed", "incomplete")
        reasoning = body.get("reasoning") or {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if status == "completed" else None,
            "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "model": self.reply.model or body["model"],
            "output": self.items if ended else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": self.usage() if ended else None,
            "user": body.get("user"),
            "metadata": body.get("metadata", {}),
        }

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"type": "response.created", "response": self.response()},
            {"type": "response.in_progress", "response": self.response()},
        ]
        for index, item in enumerate(self.items):
            out += self._item_events(index, item)
        out.append({"type": f"response.{self.final_status}", "response": self.response(self.final_status)})
        for n, event in enumerate(out):
            event["sequence_number"] = n
            if self.obfuscate and event["type"].endswith(".delta"):
                event["obfuscation"] = obfuscation()
        return out

    def failure(self, kind: Failure, sequence_number: int, code: str, message: str) -> dict[str, Any]:
        """The event that ends a stream which fails after ``sequence_number`` events."""
        if kind == "error":
            return {"type": "error", "code": code, "message": message, "param": None,
                    "sequence_number": sequence_number}  # fmt: skip
        failed = self.response("failed", {"code": code, "message": message})
        return {"type": "response.failed", "response": failed, "sequence_number": sequence_number}

    def _item_events(self, index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
        at = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "message":
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            deltas = [
                {
                    "type": "response.output_text.delta",
                    **at,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                }
                for piece in split_text(text, self.reply.chunks)
            ]
            return [
                {"type": "response.output_item.added", "output_index": index,
                 "item": {**item, "status": "in_progress", "content": []}},
                {"type": "response.content_part.added", **at, "content_index": 0, "part": empty},
                *deltas,
                {"type": "response.output_text.done", **at, "content_index": 0, "text": text, "logprobs": []},
                {"type": "response.content_part.done", **at, "content_index": 0, "part": item["content"][0]},
                {"type": "response.output_item.done", "output_index": index, "item": item},
            ]  # fmt: skip
        if kind == "function_call":
            args = item["arguments"]
            return [
                {"type": "response.output_item.added", "output_index": index,
                 "item": {**item, "status": "in_progress", "arguments": ""}},
                *[{"type": "response.function_call_arguments.delta", **at, "delta": piece}
                  for piece in (args[: len(args) // 2], args[len(args) // 2 :]) if piece],
                {"type": "response.function_call_arguments.done", **at, "name": item["name"], "arguments": args},
                {"type": "response.output_item.done", "output_index": index, "item": item},
            ]  # fmt: skip
        events: list[dict[str, Any]] = [
            {"type": "response.output_item.added", "output_index": index, "item": {**item, "summary": []}}
        ]
        for n, part in enumerate(item["summary"]):
            events += [
                {"type": "response.reasoning_summary_part.added", **at, "summary_index": n,
                 "part": {"type": "summary_text", "text": ""}},
                {"type": "response.reasoning_summary_text.delta", **at, "summary_index": n, "delta": part["text"]},
                {"type": "response.reasoning_summary_text.done", **at, "summary_index": n, "text": part["text"]},
                {"type": "response.reasoning_summary_part.done", **at, "summary_index": n, "part": part},
            ]  # fmt: skip
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        return events


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + compact_json(event) + b"\n\n"


class OpenAIResponsesUpstream(OpenAIUpstream):
    """OpenAI's API with ``/v1/responses`` (and ``/responses``) besides Chat Completions.

    ``failure`` is how its streams fail mid-way (``Reply.error_event_after_chunks``): OpenAI's
    ``error`` event (the default) or a ``response.failed`` event carrying the failed response.
    """

    def __init__(self, *, failure: Failure = "error", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failure: Failure = failure

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/responses", self._responses),
            web.post("/responses", self._responses),
            *super().routes(),
        ]

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth_error(request)) is not None:
            return denied
        body = self.recorded(request).json
        try:
            validate_responses_request(body)
        except InvalidRequest as exc:
            return self._error(400, error_body(exc.message, "invalid_request_error", exc.param, exc.code))
        reply = self.take_reply()
        answer = _Answer(reply, body)
        failure = answer.failure(
            self.failure,
            reply.error_event_after_chunks or 0,
            reply.error_type or "server_error",
            reply.error_message or "An error occurred while processing your request.",
        )
        return await self.respond(
            request,
            reply,
            stream=body.get("stream") is True,
            body=lambda: answer.response(answer.final_status),
            frames=lambda: [sse(e) for e in answer.events()],
            error_frame=sse(failure),
            headers={"x-request-id": new_id("req_"), "openai-processing-ms": "1"},
        )
