"""The providers the conformance suite drives, each described once: how to start its fake, the
model entry that points the gateway at it, its native vocabulary, a neutral view of what it
received, and what it supports (anything not listed is supported)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import AnthropicUpstream, FakeUpstream, OpenAIUpstream
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream
from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.ollama_upstream import OllamaUpstream
from tests.fakes.openai_responses_upstream import OpenAIResponsesUpstream


@dataclass(frozen=True)
class Support:
    level: str  # "yes", "approx" (carried approximately) or "no" (dropped, never an error)
    note: str = ""


YES = Support("yes")


@dataclass
class View:
    """What an upstream received, whatever its wire format."""

    system: str = ""
    user_texts: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    tool_names: list[str] = field(default_factory=list)
    tool_results: list[str] = field(default_factory=list)
    images: int = 0
    documents: int = 0
    json_mode: bool = False
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    thinking: bool = False
    signatures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    name: str  # the provider type, as in config
    label: str
    start: Callable[[], AbstractAsyncContextManager[FakeUpstream]]
    entry: Callable[[FakeUpstream], dict[str, Any]]
    view: Callable[[dict[str, Any]], View]
    finish_length: str  # the provider's own "max tokens reached"
    overload_status: int
    support: dict[str, Support] = field(default_factory=dict)
    # Where one client format fares otherwise: client -> scenario -> support.
    support_from: dict[str, dict[str, Support]] = field(default_factory=dict)

    def supports(self, scenario: str, client: str | None = None) -> Support:
        own = self.support_from.get(client or "", {}).get(scenario)
        return own if own is not None else self.support.get(scenario, YES)


def _texts(content: Any, kind: str = "text") -> list[str]:
    if isinstance(content, str):
        return [content] if kind == "text" else []
    return [p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == kind]


def openai_view(body: dict[str, Any]) -> View:
    v = View(max_tokens=body.get("max_completion_tokens", body.get("max_tokens")))
    stop = body.get("stop")
    v.stop = [stop] if isinstance(stop, str) else list(stop or [])
    v.json_mode = (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
    v.thinking = body.get("reasoning_effort") not in (None, "none")
    v.tool_names = [t["function"]["name"] for t in body.get("tools") or []]
    for m in body["messages"]:
        v.roles.append(m["role"])
        content = m.get("content")
        if m["role"] in ("system", "developer"):
            v.system += "".join(_texts(content))
        elif m["role"] == "user":
            v.user_texts += _texts(content)
            parts = content if isinstance(content, list) else []
            v.images += sum(1 for p in parts if p.get("type") == "image_url")
            v.documents += sum(1 for p in parts if p.get("type") == "file")
        elif m["role"] == "tool":
            v.tool_results.append(content if isinstance(content, str) else "".join(_texts(content)))
        elif m["role"] == "assistant":
            v.signatures += [
                b.get("signature", "") for b in m.get("thinking_blocks") or [] if b.get("signature")
            ]
    return v


def responses_view(body: dict[str, Any]) -> View:
    """A body sent to ``/responses``; a chat completions body (chat clients) as ``openai_view``."""
    if "messages" in body:
        return openai_view(body)
    v = View(system=body.get("instructions") or "", max_tokens=body.get("max_output_tokens"))
    fmt = (body.get("text") or {}).get("format") or {}
    v.json_mode = fmt.get("type") in ("json_object", "json_schema")
    v.thinking = bool(body.get("reasoning"))
    v.tool_names = [t["name"] for t in body.get("tools") or [] if t.get("type") == "function"]
    value = body["input"]
    for item in [{"role": "user", "content": value}] if isinstance(value, str) else value:
        kind = item.get("type", "message")
        if kind == "function_call_output":
            output = item["output"]
            v.tool_results.append(
                output if isinstance(output, str) else "".join(_texts(output, "input_text"))
            )
        elif kind == "reasoning" and item.get("encrypted_content"):
            v.signatures.append(item["encrypted_content"])
        elif kind == "message":
            role, content = item["role"], item.get("content")
            v.roles.append("system" if role == "developer" else role)
            if role in ("system", "developer"):
                v.system += "".join(_texts(content, "input_text")) if isinstance(content, list) else content
            elif role == "user":
                v.user_texts += _texts(content, "input_text") if isinstance(content, list) else [content]
                parts = content if isinstance(content, list) else []
                v.images += sum(1 for p in parts if p.get("type") == "input_image")
                v.documents += sum(1 for p in parts if p.get("type") == "input_file")
    return v


def anthropic_view(body: dict[str, Any]) -> View:
    system = body.get("system")
    v = View(system="".join(_texts(system)) if system else "", max_tokens=body.get("max_tokens"))
    v.stop = list(body.get("stop_sequences") or [])
    fmt = (body.get("output_config") or {}).get("format")
    v.json_mode = bool(fmt) or "JSON" in v.system
    v.thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    v.tool_names = [t["name"] for t in body.get("tools") or []]
    for m in body["messages"]:
        v.roles.append(m["role"])
        content = m["content"]
        blocks = content if isinstance(content, list) else []
        if m["role"] == "user":
            v.user_texts += _texts(content)
            v.images += sum(1 for b in blocks if b.get("type") == "image")
            v.documents += sum(1 for b in blocks if b.get("type") == "document")
            for b in blocks:
                if b.get("type") == "tool_result":
                    result = b.get("content")
                    v.tool_results.append(result if isinstance(result, str) else "".join(_texts(result)))
        else:
            v.signatures += [
                b["signature"] for b in blocks if b.get("type") == "thinking" and b.get("signature")
            ]
    return v


def ollama_view(body: dict[str, Any]) -> View:
    options = body.get("options") or {}
    v = View(max_tokens=options.get("num_predict"), stop=list(options.get("stop") or []))
    v.json_mode = body.get("format") not in (None, "")
    v.thinking = bool(body.get("think"))
    v.tool_names = [t["function"]["name"] for t in body.get("tools") or []]
    for m in body["messages"]:
        v.roles.append(m["role"])
        content = m.get("content") or ""
        if m["role"] == "system":
            v.system += content
        elif m["role"] == "user":
            v.user_texts += [content] if content else []
            v.images += len(m.get("images") or [])
        elif m["role"] == "tool":
            v.tool_results.append(content)
    return v


def bedrock_view(body: dict[str, Any]) -> View:
    config = body.get("inferenceConfig") or {}
    v = View(max_tokens=config.get("maxTokens"), stop=list(config.get("stopSequences") or []))
    v.system = "".join(b.get("text", "") for b in body.get("system") or [])
    v.json_mode = bool((body.get("outputConfig") or {}).get("textFormat")) or "JSON" in v.system
    extra = body.get("additionalModelRequestFields") or {}
    v.thinking = (extra.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    v.tool_names = [
        t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools") or [] if "toolSpec" in t
    ]
    for m in body["messages"]:
        v.roles.append(m["role"])
        for block in m["content"]:
            if "text" in block and m["role"] == "user":
                v.user_texts.append(block["text"])
            v.images += "image" in block
            v.documents += "document" in block
            if "toolResult" in block:
                v.tool_results.append(
                    "".join(c.get("text", "") for c in block["toolResult"].get("content") or [])
                )
            reasoning = (block.get("reasoningContent") or {}).get("reasoningText") or {}
            if reasoning.get("signature"):
                v.signatures.append(reasoning["signature"])
    return v


def gemini_view(body: dict[str, Any]) -> View:
    config = body.get("generationConfig") or {}
    v = View(max_tokens=config.get("maxOutputTokens"), stop=list(config.get("stopSequences") or []))
    v.system = "".join(p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts") or [])
    v.json_mode = config.get("responseMimeType") == "application/json"
    v.thinking = bool(config.get("thinkingConfig"))
    v.tool_names = [f["name"] for t in body.get("tools") or [] for f in t.get("functionDeclarations") or []]
    for content in body["contents"]:
        role = "assistant" if content.get("role") == "model" else "user"
        v.roles.append(role)
        for part in content.get("parts") or []:
            if "text" in part and role == "user" and not part.get("thought"):
                v.user_texts.append(part["text"])
            mime = (part.get("inlineData") or {}).get("mimeType", "")
            v.images += mime.startswith("image/")
            v.documents += mime == "application/pdf"
            if "functionResponse" in part:
                response = part["functionResponse"].get("response") or {}
                v.tool_results.append(str(response.get("output", response)))
            if (
                part.get("thoughtSignature")
                and part["thoughtSignature"] != "skip_thought_signature_validator"
            ):
                v.signatures.append(part["thoughtSignature"])
    return v


def _bedrock_entry(fake: FakeUpstream) -> dict[str, Any]:
    aws = {
        "region": REGION,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "endpoint_url": fake.url,
    }
    return {"provider": "bedrock", "upstream_model": "anthropic.claude-sonnet-4-5-20250929-v1:0", "aws": aws}


def _fake(cls: type[FakeUpstream], **kwargs: Any) -> Callable[[], AbstractAsyncContextManager[FakeUpstream]]:
    def start() -> AbstractAsyncContextManager[FakeUpstream]:
        return cls(**kwargs)  # FakeUpstream is an async context manager

    return start


def _entry(provider: str, path: str = "") -> Callable[[FakeUpstream], dict[str, Any]]:
    def entry(fake: FakeUpstream) -> dict[str, Any]:
        return {
            "provider": provider,
            "base_url": fake.url + path,
            "api_key": fake.api_key,
            "upstream_model": "up-model",
        }

    return entry


TARGETS: list[Target] = [
    Target(
        name="openai",
        label="OpenAI-compatible",
        start=_fake(OpenAIUpstream, api_key="sk-conformance-openai"),
        entry=_entry("openai", "/v1"),
        view=openai_view,
        finish_length="length",
        overload_status=503,
        support={
            "document_pdf": Support("yes", "sent as a `file` part with a data URL"),
            "thinking_signature": Support(
                "approx",
                "reasoning text arrives as `reasoning_content`; these servers sign nothing, so no signature",
            ),
        },
    ),
    Target(
        name="openai_responses",
        label="OpenAI (Responses API)",
        start=_fake(OpenAIResponsesUpstream, api_key="sk-conformance-responses"),
        entry=lambda fake: {**_entry("openai", "/v1")(fake), "responses_api": True},
        view=responses_view,
        finish_length="length",
        overload_status=503,
        support={
            "document_pdf": Support("yes", "chat clients: sent as a `file` part with a data URL"),
            "thinking_signature": Support(
                "approx",
                "chat clients reach chat completions, where reasoning text arrives as `reasoning_content` "
                "unsigned; Responses clients get OpenAI's `encrypted_content` and send it back",
            ),
        },
        support_from={"responses": {"thinking_signature": YES}},
    ),
    Target(
        name="anthropic",
        label="Anthropic",
        start=_fake(AnthropicUpstream, api_key="sk-ant-conformance"),
        entry=_entry("anthropic"),
        view=anthropic_view,
        finish_length="max_tokens",
        overload_status=529,
        support={"json_object": Support("approx", "a system instruction asks for one JSON object")},
    ),
    Target(
        name="bedrock",
        label="Bedrock (Converse)",
        start=_fake(BedrockUpstream),
        entry=_bedrock_entry,
        view=bedrock_view,
        finish_length="max_tokens",
        overload_status=503,
        support={"json_object": Support("approx", "a system instruction asks for one JSON object")},
    ),
    Target(
        name="gemini",
        label="Gemini",
        start=_fake(GeminiUpstream, api_key="AIza-conformance-key"),
        entry=_entry("gemini"),
        view=gemini_view,
        finish_length="MAX_TOKENS",
        overload_status=503,
        support={
            "thinking_signature": Support(
                "yes",
                "signatures travel as `gemini:<part>:<signature>` so each returns to the part it signed",
            ),
        },
    ),
    Target(
        name="ollama",
        label="Ollama",
        start=_fake(OllamaUpstream),
        entry=_entry("ollama"),
        view=ollama_view,
        finish_length="length",
        overload_status=503,
        support={
            "document_pdf": Support("no", "Ollama takes images only; documents other than text are dropped"),
            "thinking_signature": Support(
                "approx", "thinking text is carried (`think`, `message.thinking`); no signatures"
            ),
        },
    ),
]


async def started(target: Target) -> AsyncIterator[FakeUpstream]:
    async with target.start() as fake:
        yield fake
