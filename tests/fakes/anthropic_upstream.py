"""A fake Anthropic Messages server: the real event order, the real error JSON, the API's validation rules."""

from __future__ import annotations

import json
from collections.abc import Sequence
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

_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


_GENERATION_ONLY = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata")


class InvalidRequest(Exception):
    """A 400 ``invalid_request_error`` the real API would answer."""


def error_body(error_type: str, message: str) -> Any:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": new_id("req_")}


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: Input should be a valid list")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}.content.{j}.type: Field required")
    return content


def validate_messages_request(
    body: Any, *, strict_roles: bool = False, strict_alternation: bool = True, count_only: bool = False
) -> None:
    """Reject what the real API rejects and a translating gateway is likely to get wrong."""
    if not isinstance(body, dict):
        raise InvalidRequest("There was an issue with your request body: it must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    if not count_only:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise InvalidRequest("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be a valid integer greater than or equal to 1")
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Input should be a valid list")
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    system = body.get("system")
    if not _is_system_prompt(system):
        raise InvalidRequest("system: Input should be a valid string or a list of text blocks")
    _validate_turns(messages, strict_roles=strict_roles, strict_alternation=strict_alternation)
    _validate_tools(body.get("tools"))


def _is_system_prompt(system: Any) -> bool:
    if system is None or isinstance(system, str):
        return True
    return isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system
    )


def _validate_turns(messages: list[Any], *, strict_roles: bool, strict_alternation: bool) -> None:
    previous_role: str | None = None
    previous_tool_uses: list[str] = []
    previous_index = 0
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system" and not strict_roles:
            # Claude Code sends such entries and the API tolerates them; they take no part in turn order.
            continue
        if role == "system":
            raise InvalidRequest(
                f'{where}.role: Unexpected role "system". The Messages API accepts a top-level `system` '
                'parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'")
        blocks = _blocks(message.get("content"), where)
        if strict_alternation:
            if previous_role is None and role != "user":
                raise InvalidRequest('messages: first message must use the "user" role')
            if previous_role == role:
                raise InvalidRequest(
                    'messages: roles must alternate between "user" and "assistant", but found multiple '
                    f'"{role}" roles in a row'
                )
        results = [b.get("tool_use_id") for b in blocks if b["type"] == "tool_result"]
        for j, block in enumerate(blocks):
            if block["type"] == "tool_result" and block.get("tool_use_id") not in previous_tool_uses:
                raise InvalidRequest(
                    f"{where}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        missing = [t for t in previous_tool_uses if t not in results]
        if missing:
            raise InvalidRequest(
                f"messages.{previous_index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )
        previous_tool_uses = _assistant_tool_uses(blocks, where) if role == "assistant" else []
        previous_role = role
        previous_index = i


def _assistant_tool_uses(blocks: list[dict[str, Any]], where: str) -> list[str]:
    ids: list[str] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content.{j}"
        if block["type"] == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise InvalidRequest(f"{at}.tool_use.id: Field required")
            if not isinstance(block.get("input"), dict):
                raise InvalidRequest(f"{at}.tool_use.input: Input should be a valid dictionary")
            ids.append(block["id"])
        elif block["type"] == "thinking" and not (
            isinstance(block.get("signature"), str) and block["signature"]
        ):
            raise InvalidRequest(f"{at}.thinking.signature: Field required")
    return ids


def _validate_tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise InvalidRequest("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") in (None, "custom"):
            if not isinstance(tool.get("name"), str):
                raise InvalidRequest(f"tools.{i}.custom.name: Field required")
            if not isinstance(tool.get("input_schema"), dict):
                raise InvalidRequest(f"tools.{i}.custom.input_schema: Field required")


def last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [
                    b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
                ]
                if texts:
                    return "".join(texts)
    return ""


def count_input_tokens(body: dict[str, Any]) -> int:
    """The deterministic estimate both ``count_tokens`` and the default ``usage.input_tokens`` use."""
    return estimate_tokens(body.get("system") or "", body["messages"], body.get("tools") or [])


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + compact_json(data) + b"\n\n"


class _Answer:
    """Everything one Message says, resolved from a Reply and the request."""

    def __init__(self, reply: Reply, body: dict[str, Any]) -> None:
        self.reply = reply
        self.id = new_id("msg_")
        self.model = reply.model or body["model"]
        if reply.text is None and not reply.tool_calls:
            self.text: str | None = "echo: " + last_user_text(body["messages"])
        else:
            self.text = reply.text
        self.stop_reason = reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")
        self.input_tokens = reply.input_tokens if reply.input_tokens is not None else count_input_tokens(body)
        thinking = reply.thinking[0] if reply.thinking else ""
        self.output_tokens = reply.output_tokens
        if self.output_tokens is None:
            args = [json.dumps(dict(c[2])) for c in reply.tool_calls]
            self.output_tokens = estimate_tokens(self.text or "", thinking, args)

    def usage(self, output_tokens: int) -> dict[str, Any]:
        reply = self.reply
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "cache_read_input_tokens": reply.cache_read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": reply.cache_write_tokens - reply.cache_write_1h_tokens,
                "ephemeral_1h_input_tokens": reply.cache_write_1h_tokens,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if reply.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": min(reply.reasoning_tokens, output_tokens)}
        return usage

    def content(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.reply.thinking is not None:
            thinking, signature = self.reply.thinking
            blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
        if self.text or (self.text is not None and not self.reply.tool_calls):
            blocks.append({"type": "text", "text": self.text})
        for cid, name, args in self.reply.tool_calls:
            blocks.append({"type": "tool_use", "id": cid, "name": name, "input": dict(args)})
        return blocks

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content(),
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": self.usage(self.output_tokens or 0),
        }

    def frames(self, full_delta_usage: bool) -> list[bytes]:
        output_tokens = self.output_tokens or 0
        start_usage = self.usage(min(1, output_tokens))
        start_usage.pop("output_tokens_details", None)  # known once the answer is done
        start = {**self.message(), "content": [], "stop_reason": None, "usage": start_usage}
        frames = [_event("message_start", {"type": "message_start", "message": start})]
        frames.append(_event("ping", {"type": "ping"}))
        for index, block in enumerate(self.content()):
            frames += self._block_frames(index, block)
        usage: dict[str, Any] = {"output_tokens": output_tokens}
        if full_delta_usage:
            full = self.usage(output_tokens)
            usage = {
                k: full[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            }
            usage["output_tokens"] = output_tokens
        if self.reply.reasoning_tokens:
            usage["output_tokens_details"] = {
                "thinking_tokens": min(self.reply.reasoning_tokens, output_tokens)
            }
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        frames.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        frames.append(_event("message_stop", {"type": "message_stop"}))
        return frames

    def _block_frames(self, index: int, block: dict[str, Any]) -> list[bytes]:
        parts = self.reply.chunks
        if block["type"] == "thinking":
            opening: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in split_text(block["thinking"], parts)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], parts)]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            # The API opens every tool input with an empty fragment; gateways must not choke on it.
            pieces = ["", *split_text(json.dumps(block["input"]), parts or 3)]
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        frames = [
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        ]
        frames += [
            _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})
            for d in deltas
        ]
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        return frames


