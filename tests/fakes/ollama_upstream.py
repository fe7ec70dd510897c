"""A fake Ollama server: native ``/api/chat`` (NDJSON streams and single answers), ``/api/embed``
and ``/api/tags``, with Ollama's ``{"error": "..."}`` bodies and its validation of what a
translating gateway is likely to get wrong (tool arguments as objects, base64 images, roles).

Replies map onto Ollama's vocabulary: ``Reply.input_tokens``/``output_tokens`` are
``prompt_eval_count``/``eval_count``, ``Reply.cache_read_tokens`` is ``prompt_eval_cached_count``
(Ollama 0.33: the part of the prompt read from the KV cache); ``Reply.finish_reason`` is a ``done_reason``; tool calls
carry no id (Ollama gives none), the ``ToolCallSpec`` id is ignored. Faults count NDJSON lines.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import json
from collections.abc import Collection, Sequence
from typing import Any

from aiohttp import web

from tests.fakes.base import (
    FakeUpstream,
    Reply,
    compact_json,
    estimate_tokens,
    split_text,
)

_ROLES = ("system", "user", "assistant", "tool")
CREATED_AT = "2025-01-15T10:20:30.123456789Z"  # nanoseconds, as Ollama writes them
CREATED_AT_EPOCH = calendar.timegm((2025, 1, 15, 10, 20, 30))


class InvalidRequest(Exception):
    """A 400 Ollama answers, with its own (often Go-flavoured) message."""


def _line(obj: Any) -> bytes:
    return compact_json(obj) + b"\n"


def validate_chat_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise InvalidRequest("invalid character 'x' looking for beginning of value")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model is required")
    messages = body.get("messages", [])
    if not isinstance(messages, list):
        raise InvalidRequest("json: cannot unmarshal object into Go struct field ChatRequest.messages")
    for i, message in enumerate(messages):
        _validate_message(message, i)
    _validate_tools(body.get("tools"))
    fmt = body.get("format")
    if fmt is not None and fmt != "" and fmt != "json" and not isinstance(fmt, dict):
        raise InvalidRequest(f'invalid format: {json.dumps(fmt)}; expected "json" or a valid JSON Schema')
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("json: cannot unmarshal into Go struct field ChatRequest.options")
    think = body.get("think")
    if think is not None and not isinstance(think, bool) and think not in ("low", "medium", "high"):
        raise InvalidRequest(f"invalid think value: {json.dumps(think)}")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("json: cannot unmarshal into Go struct field ChatRequest.stream of type bool")


def _validate_message(message: Any, i: int) -> None:
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        role = message.get("role") if isinstance(message, dict) else None
        raise InvalidRequest(f"invalid role {role!r} in messages[{i}]")
    if not isinstance(message.get("content", ""), str):
        raise InvalidRequest(
            "json: cannot unmarshal array into Go struct field Message.messages.content of type string"
        )
    for key in ("thinking", "tool_name"):
        if key in message and not isinstance(message[key], str):
            raise InvalidRequest(f"json: cannot unmarshal into Go struct field Message.messages.{key}")
    images = message.get("images")
    if images is not None:
        if not isinstance(images, list):
            raise InvalidRequest("json: cannot unmarshal into Go struct field Message.messages.images")
        for image in images:
            try:
                base64.b64decode(image if isinstance(image, str) else "!", validate=True)
            except (binascii.Error, ValueError):
                raise InvalidRequest("illegal base64 data at input byte 0") from None
    calls = message.get("tool_calls")
    if calls is not None:
        if message["role"] != "assistant" or not isinstance(calls, list):
            raise InvalidRequest(f"messages[{i}]: tool_calls are only allowed on assistant messages")
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest(
                    "json: cannot unmarshal into Go struct field ToolCall.messages.tool_calls"
                )
            if not isinstance(fn.get("arguments", {}), dict):
                kind = type(fn["arguments"]).__name__.replace("str", "string")
                raise InvalidRequest(
                    f"json: cannot unmarshal {kind} into Go struct field "
                    "ToolCallFunction.messages.tool_calls.function.arguments of type api.ToolCallFunctionArguments"
                )


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise InvalidRequest("json: cannot unmarshal object into Go struct field ChatRequest.tools")
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("json: cannot unmarshal into Go struct field ChatRequest.tools")


def last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


class _Answer:
    def __init__(self, reply: Reply, body: dict[str, Any]) -> None:
        self.reply = reply
        self.model = reply.model or body["model"]
        messages = body.get("messages") or []
        if reply.text is None and not reply.tool_calls:
            self.text = "echo: " + last_user_text(messages)
        else:
            self.text = reply.text or ""
        self.thinking = reply.thinking[0] if reply.thinking else ""
        self.calls = [
            {"function": {"index": i, "name": name, "arguments": dict(args)}}
            for i, (_, name, args) in enumerate(reply.tool_calls)
        ]
        self.done_reason = reply.finish_reason or "stop"
        prompt = reply.input_tokens
        self.prompt_eval_count = (
            prompt if prompt is not None else estimate_tokens(messages, body.get("tools") or [])
        )
        output = reply.output_tokens
        self.eval_count = (
            output
            if output is not None
            else estimate_tokens(self.text, self.thinking, json.dumps(self.calls))
        )

    def _message(self, content: str = "", **extra: Any) -> dict[str, Any]:
        return {"role": "assistant", "content": content, **extra}

    def _chunk(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"model": self.model, "created_at": CREATED_AT, "message": message, "done": False}

    def _final(self, message: dict[str, Any]) -> dict[str, Any]:
        final = {
            "model": self.model,
            "created_at": CREATED_AT,
            "message": message,
            "done": True,
            "done_reason": self.done_reason,
            "total_duration": 4_883_583_458,
            "load_duration": 1_334_875,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": 342_546_000,
            "eval_count": self.eval_count,
            "eval_duration": 4_535_599_000,
        }
        if self.reply.cache_read_tokens:
            final["prompt_eval_cached_count"] = self.reply.cache_read_tokens
        return final

    def whole(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.thinking:
            extra["thinking"] = self.thinking
        if self.calls:
            extra["tool_calls"] = self.calls
        return self._final(self._message(self.text, **extra))

    def lines(self) -> list[bytes]:
        chunks = [
            self._chunk(self._message(thinking=p)) for p in split_text(self.thinking, self.reply.chunks)
        ]
        chunks += [self._chunk(self._message(p)) for p in split_text(self.text, self.reply.chunks)]
        if self.calls:
            # Ollama sends whole calls, all of them in one line.
            chunks.append(self._chunk(self._message(tool_calls=self.calls)))
        chunks.append(self._final(self._message()))
        return [_line(c) for c in chunks]


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


class OllamaUpstream(FakeUpstream):
    """Serves ``/api/chat``, ``/api/embed`` and ``/api/tags``.

    ``models``: names the server has pulled (others answer Ollama's 404); ``None`` accepts any.
    ``api_key``: when set, requests need ``Authorization: Bearer <key>`` (Ollama's cloud).
    """

    stream_content_type = "application/x-ndjson"  # Ollama's streams are NDJSON, not server-sent events

    def __init__(self, *, api_key: str | None = None, models: Collection[str] | None = None) -> None:
        super().__init__(api_key=api_key)
        self.models = None if models is None else list(models)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/chat", self._chat),
            web.post("/api/embed", self._embed),
            web.get("/api/tags", self._tags),
        ]

    def error_response(self, status: int, message: str, *, error_type: str | None = None) -> web.Response:
        default = {404: "model not found", 500: "llama runner process has terminated: exit status 2"}
        text = message or default.get(status, "something went wrong")
        return web.Response(
            status=status, body=compact_json({"error": text}), headers={"content-type": "application/json"}
        )

    def _rejection(self, request: web.Request, model: Any) -> web.Response | None:
        if self.api_key is not None and request.headers.get("authorization", "") != f"Bearer {self.api_key}":
            return self.error_response(401, "unauthorized")
        if self.models is not None and isinstance(model, str) and model not in self.models:
            return self.error_response(404, f'model "{model}" not found, try pulling it first')
        return None

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2025-01-15T10:20:30.123456789Z",
                "size": 2_019_393_189,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {"format": "gguf", "family": "llama", "parameter_size": "3.2B"},
            }
            for name in self.models or []
        ]
        return web.Response(
            body=compact_json({"models": models}), headers={"content-type": "application/json"}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = self.recorded(request).json
        if (
            denied := self._rejection(request, body.get("model") if isinstance(body, dict) else None)
        ) is not None:
            return denied
        try:
            validate_chat_request(body)
        except InvalidRequest as exc:
            return self.error_response(400, str(exc))
        reply = self.take_reply()
        answer = _Answer(reply, body)
        return await self.respond(
            request,
            reply,
            stream=body.get("stream", True) is not False,  # Ollama streams unless told not to
            body=answer.whole,
            frames=answer.lines,
            error_frame=_line(
                {
                    "error": reply.error_message
                    or "an error was encountered while running the model: unexpected EOF"
                }
            ),
            headers={},
        )

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body = self.recorded(request).json
        if (
            denied := self._rejection(request, body.get("model") if isinstance(body, dict) else None)
        ) is not None:
            return denied
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            return self.error_response(400, "invalid input type")
        dimensions = body.get("dimensions") or 8
        reply = self.take_reply()
        result = {
            "model": body["model"],
            "embeddings": [_vector(text, dimensions) for text in inputs],
            "total_duration": 14_143_917,
            "load_duration": 1_019_500,
            "prompt_eval_count": reply.input_tokens
            if reply.input_tokens is not None
            else estimate_tokens(inputs),
        }
        return await self.respond(
            request, reply, stream=False, body=lambda: result, frames=list, error_frame=b"", headers={}
        )
