"""A fake of OpenAI's Responses API (``POST /v1/responses``) beside the Chat Completions fake.

It answers scripted ``Reply``s in the Responses wire format: a ``response`` object, or the typed
event stream (``event:`` lines, ``sequence_number`` from 0) ending with ``response.completed`` or
``response.incomplete``. Thinking is a ``reasoning`` item (its text as a summary, its signature
as ``encrypted_content`` when ``include`` asks for it); ``max_output_tokens`` cuts the text by
words and makes the response incomplete. It refuses what OpenAI refuses and a gateway may send
wrongly: unknown top-level parameters, a missing model or input, bad input items.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.fakes.base import Reply, compact_json, estimate_tokens, new_id, split_text
from tests.fakes.openai_upstream import InvalidRequest, OpenAIUpstream, error_body

KNOWN_PARAMS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
        "reasoning", "max_output_tokens", "max_tool_calls", "temperature", "top_p", "top_logprobs",
        "metadata", "user", "include", "store", "previous_response_id", "truncation", "stream",
        "stream_options", "prompt_cache_key", "prompt_cache_retention", "service_tier",
        "safety_identifier", "background", "prompt", "conversation", "client_metadata",
    }
)  # fmt: skip
_ITEM_TYPES = frozenset(
    {
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "item_reference",
        "web_search_call",
        "additional_tools",
    }
)


def validate_responses_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("We could not parse the JSON body of your request.")
    for key in body:
        if key not in KNOWN_PARAMS:
            raise InvalidRequest(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    value = body.get("input")
    if isinstance(value, list):
        for i, item in enumerate(value):
            kind = item.get("type", "message") if isinstance(item, dict) else None
            if kind not in _ITEM_TYPES:
                raise InvalidRequest(f"Invalid value: '{kind}'.", param=f"input[{i}].type")
            if kind == "function_call_output" and not isinstance(item.get("output"), str | list):
                raise InvalidRequest("Missing required parameter.", param=f"input[{i}].output")
    elif not isinstance(value, str):
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise InvalidRequest(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {limit}.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )


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
        reasoning = body.get("reasoning") or {}
        self.encrypted = "reasoning.encrypted_content" in (body.get("include") or [])
        self.items: list[dict[str, Any]] = []
        if reply.thinking is not None:
            text, signature = reply.thinking
            item: dict[str, Any] = {
                "id": new_id("rs_"),
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": text}] if reasoning.get("summary") else [],
            }
            if self.encrypted:
                item["encrypted_content"] = signature
            self.items.append(item)
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
        for call_id, name, args in reply.tool_calls:
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

    def response(self, *, done: bool) -> dict[str, Any]:
        body = self.body
        status = ("incomplete" if self.cut else "completed") if done else "in_progress"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if done and self.cut else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self.reply.model or body["model"],
            "output": self.items if done else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": self.usage() if done else None,
            "user": body.get("user"),
            "metadata": body.get("metadata", {}),
        }

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"type": "response.created", "response": self.response(done=False)},
            {"type": "response.in_progress", "response": self.response(done=False)},
        ]
        for index, item in enumerate(self.items):
            out += self._item_events(index, item)
        final = "response.incomplete" if self.cut else "response.completed"
        out.append({"type": final, "response": self.response(done=True)})
        for n, event in enumerate(out):
            event["sequence_number"] = n
        return out

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
    """OpenAI's API with ``/v1/responses`` (and ``/responses``) besides Chat Completions."""

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
        message = reply.error_message or "The server had an error while processing your request."
        error = {
            "type": "error",
            "code": "server_error",
            "message": message,
            "param": None,
            "sequence_number": 0,
        }
        return await self.respond(
            request,
            reply,
            stream=body.get("stream") is True,
            body=lambda: answer.response(done=True),
            frames=lambda: [sse(e) for e in answer.events()],
            error_frame=sse(error),
            headers={"x-request-id": new_id("req_"), "openai-processing-ms": "1"},
        )
