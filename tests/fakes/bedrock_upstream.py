"""A fake Amazon Bedrock runtime: Converse, ConverseStream (binary event stream), InvokeModel for
Titan and Cohere embeddings, and CountTokens, behind real SigV4 verification.

Every request must carry a SigV4 signature that botocore, given the fake's secret, computes the
same (over the path exactly as received, so a wrongly encoded model id fails like it would on
AWS), scoped to the fake's access key id, region and the ``bedrock`` service. Errors are the
service's: an HTTP status, an ``x-amzn-ErrorType`` header and ``{"message": ...}``; mid-stream
failures are ``:message-type exception`` frames. ``boto3``'s own client parses what it sends.

``Reply`` usage numbers go on the wire as given: ``input_tokens`` is Bedrock's ``inputTokens``,
which excludes cache reads and writes (for CountTokens it is the count answered). Stream faults
count event-stream messages. ``Reply.error_type`` names the HTTP error type (``ThrottlingException``;
by default the one Bedrock uses for the status) or, with ``error_event_after_chunks``, the
exception frame's type (``throttlingException``; by default ``modelStreamErrorException``).
``raw_body`` on a stream is written as the event-stream body, to send corrupt frames.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import uuid
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from tests.fakes.base import FakeUpstream, Reply, compact_json, estimate_tokens, split_text, write_garbage
from tests.fakes.bedrock_validation import ValidationError, validate_converse
from tests.fakes.eventstream_encoder import event, exception

ACCESS_KEY_ID = "AKIDFAKEBEDROCK00001"
SECRET_ACCESS_KEY = "fake/secret/access/key/for/tests/0000001"
REGION = "us-west-2"

# Default error type for a scripted status, as Bedrock answers it.
ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "The requested resource could not be found."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "The service is currently unavailable."),
}
_PATH = re.compile(r"^/model/(?P<model>[^/?]+)/(?P<op>converse-stream|converse|invoke|count-tokens)$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"
_COHERE_INPUT_TYPES = {"search_document", "search_query", "classification", "clustering"}


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return "".join(b["text"] for b in message["content"] if "text" in b)
    return ""


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-ish vector derived from the text."""
    seed = hashlib.sha256(text.encode()).digest()
    return [round((seed[i % 32] - 128) / 128, 6) for i in range(dimensions)]