class AnthropicUpstream(FakeUpstream):
    """Serves ``/v1/messages``, ``/v1/messages/count_tokens`` and ``/v1/models``. A count takes its
    reply from the script too, and only that reply's error status matters; like the real API it refuses
    generation fields (``max_tokens``, ``stream``, sampling, ``metadata``).

    ``strict_roles`` rejects a ``system`` role inside ``messages``; ``strict_alternation`` (default on)
    rejects consecutive turns of one role; ``full_delta_usage`` repeats input and cache counts in
    ``message_delta`` as newer API versions do. Keys are accepted from ``x-api-key`` or Bearer auth.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] = ("claude-sonnet-4-6", "claude-haiku-4-5"),
        strict_roles: bool = False,
        strict_alternation: bool = True,
        full_delta_usage: bool = False,
    ) -> None:
        super().__init__(api_key=api_key)
        self.models = list(models)
        self.strict_roles = strict_roles
        self.strict_alternation = strict_alternation
        self.full_delta_usage = full_delta_usage

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self._messages),
            web.post("/v1/messages/count_tokens", self._count_tokens),
            web.get("/v1/models", self._models),
        ]

    def error_response(self, status: int, message: str, *, error_type: str | None = None) -> web.Response:
        default_type, default_message = _ERROR_TYPES.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "Request failed.")
        )
        return web.Response(
            status=status,
            body=compact_json(error_body(error_type or default_type, message or default_message)),
            headers={"content-type": "application/json", "request-id": new_id("req_")},
        )

    def _rejection(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None:
            key = request.headers.get("x-api-key")
            if key is None:
                scheme, _, token = request.headers.get("authorization", "").partition(" ")
                key = token.strip() if scheme.lower() == "bearer" else None
            if key is None:
                return self.error_response(401, "x-api-key header is required")
            if key != self.api_key:
                return self.error_response(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self.error_response(400, "anthropic-version: header is required")
        return None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if (rejected := self._rejection(request)) is not None:
            return rejected
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m,
                "created_at": "2025-01-01T00:00:00Z",
                "lifecycle": "active",
            }
            for m in self.models
        ]
        page = {
            "data": data,
            "has_more": False,
            "first_id": self.models[0] if self.models else None,
            "last_id": self.models[-1] if self.models else None,
        }
        return web.Response(body=compact_json(page), headers={"content-type": "application/json"})

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        if (rejected := self._rejection(request)) is not None:
            return rejected
        body = self.recorded(request).json
        try:
            validate_messages_request(
                body,
                strict_roles=self.strict_roles,
                strict_alternation=self.strict_alternation,
                count_only=True,
            )
            # Counting takes the prompt only: the API refuses generation settings.
            for name in _GENERATION_ONLY:
                if name in body:
                    raise InvalidRequest(f"{name}: Extra inputs are not permitted")
        except InvalidRequest as exc:
            return self.error_response(400, str(exc))
        reply = self.take_reply()  # a scripted error status applies to counting too
        if reply.status >= 400:
            return self.scripted_error(reply)
        return web.Response(
            body=compact_json({"input_tokens": count_input_tokens(body)}),
            headers={"content-type": "application/json"},
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if (rejected := self._rejection(request)) is not None:
            return rejected
        body = self.recorded(request).json
        try:
            validate_messages_request(
                body, strict_roles=self.strict_roles, strict_alternation=self.strict_alternation
            )
        except InvalidRequest as exc:
            return self.error_response(400, str(exc))
        reply = self.take_reply()
        answer = _Answer(reply, body)
        error = {"type": "overloaded_error", "message": reply.error_message or "Overloaded"}
        error_frame = _event("error", {"type": "error", "error": error})
        return await self.respond(
            request,
            reply,
            stream=body.get("stream") is True,
            body=answer.message,
            frames=lambda: answer.frames(self.full_delta_usage),
            error_frame=error_frame,
            headers={"request-id": new_id("req_")},
        )
