"""Gemini ``GenerateContentResponse`` chunks -> canonical events (streamed and not).

A Gemini stream (``streamGenerateContent?alt=sse``) is a series of whole ``GenerateContentResponse``
objects: each carries the next parts of the first candidate (text deltas, thought deltas, and
function calls that always arrive whole), usually ``usageMetadata``, and the last ones the
``finishReason`` and final usage. There is no end marker: the stream ends when the connection
does, so a stream that ends without a finish reason was cut off. A non-streamed response is the
same object once, and is decoded by the same code (then folded).

Signatures become ``ThinkingPart`` signatures as ``mapping`` describes. ``MessageStart``
is held back until the first content (or the end), so that an answer that fails before producing
anything raises before the first batch and can still be retried.
"""

from __future__ import annotations

from typing import Any

from waypost.core.errors import StreamInterrupted, UpstreamError
from waypost.core.events import (
    BlockKind,
    BlockStart,
    BlockStop,
    Finish,
    MessageEnd,
    MessageStart,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    UsageUpdate,
)
from waypost.core.types import FinishReason, Usage
from waypost.wire.conventions import compact_json
from waypost.wire.gemini.mapping import (
    FAILED_FINISHES,
    PROVIDER,
    finish_reason,
    new_call_id,
    stream_error,
    usage_from_gemini,
    wrap_signature,
)


class StreamDecoder:
    """Feed each parsed chunk; call ``finish()`` when the upstream stream ends. ``fallback_id``
    is the answer's id when Gemini gives none and a call needs one to derive its own from (a
    fresh id from the caller: the wire has no randomness)."""

    __slots__ = (
        "_blocked",
        "_calls",
        "_ended",
        "_fallback_id",
        "_finish",
        "_finish_message",
        "_id",
        "_model",
        "_next_index",
        "_open",
        "_open_kind",
        "_started",
        "_usage",
    )

    def __init__(self, fallback_id: str) -> None:
        self._fallback_id = fallback_id
        self._started = False
        self._ended = False
        self._id = ""
        self._model = ""
        self._usage = Usage()
        self._finish: str | None = None
        self._finish_message: str | None = None
        self._blocked: str | None = None
        self._next_index = 0
        self._open: int | None = None
        self._open_kind: BlockKind | None = None
        self._calls = 0

    @property
    def produced(self) -> bool:
        """Whether any content block has been emitted."""
        return self._next_index > 0

    def feed(self, chunk: Any) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            raise StreamInterrupted(
                f"{PROVIDER} upstream sent a chunk that is not an object", provider=PROVIDER
            )
        if "error" in chunk:
            raise stream_error(chunk)
        out: list[StreamEvent] = []
        if self._ended:
            return out
        if not self._id and isinstance(chunk.get("responseId"), str):
            self._id = chunk["responseId"]
        if not self._model and isinstance(chunk.get("modelVersion"), str):
            self._model = chunk["modelVersion"]
        if isinstance(chunk.get("usageMetadata"), dict):
            self._usage.merge(usage_from_gemini(chunk["usageMetadata"]))
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and isinstance(feedback.get("blockReason"), str):
            self._blocked = feedback["blockReason"]
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if not isinstance(candidate, dict):
            return out
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict):
                    self._part(part, out)
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            self._finish = reason
            message = candidate.get("finishMessage")
            self._finish_message = message if isinstance(message, str) else None
        return out

    def finish(self, *, whole: bool = False) -> list[StreamEvent]:
        """The closing events. ``whole`` is for a non-streamed body, which cannot be cut short."""
        if self._ended:
            return []
        if self._finish is None and self._blocked is None and not whole:
            raise StreamInterrupted(
                f"{PROVIDER} upstream stream ended without a finish reason", provider=PROVIDER
            )
        if self._finish in FAILED_FINISHES and not self.produced:
            detail = f": {self._finish_message[:300]}" if self._finish_message else ""
            raise UpstreamError(
                f"{PROVIDER} upstream ended the answer with {self._finish} and no content{detail}",
                provider=PROVIDER,
            )
        out: list[StreamEvent] = []
        self._ensure_started(out)
        self._close(out)
        if self._finish is not None:
            reason = finish_reason(self._finish, has_tool_calls=self._calls > 0)
        elif self._blocked is not None:
            reason = FinishReason.CONTENT_FILTER
        else:
            reason = FinishReason.TOOL_CALLS if self._calls else FinishReason.STOP
        out += [UsageUpdate(self._usage), Finish(reason), MessageEnd()]
        self._ended = True
        return out

    # -- parts ------------------------------------------------------------------------------

    def _part(self, part: dict[str, Any], out: list[StreamEvent]) -> None:
        raw_signature = part.get("thoughtSignature")
        signature = raw_signature if isinstance(raw_signature, str) and raw_signature else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._close(out)
            if signature is not None:
                self._signature_block(wrap_signature(f"call{self._calls}", signature), out)
            call_id, name, args = call.get("id"), call.get("name"), call.get("args")
            index = self._start(
                out,
                "tool_call",
                tool_call_id=call_id if isinstance(call_id, str) and call_id else self._call_id(),
                tool_name=name if isinstance(name, str) else "",
            )
            out.append(ToolArgsDelta(index, compact_json(args if isinstance(args, dict) else {})))
            out.append(BlockStop(index))
            self._open = self._open_kind = None
            self._calls += 1
            return
        text = part.get("text")
        text = text if isinstance(text, str) else None
        if part.get("thought") is True:
            if text:
                out.append(ThinkingDelta(self._ensure_open("thinking", out), text))
            if signature is not None:
                index = self._ensure_open("thinking", out)
                out.append(SignatureDelta(index, wrap_signature("thought", signature)))
                self._close(out)  # a block has one signature: later thoughts open a new one
            return
        if text is None:
            return  # inline media, executable code and other parts have no canonical form
        if text:
            out.append(TextDelta(self._ensure_open("text", out), text))
        if signature is not None:
            self._close(out)
            self._signature_block(wrap_signature("text", signature), out)

    def _call_id(self) -> str:
        if not self._id:
            self._id = self._fallback_id  # one per answer, so its calls' ids stay related
        return new_call_id(self._id, self._calls, self._fallback_id)

    def _signature_block(self, signature: str, out: list[StreamEvent]) -> None:
        index = self._start(out, "thinking")
        out += [SignatureDelta(index, signature), BlockStop(index)]
        self._open = self._open_kind = None

    # -- blocks -----------------------------------------------------------------------------

    def _ensure_started(self, out: list[StreamEvent]) -> None:
        if not self._started:
            self._started = True
            u = self._usage
            start = Usage(input_tokens=u.input_tokens, cache_read_tokens=u.cache_read_tokens)
            out.append(MessageStart(id=self._id, model=self._model, usage=start))

    def _start(self, out: list[StreamEvent], kind: BlockKind, **kw: Any) -> int:
        self._ensure_started(out)
        index = self._next_index
        self._next_index += 1
        out.append(BlockStart(index, kind, **kw))
        self._open, self._open_kind = index, kind
        return index

    def _ensure_open(self, kind: BlockKind, out: list[StreamEvent]) -> int:
        if self._open is not None and self._open_kind == kind:
            return self._open
        self._close(out)
        return self._start(out, kind)

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open))
            self._open = self._open_kind = None