class BedrockUpstream(FakeUpstream):
    """Serves ``POST /model/{modelId}/{converse,converse-stream,invoke,count-tokens}``."""

    def __init__(
        self,
        *,
        access_key_id: str = ACCESS_KEY_ID,
        secret_access_key: str = SECRET_ACCESS_KEY,
        region: str = REGION,
        session_token: str | None = None,
    ) -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.region = region
        self.session_token = session_token
        self.raw_paths: list[str] = []
        """Request paths exactly as received (percent-encoding intact)."""
        self.models: list[str] = []
        """The decoded model id of each request that got past authentication."""

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/{tail:.*}", self._dispatch)]

    def error_response(self, status: int, message: str, *, error_type: str | None = None) -> web.Response:
        default_type, default_message = ERROR_TYPES.get(
            status, ("InternalServerException" if status >= 500 else "ValidationException", "Request failed.")
        )
        return self._error(status, error_type or default_type, message or default_message)

    @staticmethod
    def _error(status: int, error_type: str, message: str) -> web.Response:
        return web.Response(
            status=status,
            body=compact_json({"message": message}),
            headers={
                "content-type": "application/json",
                "x-amzn-errortype": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                "x-amzn-requestid": str(uuid.uuid4()),
            },
        )

    # -- authentication ----------------------------------------------------------------------------

    def _auth_error(self, request: web.Request, body: bytes) -> web.Response | None:
        header = request.headers.get("authorization")
        if not header:
            return self._error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        match = _AUTH.match(header)
        if not match:
            return self._error(
                400, "IncompleteSignatureException", "Authorization header requires a valid SigV4 form."
            )
        if match["key"] != self.access_key_id:
            return self._error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        if match["region"] != self.region:
            return self._error(
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region, not '{match['region']}'.",
            )
        if match["service"] != "bedrock":
            return self._error(
                403, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'."
            )
        amz_date = request.headers.get("x-amz-date", "")
        signed = match["signed"].split(";")
        if amz_date[:8] != match["date"] or "host" not in signed or "x-amz-date" not in signed:
            return self._error(403, "InvalidSignatureException", "The request must sign host and x-amz-date.")
        token = request.headers.get("x-amz-security-token")
        if self.session_token is not None and token != self.session_token:
            return self._error(
                403, "UnrecognizedClientException", "The security token included in the request is invalid."
            )
        aws_request = AWSRequest(
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            data=body,
            headers={name: request.headers.get(name, "") for name in signed},
        )
        aws_request.context["timestamp"] = amz_date
        signer = SigV4Auth(
            ReadOnlyCredentials(self.access_key_id, self.secret_access_key, token), "bedrock", self.region
        )
        expected = signer.signature(
            signer.string_to_sign(aws_request, signer.canonical_request(aws_request)), aws_request
        )
        if expected != match["signature"]:
            return self._error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details.",
            )
        return None

    # -- dispatch ----------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.raw_paths.append(request.raw_path)
        rec = self.recorded(request)
        if (denied := self._auth_error(request, rec.body)) is not None:
            return denied
        match = _PATH.match(request.raw_path.split("?", 1)[0])
        if not match:
            return self._error(404, "UnknownOperationException", "Unknown operation")
        model = unquote(match["model"])
        self.models.append(model)
        body = rec.json
        try:
            if match["op"] == "count-tokens":
                return self._count_tokens(body)
            if match["op"] == "invoke":
                return await self._invoke(request, model, body)
            validate_converse(body)
        except ValidationError as exc:
            return self._error(400, "ValidationException", str(exc))
        reply = self.take_reply()
        answer = _Answer(reply, body)
        stream = match["op"] == "converse-stream"
        headers = {"x-amzn-requestid": str(uuid.uuid4())}
        if stream and reply.status < 400:
            return await self._stream(request, reply, answer, headers)
        return await self.respond(
            request,
            reply,
            stream=False,
            body=answer.response,
            frames=list,
            error_frame=b"",
            headers=headers,
        )

    async def _stream(
        self, request: web.Request, reply: Reply, answer: _Answer, headers: dict[str, str]
    ) -> web.StreamResponse:
        await self._pause(reply.latency_s)
        response = web.StreamResponse(
            headers={**headers, **reply.headers, "content-type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        if reply.raw_body is not None:
            await response.write(reply.raw_body)
            await response.write_eof()
            return response
        frames = answer.frames()
        for sent in range(len(frames) + 1):
            if reply.garbage is not None and sent == reply.garbage_after_chunks:
                await write_garbage(response, reply.garbage)
                break
            if sent == reply.reset_after_chunks:
                raise ConnectionResetError  # the base middleware aborts the connection
            if sent == reply.stall_after_chunks:
                await self._hang()
            if sent == reply.error_event_after_chunks:
                await response.write(
                    exception(
                        reply.error_type or "modelStreamErrorException",
                        reply.error_message or "The model stream failed.",
                        **({"originalStatusCode": 500} if reply.error_type is None else {}),
                    )
                )
                break
            if sent == len(frames):
                break
            if sent > 0:
                await self._pause(reply.chunk_delay_s)
            await response.write(frames[sent])
        await response.write_eof()
        return response

    def _count_tokens(self, body: Any) -> web.Response:
        source = body.get("input") if isinstance(body, dict) else None
        if not isinstance(source, dict) or len(source) != 1 or "converse" not in source:
            raise ValidationError(
                "Malformed input request: input must hold exactly one of converse, invokeModel"
            )
        validate_converse(source["converse"], count_only=True)
        reply = self.take_reply()
        if reply.status >= 400:
            return self.scripted_error(reply)
        converse = source["converse"]
        count = reply.input_tokens
        if count is None:
            count = estimate_tokens(
                converse.get("messages"), converse.get("system") or [], converse.get("toolConfig") or {}
            )
        return web.Response(
            body=compact_json({"inputTokens": count}), headers={"content-type": "application/json"}
        )

    async def _invoke(self, request: web.Request, model: str, body: Any) -> web.StreamResponse:
        if "titan-embed" in model:
            payload, tokens = _titan(model, body)
        elif "cohere.embed" in model:
            payload, tokens = _cohere(model, body)
        else:
            raise ValidationError(f"The fake Bedrock only embeds with Titan or Cohere, not {model}")
        reply = self.take_reply()
        await self._pause(reply.latency_s)
        if reply.status >= 400:
            return self.scripted_error(reply)
        return web.Response(
            body=compact_json(payload),
            headers={
                "content-type": "application/json",
                "x-amzn-requestid": str(uuid.uuid4()),
                "x-amzn-bedrock-input-token-count": str(tokens),
            },
        )


def _titan(model: str, body: Any) -> tuple[dict[str, Any], int]:
    allowed = (
        {"inputText", "dimensions", "normalize", "embeddingTypes"} if "text-v2" in model else {"inputText"}
    )
    if not isinstance(body, dict):
        raise ValidationError("Malformed input request, please reformat your input and try again.")
    for key in body:
        if key not in allowed:
            raise ValidationError(f"Malformed input request: extraneous key [{key}] is not permitted")
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        raise ValidationError("Malformed input request: inputText must be a non-empty string")
    dimensions = body.get("dimensions", 1024 if "text-v2" in model else 1536)
    if dimensions not in (256, 512, 1024, 1536):
        raise ValidationError("Malformed input request: dimensions must be one of 256, 512, 1024")
    vector = fake_vector(text, dimensions)
    tokens = estimate_tokens(text)
    return {"embedding": vector, "inputTextTokenCount": tokens, "embeddingsByType": {"float": vector}}, tokens


def _cohere(model: str, body: Any) -> tuple[dict[str, Any], int]:
    if not isinstance(body, dict):
        raise ValidationError("Malformed input request, please reformat your input and try again.")
    allowed = {"texts", "input_type", "truncate", "embedding_types", "images"}
    if "embed-v4" in model:
        allowed |= {"output_dimension", "inputs", "max_tokens"}
    for key in body:
        if key not in allowed:
            raise ValidationError(f"Malformed input request: extraneous key [{key}] is not permitted")
    texts = body.get("texts")
    if not isinstance(texts, list) or not 1 <= len(texts) <= 96 or not all(isinstance(t, str) for t in texts):
        raise ValidationError("Malformed input request: texts must hold between 1 and 96 strings")
    if body.get("input_type") not in _COHERE_INPUT_TYPES:
        raise ValidationError("Malformed input request: input_type is required")
    dimensions = body.get("output_dimension", 1536 if "embed-v4" in model else 1024)
    vectors = [fake_vector(t, dimensions) for t in texts]
    payload: dict[str, Any] = {"id": str(uuid.uuid4()), "texts": texts}
    if body.get("embedding_types"):
        payload |= {"embeddings": {"float": vectors}, "response_type": "embeddings_by_type"}
    else:
        payload |= {"embeddings": vectors, "response_type": "embeddings_floats"}
    return payload, sum(estimate_tokens(t) for t in texts)


class _Answer:
    """Everything one Converse answer says, resolved from a Reply and the request."""

    def __init__(self, reply: Reply, body: dict[str, Any]) -> None:
        self.reply = reply
        if reply.text is None and not reply.tool_calls:
            self.text: str | None = "echo: " + _last_user_text(body["messages"])
        else:
            self.text = reply.text
        self.calls = [(cid, name, compact_json(dict(args)).decode()) for cid, name, args in reply.tool_calls]
        self.stop_reason = reply.finish_reason or ("tool_use" if self.calls else "end_turn")
        stops = (body.get("inferenceConfig") or {}).get("stopSequences") or []
        self.fields: dict[str, Any] | None = None
        if (
            self.stop_reason == "stop_sequence"
            and stops
            and "/stop_sequence" in (body.get("additionalModelResponseFieldPaths") or [])
        ):
            self.fields = {"stop_sequence": stops[0]}
        self.usage = self._usage(body)

    def _usage(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self.reply
        uncached = reply.input_tokens
        if uncached is None:
            uncached = estimate_tokens(body["messages"], body.get("system") or [])
        output = reply.output_tokens
        if output is None:
            output = estimate_tokens(
                self.text or "", reply.thinking[0] if reply.thinking else "", [c[2] for c in self.calls]
            )
        usage: dict[str, Any] = {"inputTokens": uncached, "outputTokens": output}
        total = uncached + output
        if reply.cache_read_tokens or reply.cache_write_tokens:
            usage["cacheReadInputTokens"] = reply.cache_read_tokens
            usage["cacheWriteInputTokens"] = reply.cache_write_tokens
            total += reply.cache_read_tokens + reply.cache_write_tokens
        if reply.cache_write_tokens:
            # By duration, 1h before 5m, no entry for a duration nothing was written at.
            by_ttl = (
                ("1h", reply.cache_write_1h_tokens),
                ("5m", reply.cache_write_tokens - reply.cache_write_1h_tokens),
            )
            usage["cacheDetails"] = [{"ttl": ttl, "inputTokens": n} for ttl, n in by_ttl if n]
        usage["totalTokens"] = total
        return usage

    def response(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if self.reply.thinking:
            text, signature = self.reply.thinking
            content.append({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
        if self.text:
            content.append({"text": self.text})
        for cid, name, args in self.calls:
            content.append({"toolUse": {"toolUseId": cid, "name": name, "input": _json(args)}})
        body: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.stop_reason,
            "usage": self.usage,
            "metrics": {"latencyMs": 42},
        }
        if self.fields:
            body["additionalModelResponseFields"] = self.fields
        return body

    def frames(self) -> list[bytes]:
        chunks = self.reply.chunks
        out = [event("messageStart", {"p": _PADDING[:7], "role": "assistant"})]
        index = 0
        if self.reply.thinking:
            text, signature = self.reply.thinking
            for piece in split_text(text, chunks):
                out.append(_delta(index, {"reasoningContent": {"text": piece}}))
            out.append(_delta(index, {"reasoningContent": {"signature": signature}}))
            out.append(event("contentBlockStop", {"contentBlockIndex": index, "p": _PADDING[:3]}))
            index += 1
        if self.text:
            for piece in split_text(self.text, chunks):
                out.append(_delta(index, {"text": piece}))
            out.append(event("contentBlockStop", {"contentBlockIndex": index, "p": _PADDING[:11]}))
            index += 1
        for cid, name, args in self.calls:
            start = {
                "contentBlockIndex": index,
                "start": {"toolUse": {"toolUseId": cid, "name": name}},
                "p": "ab",
            }
            out.append(event("contentBlockStart", start))
            for piece in split_text(args, chunks or 3):
                out.append(_delta(index, {"toolUse": {"input": piece}}))
            out.append(event("contentBlockStop", {"contentBlockIndex": index, "p": _PADDING[:5]}))
            index += 1
        stop: dict[str, Any] = {"p": _PADDING[:9], "stopReason": self.stop_reason}
        if self.fields:
            stop["additionalModelResponseFields"] = self.fields
        out.append(event("messageStop", stop))
        out.append(event("metadata", {"metrics": {"latencyMs": 42}, "p": "abc", "usage": self.usage}))
        return out


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return event(
        "contentBlockDelta", {"contentBlockIndex": index, "delta": delta, "p": _PADDING[: 1 + index % 20]}
    )


def _json(text: str) -> Any:
    return json.loads(text)


def corrupt(frame: bytes) -> bytes:
    """``frame`` with its message checksum broken (its payload still readable)."""
    (crc,) = struct.unpack(">I", frame[-4:])
    return frame[:-4] + struct.pack(">I", crc ^ 0xFFFFFFFF)
