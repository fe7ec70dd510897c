"""Canonical ``ChatRequest`` -> Anthropic Messages request body for an upstream.

A request that came in as Anthropic is forwarded as received (``model`` and ``stream`` set, and
the fields a policy stage edited re-encoded: ``core.passthrough``), so fields we do not model
survive. Otherwise the body is built from the canonical request, respecting what the API
enforces:

* every system message (even one in mid-conversation) is hoisted into the top-level ``system``;
* consecutive messages of one role are merged (the API wants alternation), empty text blocks and
  then empty messages are dropped, and in a user message tool results come first;
* tool ids are made to match ``^[a-zA-Z0-9_-]+$`` (the same rewrite for calls and results);
* a thinking block without a signature cannot be replayed and is dropped;
* with thinking enabled, ``temperature`` and ``top_k`` are dropped, ``top_p`` is kept only in
  [0.95, 1], and ``max_tokens`` is raised above ``budget_tokens`` when needed; a forced tool
  choice (``any``/``tool``) cannot be combined with thinking, so thinking is dropped then, as it
  is when the last assistant turn of a tool loop does not start with a (signed) thinking block;
* with thinking off, thinking blocks are removed from a final (prefill) assistant turn;
* ``temperature`` and ``top_p`` together are refused by current models: ``top_p`` is dropped;
  a temperature above 1 (OpenAI's scale reaches 2) is clamped to 1.

Reasoning effort without a budget (OpenAI's ``reasoning_effort``) becomes a thinking budget:
minimal 1024, low 2048, medium 8192, high 24576, xhigh/max 32768 tokens; ``none`` disables
thinking. Adaptive thinking keeps its effort in ``output_config.effort``.

``json_schema`` response formats use ``output_config.format`` (structured outputs);
``json_object`` has no equivalent and becomes a system instruction to answer with one JSON object.
Everything dropped or approximated is returned as notes beside the body (``Encoded.dropped``).
"""

from __future__ import annotations

import re
from typing import Any

from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from waypost.wire.anthropic.mapping import safe_tool_id
from waypost.wire.conventions import (
    GEMINI_SIGNATURE_PREFIX as GEMINI_SIGNATURE,
)
from waypost.wire.conventions import (
    JSON_OBJECT_INSTRUCTION,
    claude_sampling,
    thinking_budget,
)
from waypost.wire.conventions import (
    OPENAI_REASONING_PREFIX as OPENAI_SIGNATURE,
)
from waypost.wire.encoded import Encoded, passthrough_body

