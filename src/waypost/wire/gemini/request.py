"""Canonical ``ChatRequest`` -> Gemini ``generateContent`` request body.

What the API enforces, and how the body respects it:

* system messages (wherever they are) become ``systemInstruction``; the conversation becomes
  ``contents`` with roles ``user`` and ``model``, consecutive turns of one role merged, empty
  text parts (which Gemini refuses) and then empty turns dropped;
* tool results become ``functionResponse`` parts (``{"output": text}`` or ``{"error": text}``)
  named after the call they answer -- Gemini matches results to calls by name, so the name is
  found from the call's id in the history -- placed first in their user turn; images inside tool
  results follow them as ordinary parts;
* ids of function calls are sent back only when Gemini issued them (ids the gateway synthesised
  for id-less calls stay with the client);
* thought signatures go back onto the part Gemini put them on (see ``mapping``); a function
  call of the current tool loop that has no Gemini signature (history from another model) gets
  Google's documented skip value, since Gemini 3 refuses such calls otherwise;
* images and PDFs travel inline (``inlineData``); a URL only when Gemini can read it itself
  (``gs://`` or a Gemini Files API URI). Gemini cannot fetch http(s) URLs and the gateway never
  fetches on a caller's behalf, so those are dropped with a note;
* tool schemas go as ``parametersJsonSchema`` (full JSON Schema, accepted since 2025), not the
  OpenAPI-subset ``parameters`` that refuses ``additionalProperties``, ``$ref`` or ``anyOf``;
  only ``$schema`` is removed. JSON output uses ``responseJsonSchema`` in the same way.

Everything dropped or approximated is returned as notes beside the body (``Encoded.dropped``).
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import unquote_to_bytes

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
from waypost.wire.conventions import EFFORT_BUDGETS
from waypost.wire.encoded import Encoded
from waypost.wire.gemini.mapping import SKIP_SIGNATURE, is_synthetic_call_id, unwrap_signature

MAX_STOP_SEQUENCES = 5
_GEMINI_FILE_URI = re.compile(
    r"^https://generativelanguage\.googleapis\.com/v1[a-z0-9]*/files/[A-Za-z0-9_-]+$"
)
_MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}

GeminiPart = dict[str, Any]


def encode_request(req: ChatRequest) -> Encoded:
    """The body to POST to ``models/{model}:generateContent`` (or the streaming method)."""
    encoder = _Encoder(req)
    body = encoder.build()
    return Encoded(body, tuple(encoder.notes))


def encode_count_tokens(req: ChatRequest, model: str) -> Encoded:
    """The body for ``models/{model}:countTokens``: the prompt as a whole generate request, the
    only form in which the Gemini API counts the system instruction and tools too."""
    body, dropped = encode_request(req)
    inner: dict[str, Any] = {"model": f"models/{model}", "contents": body["contents"]}
    for key in ("systemInstruction", "tools", "toolConfig"):
        if key in body:
            inner[key] = body[key]
    return Encoded({"generateContentRequest": inner}, dropped)


def model_path(model: str) -> str:
    """The bare model id: configs may name it ``models/gemini-x`` as Google's docs do."""
    return model.removeprefix("models/")


def gemini_file_uri(url: str) -> bool:
    """Whether Gemini can read ``url`` itself: Cloud Storage or a Files API upload."""
    return url.startswith("gs://") or _GEMINI_FILE_URI.match(url) is not None


def _mime_from_url(url: str) -> str | None:
    name = url.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MIME_BY_EXTENSION.get(ext)


