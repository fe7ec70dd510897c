"""Canonical ``ChatRequest`` -> Bedrock Converse request body (``POST /model/{id}/converse``).

What Bedrock enforces, and how the translation meets it:

* ``system`` is a list of ``{text}`` blocks; system messages anywhere in the conversation are
  hoisted there. Consecutive messages of one role are merged, empty and blank text blocks are
  dropped (Bedrock rejects blank text), and tool results come first in a user turn.
* Images and documents travel as bytes (base64 in JSON). Image URLs cannot be sent (Bedrock
  never fetches URLs, and neither do we): they are dropped with a note.
* ``cache_control`` on a block, a system text or a tool becomes a ``cachePoint`` right after it.
* Tool ids are made to match ``[a-zA-Z0-9_.:-]{1,64}`` (the same rewrite for calls and results).
  History with tool blocks needs a ``toolConfig``: with no tools declared, the tools named in the
  history are declared with an open schema. ``toolChoice`` has no ``none``: the tools are withheld
  instead, unless the history needs them.
* ``inferenceConfig`` carries maxTokens, temperature (at most 1), topP and stop sequences.
  Model-specific fields go in ``additionalModelRequestFields``: ``top_k`` and ``thinking`` for
  Anthropic models (with the same rules as the Anthropic API: no temperature or top_k while
  thinking, maxTokens above the budget, no thinking with a forced tool), ``inferenceConfig.topK``
  for Amazon Nova, ``top_k`` for Mistral; elsewhere they are dropped with a note.
* ``json_schema`` response formats use ``outputConfig.textFormat``; ``json_object`` becomes a
  system instruction.

Everything dropped or approximated is returned as notes beside the body (``Encoded.dropped``).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson

from waypost.core.types import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from waypost.wire.bedrock.mapping import Family, model_family, safe_tool_use_id
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
from waypost.wire.encoded import Encoded

IMAGE_FORMATS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS: dict[str, str] = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_DATA_URL = re.compile(r"^data:(?P<mt>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,(?P<data>.*)$", re.DOTALL)
# Document names may hold letters, digits, single spaces, hyphens, parentheses and brackets.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9\s()\[\]-]+")
_OPEN_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

Block = dict[str, Any]


def encode_request(req: ChatRequest, model: str, *, default_max_tokens: int = 4096) -> Encoded:
    """The Converse body for ``req`` (the model id goes in the URL, not the body)."""
    encoder = _Encoder(req, model_family(model))
    body = encoder.build(default_max_tokens)
    return Encoded(body, tuple(encoder.notes))


def count_tokens_body(req: ChatRequest, model: str) -> Encoded:
    """The CountTokens body: the parts of the Converse request that make up the input."""
    body, dropped = encode_request(req, model)
    converse: dict[str, Any] = {k: body[k] for k in ("messages", "system", "toolConfig") if k in body}
    thinking = body.get("additionalModelRequestFields", {}).get("thinking")
    if thinking is not None:
        converse["additionalModelRequestFields"] = {"thinking": thinking}
    return Encoded({"input": {"converse": converse}}, dropped)


def _cache_point(cache_control: dict[str, Any]) -> Block:
    point: dict[str, Any] = {"type": "default"}
    ttl = cache_control.get("ttl")
    if ttl in ("5m", "1h"):
        point["ttl"] = ttl
    return {"cachePoint": point}


class _Encoder:
    __slots__ = ("doc_names", "family", "notes", "req")

    def __init__(self, req: ChatRequest, family: Family) -> None:
        self.req = req
        self.family = family
        self.notes: list[str] = []
        self.doc_names: set[str] = set()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def build(self, default_max_tokens: int) -> dict[str, Any]:
        req = self.req
        body: dict[str, Any] = {}
        system, messages = self.conversation()
        if req.response_format is not None and req.response_format.type == "json_object":
            system.append({"text": JSON_OBJECT_INSTRUCTION})
            self.note("json_object response format approximated by a system instruction")
        body["messages"] = messages
        if system:
            body["system"] = system
        inference: dict[str, Any] = {}
        if req.max_tokens is not None:
            inference["maxTokens"] = req.max_tokens
        elif self.family == "anthropic":
            inference["maxTokens"] = default_max_tokens
        fields: dict[str, Any] = {}
        forced_tool = self.tools(body)
        thinking_on = self.thinking(body, inference, fields, default_max_tokens, forced_tool=forced_tool)
        if not thinking_on and self.family == "anthropic":
            self.strip_final_reasoning(messages)
        self.sampling(inference, fields, thinking_on)
        stops = [s for s in req.stop if s]
        if stops:
            inference["stopSequences"] = stops
            if self.family == "anthropic":
                # Converse does not say which sequence matched; Anthropic models can tell.
                body["additionalModelResponseFieldPaths"] = ["/stop_sequence"]
        if inference:
            body["inferenceConfig"] = inference
        if fields:
            body["additionalModelRequestFields"] = fields
        self.response_format(body)
        for name in ("seed", "presence_penalty", "frequency_penalty"):
            if getattr(req, name) is not None:
                self.note(f"{name} dropped (no Bedrock Converse equivalent)")
        if req.user:
            self.note("user dropped (no Bedrock Converse equivalent)")
        return body

    # -- messages ---------------------------------------------------------------------------

    def conversation(self) -> tuple[list[Block], list[dict[str, Any]]]:
        system: list[Block] = []
        turns: list[dict[str, Any]] = []
        units: list[list[list[Block]]] = []  # per turn: blocks, each with its trailing cachePoint
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
            blocks = [unit for part in message.content if (unit := self.unit(part, message.role))]
            if not blocks:
                self.note(f"an empty {message.role} message dropped")
                continue
            if turns and turns[-1]["role"] == message.role:
                units[-1] += blocks
            else:
                turns.append({"role": message.role, "content": []})
                units.append(blocks)
        for turn, turn_units in zip(turns, units, strict=True):
            if turn["role"] == "user":
                # Answers to the previous turn's tool calls come before anything else.
                turn_units.sort(key=lambda unit: "toolResult" not in unit[0])
            turn["content"] = [block for unit in turn_units for block in unit]
        return system, turns

    def system_blocks(self, message: Message) -> list[Block]:
        out: list[Block] = []
        for part in message.content:
            if isinstance(part, TextPart):
                if part.text.strip():
                    out.append({"text": part.text})
                    if part.cache_control:
                        out.append(_cache_point(part.cache_control))
            else:
                self.note(f"{part.kind} content in a system message dropped")
        return out

    def unit(self, part: Part, role: str) -> list[Block]:
        """The block for ``part`` followed by its cache point, or nothing when it is dropped."""
        block = self.block(part, role)
        if block is None:
            return []
        cache_control = getattr(part, "cache_control", None)
        return [block, _cache_point(cache_control)] if cache_control else [block]

    def block(self, part: Part, role: str) -> Block | None:
        if isinstance(part, TextPart):
            return {"text": part.text} if part.text.strip() else None
        if isinstance(part, ImagePart):
            return self.image(part)
        if isinstance(part, DocumentPart):
            return self.document(part)
        if isinstance(part, ToolCallPart):
            return {
                "toolUse": {
                    "toolUseId": safe_tool_use_id(part.id),
                    "name": part.name,
                    "input": self.tool_input(part),
                }
            }
        if isinstance(part, ToolResultPart):
            return self.tool_result(part)
        return self.reasoning(part, role)

    def reasoning(self, part: ThinkingPart, role: str) -> Block | None:
        if role != "assistant":
            self.note("thinking content in a user message dropped")
            return None
        if part.redacted:
            if part.data:
                return {"reasoningContent": {"redactedContent": part.data}}
            self.note("redacted thinking without data dropped")
            return None
        if part.signature and part.signature.startswith((GEMINI_SIGNATURE, OPENAI_SIGNATURE)):
            origin = "Gemini" if part.signature.startswith(GEMINI_SIGNATURE) else "OpenAI"
            self.note(f"reasoning signed by another provider ({origin}) dropped")
            return None
        if part.signature:
            return {"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}}
        self.note("thinking without a signature dropped (Bedrock only accepts signed reasoning)")
        return None

    def tool_input(self, part: ToolCallPart) -> dict[str, Any]:
        value, problem = part.input_object()
        if problem:
            self.note(f"tool call {part.id!r} {problem}; sent as {{}}")
        return value

    def image(self, part: ImagePart) -> Block | None:
        data, media_type = part.data, part.media_type
        if not data and part.url:
            match = _DATA_URL.match(part.url)
            if not match:
                self.note("image URLs dropped (Bedrock takes image bytes only)")
                return None
            data, media_type = match.group("data"), match.group("mt")
        if not data:
            self.note("an image without data dropped")
            return None
        fmt = IMAGE_FORMATS.get((media_type or "image/png").lower())
        if fmt is None:
            self.note(f"an image of type {media_type} dropped (Bedrock takes png, jpeg, gif and webp)")
            return None
        if part.detail:
            self.note("image detail dropped")
        return {"image": {"format": fmt, "source": {"bytes": data}}}

    def document(self, part: DocumentPart) -> Block | None:
        if part.data:
            media_type = (part.media_type or "application/pdf").lower()
            fmt = DOCUMENT_FORMATS.get(media_type)
            if fmt is None:
                self.note(f"a document of type {media_type} dropped (not a Bedrock document format)")
                return None
            data = part.data
        elif part.text is not None:
            fmt, data = "txt", base64.b64encode(part.text.encode()).decode("ascii")
        else:
            self.note("documents given by URL or file id dropped (Bedrock takes document bytes only)")
            return None
        return {"document": {"format": fmt, "name": self.document_name(part), "source": {"bytes": data}}}

    def document_name(self, part: DocumentPart) -> str:
        raw = part.title or part.filename or ""
        name = " ".join(_NAME_UNSAFE.sub(" ", raw).split())[:200] or f"document {len(self.doc_names) + 1}"
        # Names identify documents to the model, so each must be distinct.
        unique, n = name, 2
        while unique in self.doc_names:
            unique = f"{name[:190]} ({n})"
            n += 1
        self.doc_names.add(unique)
        return unique

    def tool_result(self, part: ToolResultPart) -> Block:
        content: list[Block] = []
        for item in part.content:
            if isinstance(item, TextPart):
                if item.text:
                    content.append({"text": item.text})
                continue
            inner = self.image(item) if isinstance(item, ImagePart) else self.document(item)
            if inner is not None:
                content.append(inner)
        if not content:
            # Bedrock requires content and rejects blank text; an empty object says "nothing".
            content.append({"json": {}})
        result: dict[str, Any] = {"toolUseId": safe_tool_use_id(part.tool_call_id), "content": content}
        if part.is_error:
            result["status"] = "error"
        return {"toolResult": result}

    # -- tools and options ------------------------------------------------------------------

    def tools(self, body: dict[str, Any]) -> bool:
        """Set ``toolConfig``; answer whether the choice forces a tool call."""
        req = self.req
        choice = req.tool_choice
        history_names = _tool_names_in(body["messages"])
        history_needs_tools = bool(history_names) or _has_tool_results(body["messages"])
        if choice is not None and choice.mode == "none" and req.tools:
            if not history_needs_tools:
                self.note("tools withheld for tool_choice none (Bedrock has no none choice)")
                return False
            self.note("tool_choice none sent as auto (Bedrock has no none choice)")
        specs: list[Block] = []
        for tool in req.tools:
            spec: dict[str, Any] = {"name": tool.name}
            if tool.description:
                spec["description"] = tool.description
            spec["inputSchema"] = {"json": tool.parameters or _OPEN_SCHEMA}
            if tool.strict:
                spec["strict"] = True
            specs.append({"toolSpec": spec})
            if tool.cache_control:
                specs.append(_cache_point(tool.cache_control))
        if not specs and history_needs_tools:
            # Bedrock refuses tool blocks without a toolConfig; declare what the history used.
            for name in history_names or ["tool"]:
                specs.append({"toolSpec": {"name": name, "inputSchema": {"json": _OPEN_SCHEMA}}})
            self.note("tools used in the history were declared for Bedrock, which requires a toolConfig")
        if not specs:
            if choice is not None and choice.mode not in ("none", "auto"):
                self.note("tool_choice without tools dropped")
            return False
        config: dict[str, Any] = {"tools": specs}
        forced = False
        if req.tools and choice is not None:
            if choice.mode == "required":
                config["toolChoice"] = {"any": {}}
                forced = True
            elif choice.mode == "tool" and choice.name:
                config["toolChoice"] = {"tool": {"name": choice.name}}
                forced = True
            elif choice.mode == "auto":
                config["toolChoice"] = {"auto": {}}
            if choice.parallel is False:
                self.note(
                    "parallel_tool_calls false dropped (Bedrock Converse cannot disable parallel calls)"
                )
        body["toolConfig"] = config
        return forced

    def thinking(
        self,
        body: dict[str, Any],
        inference: dict[str, Any],
        fields: dict[str, Any],
        default_max_tokens: int,
        *,
        forced_tool: bool,
    ) -> bool:
        """Set the thinking configuration; answer whether thinking is on."""
        thinking = self.req.thinking
        if thinking is None or not thinking.enabled or thinking.effort == "none":
            return False
        if self.family != "anthropic":
            self.note("thinking dropped (on Bedrock only Anthropic models take a thinking configuration)")
            return False
        if forced_tool:
            self.note("thinking dropped: Anthropic models refuse it with a forced tool choice")
            return False
        if _last_turn_lacks_reasoning(body["messages"]):
            self.note("thinking dropped: the last assistant turn has no thinking block to continue from")
            return False
        effort = thinking.effort
        if thinking.adaptive and thinking.budget_tokens is None:
            fields["thinking"] = {"type": "adaptive"}
            if effort in _EFFORTS:
                body["outputConfig"] = {"effort": effort}
            elif effort:
                self.note(f"reasoning effort {effort!r} dropped (no Bedrock equivalent)")
            return True
        budget = thinking_budget(thinking, self.note)
        fields["thinking"] = {"type": "enabled", "budget_tokens": budget}
        max_tokens = inference.get("maxTokens", default_max_tokens)
        if max_tokens <= budget:
            inference["maxTokens"] = budget + default_max_tokens
            self.note(f"max_tokens raised to {inference['maxTokens']} to exceed the thinking budget")
        return True

    def strip_final_reasoning(self, messages: list[dict[str, Any]]) -> None:
        """With thinking off, reasoning blocks in a final (prefill) assistant turn are refused."""
        if not messages or messages[-1]["role"] != "assistant":
            return
        turn = messages[-1]
        kept = [b for b in turn["content"] if "reasoningContent" not in b]
        if len(kept) == len(turn["content"]):
            return
        self.note("thinking blocks dropped from the final assistant turn (thinking is off)")
        if any("cachePoint" not in b for b in kept):
            turn["content"] = kept
        else:
            messages.pop()

    def sampling(self, inference: dict[str, Any], fields: dict[str, Any], thinking_on: bool) -> None:
        temperature, top_p, top_k = claude_sampling(
            self.req,
            thinking_on=thinking_on,
            temperature_and_top_p=self.family != "anthropic",
            note=self.note,
        )
        if temperature is not None:
            inference["temperature"] = temperature
        if top_p is not None:
            inference["topP"] = top_p
        if top_k is None:
            return
        if self.family in ("anthropic", "mistral"):
            fields["top_k"] = top_k
        elif self.family == "nova":
            fields["inferenceConfig"] = {"topK": top_k}
        else:
            self.note("top_k dropped (not known to be accepted by this Bedrock model)")

    def response_format(self, body: dict[str, Any]) -> None:
        fmt = self.req.response_format
        if fmt is None or fmt.type != "json_schema":
            return
        if fmt.schema is None:
            self.note("json_schema response format without a schema dropped")
            return
        schema: dict[str, Any] = {"schema": orjson.dumps(fmt.schema).decode()}
        if fmt.name:
            schema["name"] = fmt.name
        output = body.setdefault("outputConfig", {})
        output["textFormat"] = {"type": "json_schema", "structure": {"jsonSchema": schema}}


def _tool_names_in(messages: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for turn in messages:
        for block in turn["content"]:
            use = block.get("toolUse")
            if use is not None and use["name"] not in names:
                names.append(use["name"])
    return names


def _has_tool_results(messages: list[dict[str, Any]]) -> bool:
    return any("toolResult" in block for turn in messages for block in turn["content"])


def _last_turn_lacks_reasoning(messages: list[dict[str, Any]]) -> bool:
    """With thinking on, the last assistant turn must start with reasoning when it is the final
    message or is answered only by tool results (a tool loop in progress)."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
    if last is None:
        return False
    final = last == len(messages) - 1
    in_tool_loop = not final and any("toolResult" in b for b in messages[-1]["content"])
    if not (final or in_tool_loop):
        return False
    return "reasoningContent" not in messages[last]["content"][0]