# The Messages body fields that carry each canonical field: what the fast path re-encodes for a
# stage's edit. Canonical fields the Messages API has no place for have none.
PASSTHROUGH_FIELDS: dict[str, tuple[str, ...]] = {
    "messages": ("system", "messages"),
    "max_tokens": ("max_tokens",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "stop": ("stop_sequences",),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "thinking": ("thinking", "output_config"),
    "response_format": ("output_config",),
    "user": ("metadata",),
}
_ANTHROPIC_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_DATA_URL = re.compile(r"^data:(?P<mt>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,(?P<data>.*)$", re.DOTALL)


def encode_request(req: ChatRequest, model: str, *, stream: bool, default_max_tokens: int = 4096) -> Encoded:
    """The body to POST to an Anthropic ``/v1/messages`` upstream for ``req``."""
    passthrough = req.passthrough
    if req.source_format == "anthropic" and passthrough is not None:
        body = passthrough_body(
            passthrough, PASSTHROUGH_FIELDS, lambda: _Encoder(req).build(model, stream, default_max_tokens)
        )
        body["model"] = model
        body["stream"] = stream
        return Encoded(body)
    encoder = _Encoder(req)
    body = encoder.build(model, stream, default_max_tokens)
    return Encoded(body, tuple(encoder.notes))


class _Encoder:
    __slots__ = ("notes", "req")

    def __init__(self, req: ChatRequest) -> None:
        self.req = req
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def build(self, model: str, stream: bool, default_max_tokens: int) -> dict[str, Any]:
        req = self.req
        body: dict[str, Any] = {"model": model}
        system, messages = self.conversation()
        if req.response_format is not None and req.response_format.type == "json_object":
            system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
            self.note("json_object response format approximated by a system instruction")
        if system:
            body["system"] = system
        body["messages"] = messages
        body["max_tokens"] = default_max_tokens if req.max_tokens is None else req.max_tokens
        body["stream"] = stream

        if req.stop:
            body["stop_sequences"] = list(req.stop)
        if req.user:
            body["metadata"] = {"user_id": req.user}
        forced_tool = self.tools(body)
        thinking_on = self.thinking(body, default_max_tokens, forced_tool=forced_tool)
        if not thinking_on:
            self.strip_final_thinking(body)
        self.sampling(body, thinking_on)
        if req.response_format is not None and req.response_format.type == "json_schema":
            if req.response_format.schema is not None:
                body.setdefault("output_config", {})["format"] = {
                    "type": "json_schema",
                    "schema": req.response_format.schema,
                }
            else:
                self.note("json_schema response format without a schema dropped")
        for field_name in ("seed", "presence_penalty", "frequency_penalty"):
            if getattr(req, field_name) is not None:
                self.note(f"{field_name} dropped (no Anthropic equivalent)")
        return body

    # -- messages ---------------------------------------------------------------------------

    def conversation(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        system: list[dict[str, Any]] = []
        turns: list[dict[str, Any]] = []
        seen_turn = False
        for message in self.req.messages:
            if message.role == "system":
                if seen_turn:
                    self.note("a system message inside the conversation was moved to the system prompt")
                system += self.system_blocks(message)
                continue
            seen_turn = True
            if message.name:
                self.note("message names dropped")
            blocks = self.blocks(message)
            if not blocks:
                self.note(f"an empty {message.role} message dropped")
                continue
            if turns and turns[-1]["role"] == message.role:
                turns[-1]["content"] += blocks
            else:
                turns.append({"role": message.role, "content": blocks})
        for turn in turns:
            if turn["role"] == "user":
                # The API wants the answers to the previous turn's tool calls before anything else.
                results = [b for b in turn["content"] if b["type"] == "tool_result"]
                others = [b for b in turn["content"] if b["type"] != "tool_result"]
                turn["content"] = results + others
        return system, turns

    def system_blocks(self, message: Message) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                if part.text:
                    out.append(_text_block(part))
            else:
                self.note(f"{part.kind} content in a system message dropped")
        return out

    def blocks(self, message: Message) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in message.content:
            block = self.block(part, message.role)
            if block is not None:
                out.append(block)
        return out

    def block(self, part: Part, role: str) -> dict[str, Any] | None:
        if isinstance(part, TextPart):
            # The API rejects empty text blocks; OpenAI clients send "" beside tool calls.
            return _text_block(part) if part.text else None
        if isinstance(part, ImagePart):
            return self.image(part)
        if isinstance(part, DocumentPart):
            return self.document(part)
        if isinstance(part, ToolCallPart):
            return {
                "type": "tool_use",
                "id": safe_tool_id(part.id),
                "name": part.name,
                "input": self.tool_input(part),
            }
        if isinstance(part, ToolResultPart):
            return self.tool_result(part)
        if part.redacted:
            if part.data:
                return {"type": "redacted_thinking", "data": part.data}
            self.note("redacted thinking without data dropped")
            return None
        if part.signature and part.signature.startswith((GEMINI_SIGNATURE, OPENAI_SIGNATURE)):
            # Signed by Gemini or OpenAI (a conversation that moved across providers): Anthropic
            # would refuse it.
            origin = "Gemini" if part.signature.startswith(GEMINI_SIGNATURE) else "OpenAI"
            self.note(f"thinking signed by another provider ({origin}) dropped")
            return None
        if part.signature:
            return {"type": "thinking", "thinking": part.text, "signature": part.signature}
        if role == "assistant":
            self.note("thinking without a signature dropped (Anthropic only accepts signed thinking)")
        else:
            self.note("thinking content in a user message dropped")
        return None

    def tool_input(self, part: ToolCallPart) -> dict[str, Any]:
        value, problem = part.input_object()
        if problem:
            self.note(f"tool call {part.id!r} {problem}; sent as {{}}")
        return value

    def image(self, part: ImagePart) -> dict[str, Any] | None:
        source: dict[str, Any]
        if part.data:
            source = {"type": "base64", "media_type": part.media_type or "image/png", "data": part.data}
            if not part.media_type:
                self.note("an inline image without a media type was sent as image/png")
        elif part.url:
            match = _DATA_URL.match(part.url)
            if match:
                media_type = match.group("mt") or "image/png"
                source = {"type": "base64", "media_type": media_type, "data": match.group("data")}
            else:
                source = {"type": "url", "url": part.url}
        else:
            self.note("an image without data or url dropped")
            return None
        if part.detail:
            self.note("image detail dropped")
        block: dict[str, Any] = {"type": "image", "source": source}
        if part.cache_control:
            block["cache_control"] = part.cache_control
        return block

    def document(self, part: DocumentPart) -> dict[str, Any] | None:
        source: dict[str, Any]
        if part.data:
            source = {"type": "base64", "media_type": part.media_type or "application/pdf", "data": part.data}
        elif part.text is not None:
            source = {"type": "text", "media_type": "text/plain", "data": part.text}
        elif part.url:
            source = {"type": "url", "url": part.url}
        else:
            self.note("a document without data, text or url dropped")
            return None
        block: dict[str, Any] = {"type": "document", "source": source}
        title = part.title or part.filename
        if title:
            block["title"] = title
        if part.cache_control:
            block["cache_control"] = part.cache_control
        return block

    def tool_result(self, part: ToolResultPart) -> dict[str, Any]:
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": safe_tool_id(part.tool_call_id)}
        content: list[dict[str, Any]] = []
        for item in part.content:
            inner = self.block(item, "user")
            if inner is not None:
                content.append(inner)
        if content:
            block["content"] = content
        if part.is_error:
            block["is_error"] = True
        if part.cache_control:
            block["cache_control"] = part.cache_control
        return block

    # -- tools and options ------------------------------------------------------------------

    def tools(self, body: dict[str, Any]) -> bool:
        """Set ``tools`` and ``tool_choice``; answer whether the choice forces a tool call."""
        req = self.req
        if req.tools:
            tools: list[dict[str, Any]] = []
            for tool in req.tools:
                entry: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    entry["description"] = tool.description
                entry["input_schema"] = tool.parameters or {"type": "object", "properties": {}}
                if tool.cache_control:
                    entry["cache_control"] = tool.cache_control
                if tool.strict:
                    self.note("strict tool schemas dropped")
                tools.append(entry)
            body["tools"] = tools
        choice = req.tool_choice
        if choice is None:
            return False
        if not req.tools:
            if choice.mode != "none":
                self.note("tool_choice without tools dropped")
            return False
        encoded: dict[str, Any]
        if choice.mode == "none":
            encoded = {"type": "none"}
        elif choice.mode == "required":
            encoded = {"type": "any"}
        elif choice.mode == "tool" and choice.name:
            encoded = {"type": "tool", "name": choice.name}
        else:
            encoded = {"type": "auto"}
        if choice.parallel is False and encoded["type"] != "none":
            encoded["disable_parallel_tool_use"] = True
        body["tool_choice"] = encoded
        return encoded["type"] in ("any", "tool")

    def thinking(self, body: dict[str, Any], default_max_tokens: int, *, forced_tool: bool) -> bool:
        """Set ``thinking`` (and effort); answer whether thinking is enabled."""
        thinking = self.req.thinking
        if thinking is None:
            return False
        effort = thinking.effort
        if not thinking.enabled or effort == "none":
            body["thinking"] = {"type": "disabled"}
            return False
        if forced_tool:
            self.note("thinking dropped: Anthropic refuses it with a forced tool choice")
            return False
        if _last_turn_lacks_thinking(body["messages"]):
            self.note("thinking dropped: the last assistant turn has no thinking block to continue from")
            return False
        if thinking.adaptive and thinking.budget_tokens is None:
            body["thinking"] = {"type": "adaptive"}
            if effort in _ANTHROPIC_EFFORTS:
                body.setdefault("output_config", {})["effort"] = effort
            elif effort:
                self.note(f"reasoning effort {effort!r} dropped (no Anthropic equivalent)")
            return True
        budget = thinking_budget(thinking, self.note)
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if body["max_tokens"] <= budget:
            body["max_tokens"] = budget + default_max_tokens
            self.note(f"max_tokens raised to {body['max_tokens']} to exceed the thinking budget")
        return True

    def strip_final_thinking(self, body: dict[str, Any]) -> None:
        """With thinking off, the API refuses thinking blocks in a final (prefill) assistant turn."""
        messages = body["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            return
        turn = messages[-1]
        kept = [b for b in turn["content"] if b["type"] not in ("thinking", "redacted_thinking")]
        if len(kept) == len(turn["content"]):
            return
        self.note("thinking blocks dropped from the final assistant turn (thinking is off)")
        if kept:
            turn["content"] = kept
        else:
            messages.pop()

    def sampling(self, body: dict[str, Any], thinking_on: bool) -> None:
        temperature, top_p, top_k = claude_sampling(
            self.req, thinking_on=thinking_on, temperature_and_top_p=False, note=self.note
        )
        if temperature is not None:
            body["temperature"] = temperature
        if top_p is not None:
            body["top_p"] = top_p
        if top_k is not None:
            body["top_k"] = top_k


def _last_turn_lacks_thinking(messages: list[dict[str, Any]]) -> bool:
    """With thinking on, the API wants the last assistant turn to start with a thinking block when
    it is the final message or is answered only by tool results (a tool loop in progress).
    Conversations from other formats rarely carry signed thinking, so thinking is turned off then."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
    if last is None:
        return False
    final = last == len(messages) - 1
    in_tool_loop = not final and any(b["type"] == "tool_result" for b in messages[-1]["content"])
    if not (final or in_tool_loop):
        return False
    return messages[last]["content"][0]["type"] not in ("thinking", "redacted_thinking")


def _text_block(part: TextPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.cache_control:
        block["cache_control"] = part.cache_control
    return block
