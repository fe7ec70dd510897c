"""A fake OpenAI Chat Completions server: the real wire format, the real error JSON, minimal validation."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Any

from aiohttp import web

from tests.fakes.base import (
    FakeUpstream,
    Reply,
    compact_json,
    estimate_tokens,
    new_id,
    split_text,
)
from tests.fakes.openai_endpoints import serve_completions, serve_embeddings
from tests.fakes.openai_quirks import QuirkRefusal, quirky_body, quirky_chunks, token_limit

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")

# Error `type` and `code` the real API uses per status; the message is the API's wording where known.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class InvalidRequest(Exception):
    """A 400 the real API would answer, with its ``param`` and ``code``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> Any:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def validate_chat_request(body: Any) -> None:
    """Reject what the real API rejects and a translating gateway is likely to get wrong."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(messages, list):
        raise InvalidRequest("Invalid type for 'messages': expected an array.", "messages", "invalid_type")
    if not messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
            "array instead.",
            "messages",
            "empty_array",
        )
    if "stream_options" in body and body.get("stream_options") is not None and not body.get("stream"):
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )
    _validate_messages(messages)
    _validate_tools(body.get("tools"))


def _validate_messages(messages: list[Any]) -> None:
    answerable: set[str] = set()  # tool_call ids of the latest assistant turn
    unanswered: list[str] = []
    unanswered_at = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise InvalidRequest(
                f"Missing required parameter: 'messages[{i}].role'.",
                f"messages[{i}].role",
                "missing_required_parameter",
            )
        role = message["role"]
        if role not in _ROLES:
            raise InvalidRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                "'tool', and 'developer'.",
                f"messages[{i}].role",
                "invalid_value",
            )
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in answerable:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            if call_id in unanswered:
                unanswered.remove(call_id)
            continue
        if unanswered:
            raise _unanswered_error(unanswered, unanswered_at)
        answerable = set()
        if role == "assistant" and message.get("tool_calls"):
            answerable = set(_assistant_call_ids(message, i))
            unanswered = list(answerable)
            unanswered_at = i
    if unanswered:
        raise _unanswered_error(unanswered, unanswered_at)


def _assistant_call_ids(message: dict[str, Any], i: int) -> list[str]:
    calls = message["tool_calls"]
    if not isinstance(calls, list):
        raise InvalidRequest(
            f"Invalid type for 'messages[{i}].tool_calls': expected an array.", f"messages[{i}].tool_calls"
        )
    ids: list[str] = []
    for j, call in enumerate(calls):
        where = f"messages[{i}].tool_calls[{j}]"
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            raise InvalidRequest(f"Missing required parameter: '{where}.id'.", f"{where}.id")
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"Missing required parameter: '{where}.function.name'.", f"{where}.function")
        if not isinstance(function.get("arguments"), str):
            raise InvalidRequest(
                f"Invalid type for '{where}.function.arguments': expected a string, but got "
                f"{type(function.get('arguments')).__name__} instead.",
                f"{where}.function.arguments",
                "invalid_type",
            )
        ids.append(call["id"])
    return ids


def _unanswered_error(ids: list[str], at: int) -> InvalidRequest:
    return InvalidRequest(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(ids)}",
        f"messages.[{at}].role",
    )


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise InvalidRequest("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") not in ("function", "custom"):
            raise InvalidRequest(f"Missing required parameter: 'tools[{i}].type'.", f"tools[{i}].type")
        if tool["type"] == "function":
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise InvalidRequest(
                    f"Missing required parameter: 'tools[{i}].function.name'.", f"tools[{i}].function.name"
                )


def last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(
                    part.get("text", "")
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
    return ""


class _Answer:
    """Everything one completion says, resolved from a Reply and the request."""

    def __init__(
        self, reply: Reply, body: dict[str, Any], quirks: Collection[str] = (), limit: int | None = None
    ) -> None:
        self.reply = reply
        self.quirks = quirks
        self.limit = limit  # output tokens: one per word of the text
        self.model = reply.model or body["model"]
        self.id = new_id("chatcmpl-")
        self.created = int(time.time())
        if reply.text is None and not reply.tool_calls:
            self.text: str | None = "echo: " + last_user_text(body["messages"])
        else:
            self.text = reply.text
        words = split_text(self.text or "", None)
        cut = limit is not None and len(words) > limit
        if cut:
            self.text = "".join(words[:limit])
        self.calls = [(cid, name, json.dumps(dict(args))) for cid, name, args in reply.tool_calls]
        self.finish_reason = reply.finish_reason or (
            "length" if cut else "tool_calls" if self.calls else "stop"
        )
        thinking = reply.thinking[0] if reply.thinking else ""
        self.reasoning = thinking or None
        self.usage = self._usage(body, thinking)

    def _usage(self, body: dict[str, Any], thinking: str) -> dict[str, Any]:
        reply = self.reply
        prompt = reply.input_tokens
        if prompt is None:
            prompt = estimate_tokens(body["messages"], body.get("tools") or [])
        completion = reply.output_tokens
        if completion is None:
            completion = estimate_tokens(self.text or "", thinking, [c[2] for c in self.calls])
            if self.limit is not None:
                completion = min(completion, self.limit)
        prompt_details: dict[str, int] = {"cached_tokens": reply.cache_read_tokens, "audio_tokens": 0}
        if reply.cache_write_tokens:
            prompt_details["cache_write_tokens"] = reply.cache_write_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {
                "reasoning_tokens": reply.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.text,
            "refusal": None,
            "annotations": [],
        }
        if self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        if self.calls:
            message["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in self.calls
            ]
        body = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
            ],
            "usage": self.usage,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        return quirky_body(body, self.quirks)

    def frames(self, include_usage: bool) -> list[bytes]:
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": "", "refusal": None}]
        if self.reasoning:
            deltas += [
                {"reasoning_content": piece} for piece in split_text(self.reasoning, self.reply.chunks)
            ]
        if self.text:
            deltas += [{"content": piece} for piece in split_text(self.text, self.reply.chunks)]
        for index, (cid, name, args) in enumerate(self.calls):
            # The first delta of a call carries its id and name; the arguments follow in fragments.
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": cid,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in split_text(args, self.reply.chunks or 3)
            ]
        chunks = [
            self._chunk([{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], include_usage)
            for d in deltas
        ]
        last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": self.finish_reason}
        chunks.append(self._chunk([last], include_usage))
        if include_usage:
            final = self._chunk([], False)
            final["usage"] = self.usage
            chunks.append(final)
        chunks = quirky_chunks(chunks, self.quirks, self.usage)
        return [b"data: " + compact_json(chunk) + b"\n\n" for chunk in chunks] + [b"data: [DONE]\n\n"]

    def _chunk(self, choices: list[dict[str, Any]], with_null_usage: bool) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if with_null_usage:
            chunk["usage"] = None
        return chunk


class OpenAIUpstream(FakeUpstream):
    """Serves ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/completions`` and ``/v1/models`` (also
    without the ``/v1`` prefix), and Azure's
    ``/openai/deployments/{deployment}/chat/completions``.

    ``ignore_include_usage=True`` behaves like llama.cpp: no usage chunk even when the client asks.
    ``quirks`` maps a model (or Azure deployment) name to the quirks of real compatible servers
    it shows (``openai_quirks``). Every model stops after ``max_completion_tokens`` (else
    ``max_tokens``) words of its text, with finish ``length``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("gpt-4o-mini", "gpt-4o"),
        ignore_include_usage: bool = False,
        quirks: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        super().__init__(api_key=api_key)
        self.models = list(models)
        self.ignore_include_usage = ignore_include_usage
        self.quirks = {model: frozenset(names) for model, names in (quirks or {}).items()}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._chat),
            web.post("/chat/completions", self._chat),
            web.get("/v1/models", self._models),
            web.get("/models", self._models),
            web.post("/v1/embeddings", partial(serve_embeddings, self)),
            web.post("/embeddings", partial(serve_embeddings, self)),
            web.post("/v1/completions", partial(serve_completions, self)),
            web.post("/completions", partial(serve_completions, self)),
            web.post("/openai/deployments/{deployment}/chat/completions", self._azure_chat),
        ]

    def error_response(self, status: int, message: str, *, error_type: str | None = None) -> web.Response:
        default_type, code, default_message = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Request failed.")
        )
        return self._error(
            status, error_body(message or default_message, error_type or default_type, None, code)
        )

    def _error(self, status: int, body: Any) -> web.Response:
        return web.Response(
            status=status,
            body=compact_json(body),
            headers={"content-type": "application/json", "x-request-id": new_id("req_")},
        )

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        header = request.headers.get("authorization", "")
        if not header:
            return self._error(
                401,
                error_body(
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error",
                ),
            )
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            shown = key.strip()[-4:]
            return self._error(
                401,
                error_body(
                    f"Incorrect API key provided: ...{shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    None,
                    "invalid_api_key",
                ),
            )
        return None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth_error(request)) is not None:
            return denied
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"} for m in self.models
        ]
        return web.Response(
            body=compact_json({"object": "list", "data": data}), headers={"content-type": "application/json"}
        )

    async def _azure_chat(self, request: web.Request) -> web.StreamResponse:
        """Azure OpenAI's route: the deployment in the path, an ``api-key`` header, ``api-version`` required."""
        if not request.query.get("api-version"):
            return self._error(404, {"error": {"code": "404", "message": "Resource not found"}})
        if self.api_key is not None and request.headers.get("api-key") != self.api_key:
            message = (
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                "valid key for an active subscription and use a correct regional API endpoint for your resource."
            )
            return self._error(401, {"error": {"code": "401", "message": message}})
        return await self._chat(request, authenticated=True)

    async def _chat(self, request: web.Request, *, authenticated: bool = False) -> web.StreamResponse:
        if not authenticated and (denied := self._auth_error(request)) is not None:
            return denied
        body = self.recorded(request).json
        try:
            validate_chat_request(body)
        except InvalidRequest as exc:
            return self._error(400, error_body(exc.message, "invalid_request_error", exc.param, exc.code))
        quirks = self.quirks.get(request.match_info.get("deployment") or body["model"], frozenset())
        try:
            limit = token_limit(body, quirks)
        except QuirkRefusal as exc:
            return self._error(400, error_body(exc.message, "invalid_request_error", exc.param))
        reply = self.take_reply()
        stream = body.get("stream") is True
        options = body.get("stream_options") or {}
        include_usage = (
            stream and isinstance(options, dict) and options.get("include_usage") is True
        ) and not self.ignore_include_usage
        answer = _Answer(reply, body, quirks, limit)
        message = reply.error_message or "The server had an error while processing your request."
        error_frame = b"data: " + compact_json(error_body(message, "server_error")) + b"\n\n"
        return await self.respond(
            request,
            reply,
            stream=stream,
            body=answer.completion,
            frames=lambda: answer.frames(include_usage),
            error_frame=error_frame,
            headers={"x-request-id": new_id("req_"), "openai-processing-ms": "1"},
        )
