"""A fake Gemini API server: the real paths, chunk shapes and error JSON, the API's request rules
(``gemini_rules``) and Gemini 3's thought-signature check.

It refuses an API key in the URL (``?key=``) with a 400, so a gateway that ever puts the key there
fails its tests. Both ``v1beta`` and ``v1`` paths are served; the official ``google-genai`` client
uses ``v1``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeUpstream, Reply, compact_json, estimate_tokens, new_id, split_text
from tests.fakes.gemini_rules import (
    EMBED_FIELDS,
    TASK_TYPES,
    InvalidArgument,
    active_loop,
    as_object,
    check_fields,
    validate_contents,
    validate_generate_request,
)

__all__ = ["GeminiUpstream", "InvalidArgument", "validate_generate_request"]

SKIP_SIGNATURE = "skip_thought_signature_validator"
_STATUS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def error_body(
    status: int, message: str, grpc_status: str | None = None, details: list[Any] | None = None
) -> Any:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": grpc_status or _STATUS.get(status, ("UNKNOWN", ""))[0],
    }
    if details:
        error["details"] = details
    return {"error": error}


def last_user_text(contents: Sequence[Any]) -> str:
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            texts = [
                p["text"]
                for p in content.get("parts", [])
                if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
            if texts:
                return "".join(texts)
    return ""


class _Answer:
    """Everything one GenerateContentResponse says, resolved from a Reply and the request."""

    def __init__(
        self, reply: Reply, body: dict[str, Any], model: str, signature: str | None, call_ids: bool
    ) -> None:
        self.reply = reply
        self.id = new_id("")
        self.model = reply.model or model
        if reply.text is None and not reply.tool_calls:
            self.text: str | None = "echo: " + last_user_text(body["contents"])
        else:
            self.text = reply.text
        thinking_config = body.get("generationConfig", {}).get("thinkingConfig", {})
        self.thought = (
            reply.thinking[0] if reply.thinking and thinking_config.get("includeThoughts") else None
        )
        self.signature = signature
        self.calls = [
            {"functionCall": {**({"id": cid} if call_ids else {}), "name": name, "args": dict(args)}}
            for cid, name, args in reply.tool_calls
        ]
        self.prompt_tokens = (
            reply.input_tokens
            if reply.input_tokens is not None
            else estimate_tokens(
                body["contents"], body.get("systemInstruction") or {}, body.get("tools") or []
            )
        )
        self.output_tokens = (
            reply.output_tokens
            if reply.output_tokens is not None
            else estimate_tokens(self.text or "", [json.dumps(c["functionCall"]["args"]) for c in self.calls])
        )

    def usage(self, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": self.prompt_tokens}
        total = self.prompt_tokens
        if final:
            usage["candidatesTokenCount"] = self.output_tokens
            total += self.output_tokens + self.reply.reasoning_tokens
            if self.reply.reasoning_tokens:
                usage["thoughtsTokenCount"] = self.reply.reasoning_tokens
        if self.reply.cache_read_tokens:
            usage["cachedContentTokenCount"] = self.reply.cache_read_tokens
        usage["totalTokenCount"] = total
        return usage

    def _response(self, parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if final:
            candidate["finishReason"] = self.reply.finish_reason or "STOP"
        return {
            "candidates": [candidate],
            "usageMetadata": self.usage(final),
            "modelVersion": self.model,
            "responseId": self.id,
        }

    def parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if self.thought:
            parts.append({"text": self.thought, "thought": True})
        if self.text:
            parts.append({"text": self.text})
        calls = [dict(c) for c in self.calls]
        parts += calls
        if self.signature is not None:
            # Gemini signs the first function call, or else the last part of the answer.
            target = calls[0] if calls else (parts[-1] if parts else None)
            if target is None:
                parts.append(target := {"text": ""})
            target["thoughtSignature"] = self.signature
        return parts

    def response(self) -> dict[str, Any]:
        return self._response(self.parts(), final=True)

    def chunks(self) -> list[dict[str, Any]]:
        pieces: list[list[dict[str, Any]]] = []
        if self.thought:
            pieces += [[{"text": t, "thought": True}] for t in split_text(self.thought, self.reply.chunks)]
        pieces += [[{"text": t}] for t in split_text(self.text or "", self.reply.chunks)]
        if self.calls:
            pieces.append([dict(c) for c in self.calls])  # function calls arrive whole, together
        if self.signature is not None:
            if self.calls:
                pieces[-1][0]["thoughtSignature"] = self.signature
            elif self.text:
                pieces[-1][-1]["thoughtSignature"] = self.signature
            else:
                pieces.append([{"text": "", "thoughtSignature": self.signature}])
        if not pieces:
            pieces.append([{"text": ""}])
        chunks = [self._response(p, final=False) for p in pieces]
        chunks[-1] = self._response(pieces[-1], final=True)
        return chunks


class GeminiUpstream(FakeUpstream):
    """Serves ``/{v1beta,v1}/models/{model}:{generateContent,streamGenerateContent,countTokens,
    batchEmbedContents,embedContent}``.

    ``require_signatures`` plays Gemini 3: function calls in the current tool loop must come back with
    a signature this fake issued (or Google's skip value), every answer is signed, and a signature it
    never issued is refused. ``call_ids`` gives function calls ids (``Reply.tool_calls`` ids).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        require_signatures: bool = False,
        call_ids: bool = False,
        versions: Sequence[str] = ("v1beta", "v1"),
        embedding_size: int = 8,
    ) -> None:
        super().__init__(api_key=api_key)
        self.require_signatures = require_signatures
        self.call_ids = call_ids
        self.versions = tuple(versions)
        self.embedding_size = embedding_size
        self.issued: set[str] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{version}/models/{call}", self._dispatch)]

    def error_response(
        self, status: int, message: str, *, error_type: str | None = None, details: list[Any] | None = None
    ) -> web.Response:
        default_status, default_message = _STATUS.get(status, ("UNKNOWN", "Unknown error."))
        body = error_body(status, message or default_message, error_type or default_status, details)
        return web.Response(
            status=status, body=compact_json(body), headers={"content-type": "application/json"}
        )

    def scripted_error(self, reply: Reply) -> web.Response:
        details = None
        if reply.retry_after is not None:
            # Gemini says when to retry inside the body, not in a Retry-After header.
            details = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{reply.retry_after}s"}
            ]
        response = self.error_response(
            reply.status, reply.error_message or "", error_type=reply.error_type, details=details
        )
        response.headers.update(reply.headers)
        return response

    def _rejection(self, request: web.Request) -> web.Response | None:
        if "key" in request.query:
            return self.error_response(
                400,
                "This fake refuses API keys in the URL: they leak into logs. Send the x-goog-api-key header.",
            )
        if self.api_key is None:
            return None
        key = request.headers.get("x-goog-api-key")
        if key is None:
            return self.error_response(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity "
                "to call this API.",
            )
        if key != self.api_key:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
            return self.error_response(
                400, "API key not valid. Please pass a valid API key.", details=details
            )
        return None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        model, _, method = request.match_info["call"].rpartition(":")
        if version not in self.versions or not model:
            return self.error_response(404, f"Not found: {request.path}")
        if (rejected := self._rejection(request)) is not None:
            return rejected
        handlers = {
            "generateContent": self._generate,
            "streamGenerateContent": self._generate,
            "countTokens": self._count_tokens,
            "batchEmbedContents": self._batch_embed,
            "embedContent": self._embed,
        }
        handler = handlers.get(method)
        if handler is None:
            return self.error_response(404, f"Method {method} is not found for model models/{model}.")
        try:
            return await handler(request, model, method)
        except InvalidArgument as exc:
            return self.error_response(400, str(exc))

    def _check_signatures(self, contents: list[dict[str, Any]]) -> None:
        for content in contents:
            for part in content["parts"]:
                signature = part.get("thoughtSignature")
                if signature is not None and signature != SKIP_SIGNATURE and signature not in self.issued:
                    raise InvalidArgument("Corrupted thought signature.")
        for content in active_loop(contents):
            calls = [(i, p) for i, p in enumerate(content["parts"]) if "functionCall" in p]
            if calls and "thoughtSignature" not in calls[0][1]:
                name = calls[0][1]["functionCall"]["name"]
                raise InvalidArgument(
                    "Function call is missing a thought_signature in functionCall parts. This is required for "
                    f"tools to work correctly. Additional data, function call `default_api:{name}` , position "
                    f"{calls[0][0] + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures"
                )

    def _signature(self, reply: Reply) -> str | None:
        signature = reply.thinking[1] if reply.thinking else None
        if signature is None and self.require_signatures:
            signature = base64.b64encode(new_id("sig-").encode()).decode()
        if signature is not None:
            self.issued.add(signature)
        return signature

    async def _generate(self, request: web.Request, model: str, method: str) -> web.StreamResponse:
        body = validate_generate_request(self.recorded(request).json)
        if self.require_signatures:
            self._check_signatures(body["contents"])
        reply = self.take_reply()
        answer = _Answer(reply, body, model, self._signature(reply), self.call_ids)
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != "sse":
            # Without alt=sse the API streams one JSON array; served whole here.
            return await self.respond(
                request, reply, stream=False, body=answer.chunks, frames=list, error_frame=b"", headers={}
            )
        message = reply.error_message or "The model is overloaded. Please try again later."
        error = error_body(503, message, "UNAVAILABLE")
        return await self.respond(
            request,
            reply,
            stream=stream,
            body=answer.response,
            frames=lambda: [b"data: " + compact_json(c) + b"\r\n\r\n" for c in answer.chunks()],
            error_frame=b"data: " + compact_json(error) + b"\r\n\r\n",
            headers={"x-gemini-service-tier": "standard"},
        )

    async def _count_tokens(self, request: web.Request, model: str, method: str) -> web.StreamResponse:
        body = as_object(self.recorded(request).json, "")
        check_fields(body, {"contents", "generateContentRequest"}, "")
        if "contents" in body and "generateContentRequest" in body:
            raise InvalidArgument("contents and generate_content_request are mutually exclusive.")
        inner = body.get("generateContentRequest")
        if inner is not None:
            inner = validate_generate_request(inner, count_only=True)
            if inner.get("model") != f"models/{model}":
                raise InvalidArgument("generate_content_request.model must name the model of the URL.")
            counted: Any = [inner["contents"], inner.get("systemInstruction") or {}, inner.get("tools") or []]
        else:
            counted = validate_contents(body.get("contents"))
        reply = self.take_reply()
        if reply.status >= 400:
            return self.scripted_error(reply)
        total = reply.input_tokens if reply.input_tokens is not None else estimate_tokens(counted)
        answer = {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
        return web.Response(body=compact_json(answer), headers={"content-type": "application/json"})

    def _vector(self, text: str, size: int) -> list[float]:
        digest = hashlib.sha256(text.encode()).digest()
        return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(size)]

    def _embedding(self, request: Any, model: str, where: str) -> list[float]:
        request = as_object(request, where)
        check_fields(request, EMBED_FIELDS, where)
        if "model" in request and request["model"] != f"models/{model}":
            raise InvalidArgument(
                f"{where}.model: model names in the requests must match the model of the URL."
            )
        parts = as_object(request.get("content"), f"{where}.content").get("parts")
        if (
            not isinstance(parts, list)
            or not parts
            or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts)
        ):
            raise InvalidArgument(f"* BatchEmbedContentsRequest.{where}.content.parts: must not be empty.")
        if "taskType" in request and request["taskType"] not in TASK_TYPES:
            raise InvalidArgument(f"Invalid value at '{where}.task_type': \"{request['taskType']}\"")
        size = request.get("outputDimensionality", self.embedding_size)
        if not isinstance(size, int) or size < 1:
            raise InvalidArgument(f"{where}.output_dimensionality must be positive.")
        return self._vector("".join(p["text"] for p in parts), size)

    async def _batch_embed(self, request: web.Request, model: str, method: str) -> web.StreamResponse:
        body = as_object(self.recorded(request).json, "")
        check_fields(body, {"requests"}, "")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise InvalidArgument("* BatchEmbedContentsRequest.requests: requests must not be empty.")
        vectors = [self._embedding(r, model, f"requests[{i}]") for i, r in enumerate(requests)]
        reply = self.take_reply()
        if reply.status >= 400:
            return self.scripted_error(reply)
        answer = {"embeddings": [{"values": v} for v in vectors]}
        return web.Response(body=compact_json(answer), headers={"content-type": "application/json"})

    async def _embed(self, request: web.Request, model: str, method: str) -> web.StreamResponse:
        vector = self._embedding(self.recorded(request).json, model, "")
        answer = {"embedding": {"values": vector}}
        return web.Response(body=compact_json(answer), headers={"content-type": "application/json"})