def _data_url(url: str) -> tuple[str, str | None] | None:
    """``data:[<type>][;base64],<payload>`` -> (base64 payload, media type)."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    attrs = header.split(";")
    media_type = attrs[0].strip().lower() or None
    if "base64" in (a.strip().lower() for a in attrs[1:]):
        return payload.strip(), media_type
    return base64.b64encode(unquote_to_bytes(payload)).decode("ascii"), media_type


class _Encoder:
    __slots__ = ("call_names", "notes", "req")

    def __init__(self, req: ChatRequest) -> None:
        self.req = req
        self.notes: list[str] = []
        self.call_names: dict[str, str] = {}

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def build(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        system, contents = self.conversation()
        if system:
            body["systemInstruction"] = {"parts": system}
        body["contents"] = contents
        self.tools(body)
        config = self.generation_config()
        if config:
            body["generationConfig"] = config
        if self.req.user:
            self.note("user dropped (no Gemini equivalent)")
        return body

    # -- conversation -----------------------------------------------------------------------

    def conversation(self) -> tuple[list[GeminiPart], list[dict[str, Any]]]:
        for message in self.req.messages:
            if message.role == "assistant":
                for part in message.content:
                    if isinstance(part, ToolCallPart):
                        self.call_names[part.id] = part.name
        system: list[GeminiPart] = []
        contents: list[dict[str, Any]] = []
        for message in self.req.messages:
            if message.role == "system":
                if contents:
                    self.note("a system message inside the conversation was moved to the system instruction")
                system += self.system_parts(message)
                continue
            if message.name:
                self.note("message names dropped")
            role = "model" if message.role == "assistant" else "user"
            parts = self.model_parts(message.content) if role == "model" else self.user_parts(message.content)
            if not parts:
                self.note(f"an empty {message.role} message dropped")
                continue
            if contents and contents[-1]["role"] == role:
                contents[-1]["parts"] += parts
            else:
                contents.append({"role": role, "parts": parts})
        for content in contents:
            if content["role"] == "user":
                # Gemini wants the answers to the previous turn's calls before anything else.
                parts = content["parts"]
                content["parts"] = [p for p in parts if "functionResponse" in p] + [
                    p for p in parts if "functionResponse" not in p
                ]
        self.sign_active_loop(contents)
        return system, contents

    def system_parts(self, message: Message) -> list[GeminiPart]:
        out: list[GeminiPart] = []
        for part in message.content:
            if isinstance(part, TextPart):
                if part.text:
                    out.append({"text": part.text})
                if part.cache_control:
                    self.note("cache_control dropped (Gemini caches implicitly)")
            else:
                self.note(f"{part.kind} content in a system message dropped")
        return out

    def user_parts(self, content: list[Part]) -> list[GeminiPart]:
        out: list[GeminiPart] = []
        for part in content:
            if isinstance(part, ToolResultPart):
                out += self.tool_result(part)
            elif isinstance(part, ThinkingPart):
                self.note("thinking content in a user message dropped")
            elif isinstance(part, ToolCallPart):
                self.note("a tool call in a user message dropped")
            else:
                encoded = self.media_or_text(part)
                if encoded is not None:
                    out.append(encoded)
        return out

    def media_or_text(self, part: TextPart | ImagePart | DocumentPart) -> GeminiPart | None:
        if part.cache_control:
            self.note("cache_control dropped (Gemini caches implicitly)")
        if isinstance(part, TextPart):
            # Gemini refuses empty text parts; OpenAI clients send "" beside tool calls.
            return {"text": part.text} if part.text else None
        if isinstance(part, ImagePart):
            return self.image(part)
        return self.document(part)

    def image(self, part: ImagePart) -> GeminiPart | None:
        if part.detail:
            self.note("image detail dropped")
        if part.data:
            if not part.media_type:
                self.note("an inline image without a media type was sent as image/png")
            return {"inlineData": {"mimeType": part.media_type or "image/png", "data": part.data}}
        if part.url:
            inline = _data_url(part.url)
            if inline is not None:
                return {"inlineData": {"mimeType": inline[1] or "image/png", "data": inline[0]}}
            if gemini_file_uri(part.url):
                return _file_data(part.url, part.media_type or _mime_from_url(part.url))
            self.note("image URLs dropped: Gemini only reads inline images, gs:// and Files API URIs")
            return None
        self.note("an image without data or url dropped")
        return None

    def document(self, part: DocumentPart) -> GeminiPart | None:
        if part.data:
            return {"inlineData": {"mimeType": part.media_type or "application/pdf", "data": part.data}}
        if part.text is not None:
            title = part.title or part.filename
            return {"text": f"{title}\n\n{part.text}" if title else part.text} if part.text else None
        if part.url:
            inline = _data_url(part.url)
            if inline is not None:
                return {"inlineData": {"mimeType": inline[1] or "application/pdf", "data": inline[0]}}
            if gemini_file_uri(part.url):
                return _file_data(part.url, part.media_type or _mime_from_url(part.url) or "application/pdf")
            self.note("document URLs dropped: Gemini only reads inline documents, gs:// and Files API URIs")
            return None
        self.note("a document without data, text or url dropped")
        return None

    def tool_result(self, part: ToolResultPart) -> list[GeminiPart]:
        name = self.call_names.get(part.tool_call_id)
        text = part.text()
        media = [p for p in part.content if not isinstance(p, TextPart)]
        extra = [e for e in (self.media_or_text(p) for p in media) if e is not None]
        if extra:
            self.note("images and documents in tool results moved after the function responses")
        if name is None:
            # Gemini needs the function's name, and no call in the history has this id.
            self.note(f"a tool result for unknown call {part.tool_call_id!r} was sent as text")
            label = "Tool error" if part.is_error else "Tool result"
            return [{"text": f"{label} ({part.tool_call_id}): {text}"}, *extra]
        response: dict[str, Any] = {
            "name": name,
            "response": {"error" if part.is_error else "output": text},
        }
        if not is_synthetic_call_id(part.tool_call_id):
            response["id"] = part.tool_call_id
        return [{"functionResponse": response}, *extra]

    def model_parts(self, content: list[Part]) -> list[GeminiPart]:
        out: list[GeminiPart] = []
        call_signatures: dict[int, str] = {}
        text_signature: str | None = None
        calls = 0
        last_text: int | None = None
        for part in content:
            if isinstance(part, ThinkingPart):
                unwrapped = unwrap_signature(part.signature)
                if part.redacted:
                    self.note("redacted thinking dropped (Gemini cannot read it)")
                elif unwrapped is None:
                    if part.text or part.signature:
                        self.note("thinking without a Gemini signature dropped")
                elif unwrapped[0] == "thought":
                    out.append({"text": part.text, "thought": True, "thoughtSignature": unwrapped[2]})
                elif unwrapped[0] == "call" and unwrapped[1] is not None:
                    call_signatures[unwrapped[1]] = unwrapped[2]
                else:
                    text_signature = unwrapped[2]
            elif isinstance(part, ToolCallPart):
                call: dict[str, Any] = {"name": part.name, "args": self.call_args(part)}
                if part.id and not is_synthetic_call_id(part.id):
                    call["id"] = part.id
                out.append({"functionCall": call})
                calls += 1
            elif isinstance(part, ToolResultPart):
                self.note("a tool result in an assistant message dropped")
            else:
                encoded = self.media_or_text(part)
                if encoded is not None:
                    out.append(encoded)
                    if "text" in encoded:
                        last_text = len(out) - 1
        call_parts = [p for p in out if "functionCall" in p]
        for index, signature in call_signatures.items():
            if index < len(call_parts):
                call_parts[index]["thoughtSignature"] = signature
            else:
                self.note("a thought signature for a missing function call dropped")
        if text_signature is not None:
            if last_text is not None:
                out[last_text]["thoughtSignature"] = text_signature
            else:
                self.note("a thought signature for missing text dropped")
        return out

    def call_args(self, part: ToolCallPart) -> dict[str, Any]:
        value, problem = part.input_object()
        if problem:
            self.note(f"tool call {part.id!r} {problem}; sent as {{}}")
        return value

    def sign_active_loop(self, contents: list[dict[str, Any]]) -> None:
        """Gemini 3 validates signatures on the function calls of the current tool loop: the
        model turns after the last user turn that is more than function responses."""
        start = 0
        for i, content in enumerate(contents):
            if content["role"] == "user" and any("functionResponse" not in p for p in content["parts"]):
                start = i + 1
        for content in contents[start:]:
            if content["role"] != "model":
                continue
            calls = [p for p in content["parts"] if "functionCall" in p]
            if calls and not any("thoughtSignature" in p for p in calls):
                calls[0]["thoughtSignature"] = SKIP_SIGNATURE
                self.note("tool calls without a Gemini thought signature sent with Gemini's skip value")

    # -- tools and options ------------------------------------------------------------------

    def tools(self, body: dict[str, Any]) -> None:
        req = self.req
        if req.tools:
            declarations: list[dict[str, Any]] = []
            for tool in req.tools:
                declaration: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    declaration["description"] = tool.description
                schema = {k: v for k, v in (tool.parameters or {}).items() if k != "$schema"}
                declaration["parametersJsonSchema"] = schema or {"type": "object", "properties": {}}
                if tool.strict:
                    self.note("strict tool schemas dropped")
                if tool.cache_control:
                    self.note("cache_control dropped (Gemini caches implicitly)")
                declarations.append(declaration)
            body["tools"] = [{"functionDeclarations": declarations}]
        choice = req.tool_choice
        if choice is None:
            return
        if not req.tools:
            if choice.mode != "none":
                self.note("tool_choice without tools dropped")
            return
        config: dict[str, Any]
        if choice.mode == "none":
            config = {"mode": "NONE"}
        elif choice.mode == "required":
            config = {"mode": "ANY"}
        elif choice.mode == "tool" and choice.name:
            config = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
        else:
            config = {"mode": "AUTO"}
        if choice.parallel is False:
            self.note("parallel_tool_calls=false dropped (no Gemini equivalent)")
        body["toolConfig"] = {"functionCallingConfig": config}

    def generation_config(self) -> dict[str, Any]:
        req = self.req
        config: dict[str, Any] = {}
        if req.max_tokens is not None:
            config["maxOutputTokens"] = req.max_tokens
        for key, value in (
            ("temperature", req.temperature),
            ("topP", req.top_p),
            ("topK", req.top_k),
            ("seed", req.seed),
            ("presencePenalty", req.presence_penalty),
            ("frequencyPenalty", req.frequency_penalty),
        ):
            if value is not None:
                config[key] = value
        if req.stop:
            if len(req.stop) > MAX_STOP_SEQUENCES:
                self.note(f"stop sequences beyond the first {MAX_STOP_SEQUENCES} dropped")
            config["stopSequences"] = list(req.stop[:MAX_STOP_SEQUENCES])
        fmt = req.response_format
        if fmt is not None and fmt.type != "text":
            config["responseMimeType"] = "application/json"
            if fmt.type == "json_schema":
                if fmt.schema is not None:
                    config["responseJsonSchema"] = {k: v for k, v in fmt.schema.items() if k != "$schema"}
                else:
                    self.note("json_schema response format without a schema sent as plain JSON mode")
        thinking = self.thinking_config()
        if thinking is not None:
            config["thinkingConfig"] = thinking
        return config

    def thinking_config(self) -> dict[str, Any] | None:
        thinking = self.req.thinking
        if thinking is None:
            return None
        if not thinking.enabled or thinking.effort == "none":
            return {"thinkingBudget": 0}
        budget = thinking.budget_tokens
        if budget is None and thinking.effort and not thinking.adaptive:
            budget = EFFORT_BUDGETS.get(thinking.effort)
            if budget is not None:
                self.note(
                    f"reasoning effort {thinking.effort!r} mapped to a thinking budget of {budget} tokens"
                )
        # -1 lets the model decide how much to think ("dynamic thinking").
        return {"thinkingBudget": -1 if budget is None else budget, "includeThoughts": True}


def _file_data(uri: str, mime_type: str | None) -> GeminiPart:
    data: dict[str, Any] = {"fileUri": uri}
    if mime_type:
        data["mimeType"] = mime_type
    return {"fileData": data}
