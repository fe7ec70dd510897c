"""The one loop that reads every upstream stream.

Chunks come from the upstream response as they arrive; a *framer* cuts them into frames (SSE
events, NDJSON lines, AWS event-stream messages) and a provider's *frame decoder* turns each frame
into canonical events. Every provider streams through ``read_stream``, which guarantees for all:

* one batch per upstream read (``Provider.stream``): what arrived together is written together;
* for a same-format client, a ``RawFrame`` in the batch with the upstream bytes as they came
  (through the provider's ``edit``, if any), or, when the decoder hid or rewrote a frame or a
  failure cut the read short, the frames the client may see, written again: the other frames
  cost nothing beyond their decoding;
* what arrived before a failure is delivered, then the failure is raised;
* a body that ends before the format's end marker is a failure (the decoder's ``finish``);
* every failure to parse what the upstream sent (a frame over its size limit, bytes that are not
  JSON or not UTF-8, JSON that is not an object, a corrupt event-stream message) is an
  ``UpstreamInvalid`` that says the upstream sent something invalid. Framers and decoders report
  such failures as ``ValueError`` (``orjson.JSONDecodeError`` and ``UnicodeDecodeError`` are
  ones); the loop turns them into that error, here and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from itertools import islice
from typing import Protocol, TypeVar

from waypost.core.errors import GatewayError, UpstreamInvalid
from waypost.core.events import RawFrame, StreamEvent
from waypost.providers.http import UpstreamResponse

F = TypeVar("F")
F_co = TypeVar("F_co", covariant=True)
F_contra = TypeVar("F_contra", contravariant=True)

# What one frame was, as its decoder reports it (``FrameDecoder.feed``).
SHOWN = 0  # an ordinary frame
HIDDEN = 1  # decoded (for metering) but kept from the client: left out of the relayed bytes
END = 2  # the end marker: the answer is complete and nothing after it is read


@dataclass(frozen=True, slots=True)
class Rewritten:
    """A frame a same-format client gets as ``data`` instead of as it came (a normalised frame,
    several, or nothing); ``end``: the frame was the end marker (``data`` then ends with it)."""

    data: bytes
    end: bool = False


class Framer(Protocol[F_co]):
    """Cuts a body into frames (``SSEParser``, ``LineSplitter``, ``EventStreamDecoder``)."""

    def feed_frames(self, chunk: bytes) -> tuple[Iterable[F_co], bytes]:
        """The frames ``chunk`` completes and the raw bytes they came in (for a same-format relay,
        which needs a list of frames); ``ValueError``, raised at once or while iterating, for
        bytes that cannot be framed."""
        ...

    def end_frames(self) -> Iterable[F_co]:
        """At the end of the body: the buffered frames that still count (or raise)."""
        ...


class FrameDecoder(Protocol[F_contra]):
    """One provider's reading of its frames, for one stream."""

    def feed(self, frame: F_contra, out: list[StreamEvent]) -> int | Rewritten:
        """Append the canonical events of ``frame`` to ``out``; return ``SHOWN``, ``HIDDEN``,
        ``END`` or what a same-format client gets instead (``Rewritten``). Raises ``ValueError``
        for a frame it cannot parse, ``GatewayError`` for an error the upstream reported."""
        ...

    def finish(self) -> list[StreamEvent]:
        """The body ended before an ``END`` frame: the closing events where the format has no
        end marker (Gemini), else a ``StreamInterrupted`` naming the marker that never came."""
        ...


async def read_stream(
    response: AbstractAsyncContextManager[UpstreamResponse],
    framer: Framer[F],
    decoder: Callable[[Mapping[str, str]], FrameDecoder[F]],
    *,
    provider: str,
    relay: Callable[[F], bytes] | None = None,
    edit: Callable[[bytes], bytes] | None = None,
) -> AsyncIterator[list[StreamEvent]]:
    """Open ``response`` (``HttpClient.post(...)``, not yet entered) and yield its canonical
    events, one batch per upstream read.

    ``decoder`` builds the frame decoder from the response headers. ``relay`` re-encodes one
    frame; given when the caller speaks the upstream's format, it adds the ``RawFrame``s.
    ``edit``, if given, changes the bytes of each ``RawFrame`` (once per read, after the frames
    of the read were decoded): a cheap rewrite that every frame needs, such as a model name.
    """
    async with response as resp:
        frame_decoder = decoder(resp.headers)
        feed = frame_decoder.feed
        frames: Iterable[F]
        while True:
            chunk = await resp.read_chunk()
            batch: list[StreamEvent] = []
            frames, raw = (), b""
            decoded = 0  # frames fully decoded
            changed: dict[int, bytes] | None = None  # frames hidden or rewritten, by position
            failure: GatewayError | None = None
            ended = False
            try:
                frames, raw = framer.feed_frames(chunk) if chunk else (framer.end_frames(), b"")
                for frame in frames:
                    verdict = feed(frame, batch)
                    if verdict:
                        if verdict == END:
                            decoded += 1
                            ended = True
                            break
                        if changed is None:
                            changed = {}
                        if type(verdict) is Rewritten:
                            changed[decoded] = verdict.data
                            if verdict.end:
                                decoded += 1
                                ended = True
                                break
                        else:
                            changed[decoded] = b""
                    decoded += 1
            except ValueError as exc:
                failure = UpstreamInvalid(
                    f"{provider} upstream sent an invalid stream: {exc}", provider=provider
                )
            except GatewayError as exc:
                if exc.provider is None:  # wire decoders do not always know whose stream it is
                    exc.provider = provider
                failure = exc
            if relay is not None:
                if failure is None and changed is None:
                    if raw:
                        batch.append(RawFrame(raw if edit is None else edit(raw)))
                else:
                    shown = _written(frames, decoded, changed or {}, relay)
                    if shown:
                        batch.append(RawFrame(shown if edit is None else edit(shown)))
            if batch:
                yield batch
            if failure is not None:
                raise failure
            if ended:
                return
            if not chunk:
                break
        tail = frame_decoder.finish()
        if tail:
            yield tail


def _written(
    frames: Iterable[F], decoded: int, changed: Mapping[int, bytes], relay: Callable[[F], bytes]
) -> bytes:
    """The first ``decoded`` frames written again for the client, hidden and rewritten ones as
    ``changed`` says."""
    return b"".join(
        changed[i] if i in changed else relay(frame) for i, frame in enumerate(islice(frames, decoded))
    )
