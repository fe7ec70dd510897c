"""The one upstream stream loop (``providers/streaming.py``) as providers use it, against real fake
upstreams sending recorded streams: the same-format relay keeps the upstream bytes exactly (less
the usage chunk a client did not ask for), what arrived before a failure is delivered, a missing
end marker and every parse failure are upstream errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from waypost.core.context import RequestContext
from waypost.core.errors import StreamInterrupted, UpstreamInvalid
from waypost.core.events import RawFrame, StreamEvent, TextDelta, UsageUpdate, fold
from waypost.core.types import ChatRequest, Message, TextPart
from waypost.providers.anthropic import AnthropicProvider
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient, json_object
from waypost.providers.openai import OpenAIProvider
from waypost.settings import ModelSettings

FIXTURES = Path(__file__).parent.parent / "fixtures"
OPENAI_STREAM = (FIXTURES / "openai" / "stream_text_usage.sse").read_bytes()
ANTHROPIC_STREAM = (FIXTURES / "anthropic" / "stream_text.sse").read_bytes()
HI = ChatRequest(model="m", messages=[Message("user", [TextPart("hi")])], stream=True)
# The names the recorded streams carry: a client that asked for them reads the bytes unchanged.
FIXTURE_MODEL = "gpt-4o-2024-08-06"
RECORDED = {
    "openai": ChatRequest(model=FIXTURE_MODEL, messages=HI.messages, stream=True),
    "anthropic": ChatRequest(model="claude-sonnet-4-5-20250929", messages=HI.messages, stream=True),
}


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.close()


def deployment(provider: str, url: str) -> Deployment:
    return Deployment(ModelSettings(name="m", provider=provider, base_url=url), "up")


async def collect(batches: AsyncIterator[list[StreamEvent]]) -> list[StreamEvent]:
    return [event async for batch in batches for event in batch]


def relayed(events: list[StreamEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, RawFrame))


def frames(stream: bytes) -> list[bytes]:
    return [block + b"\n\n" for block in stream.split(b"\n\n") if block.strip()]


def text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_an_openai_client_asking_for_usage_gets_the_upstream_bytes_exactly(http: HttpClient) -> None:
    async with OpenAIUpstream() as fake:
        fake.enqueue(Reply(raw_body=OPENAI_STREAM))
        req = ChatRequest(model=FIXTURE_MODEL, messages=HI.messages, stream=True, include_usage=True)
        events = await collect(
            OpenAIProvider(http).stream(req, deployment("openai", fake.url), RequestContext("r", "openai"))
        )
    assert relayed(events) == OPENAI_STREAM


async def test_the_usage_chunk_a_client_did_not_ask_for_is_metered_but_not_relayed(http: HttpClient) -> None:
    usage_chunk = next(f for f in frames(OPENAI_STREAM) if b'"choices":[]' in f)
    async with OpenAIUpstream() as fake:
        fake.enqueue(Reply(raw_body=OPENAI_STREAM))
        req = RECORDED["openai"]
        events = await collect(
            OpenAIProvider(http).stream(req, deployment("openai", fake.url), RequestContext("r", "openai"))
        )
    assert relayed(events) == OPENAI_STREAM.replace(usage_chunk, b"")
    assert [e for e in events if isinstance(e, UsageUpdate)], "the hidden usage still reaches metering"


async def test_an_anthropic_client_gets_the_upstream_bytes_exactly_pings_included(http: HttpClient) -> None:
    async with AnthropicUpstream() as fake:
        fake.enqueue(Reply(raw_body=ANTHROPIC_STREAM))
        events = await collect(
            AnthropicProvider(http).stream(
                RECORDED["anthropic"], deployment("anthropic", fake.url), RequestContext("r", "anthropic")
            )
        )
    assert relayed(events) == ANTHROPIC_STREAM
    assert b'{"type": "ping"}' in relayed(events)


async def test_a_client_of_another_format_gets_events_and_no_raw_bytes(http: HttpClient) -> None:
    async with AnthropicUpstream() as fake:
        fake.enqueue(Reply(raw_body=ANTHROPIC_STREAM))
        events = await collect(
            AnthropicProvider(http).stream(
                HI, deployment("anthropic", fake.url), RequestContext("r", "openai")
            )
        )
    assert relayed(events) == b""
    assert fold(events).text() == text(events) != ""


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_frames_before_an_invalid_one_are_delivered_then_the_upstream_is_blamed(
    http: HttpClient, client: str
) -> None:
    good = frames(OPENAI_STREAM)[:3] if client == "openai" else frames(ANTHROPIC_STREAM)[:4]
    body = b"".join(good) + b"data: {not json\n\n" + b"".join(good)
    fake_type = OpenAIUpstream if client == "openai" else AnthropicUpstream
    provider = OpenAIProvider(http) if client == "openai" else AnthropicProvider(http)
    seen: list[StreamEvent] = []
    async with fake_type() as fake:
        fake.enqueue(Reply(raw_body=body))
        with pytest.raises(
            UpstreamInvalid, match=f"{client} upstream sent an invalid stream: a frame that is not JSON"
        ):
            req = RECORDED[client]
            async for batch in provider.stream(
                req, deployment(client, fake.url), RequestContext("r", client)
            ):
                seen += batch
    assert relayed(seen) == b"".join(good)  # written again without the invalid frame or what followed


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b'data: {"id": "\xff"}\n\n', "not JSON (str is not valid UTF-8"),
        (b"data: [1, 2]\n\n", "JSON but not an object (list)"),
        (b"data: " + b"x" * (17 * 1024 * 1024), "longer than 16777216 bytes"),
    ],
    ids=["not-utf8", "not-an-object", "over-long"],
)
async def test_every_parse_failure_is_an_upstream_error_naming_it(
    http: HttpClient, frame: bytes, reason: str
) -> None:
    async with OpenAIUpstream() as fake:
        fake.enqueue(Reply(garbage=frame))
        with pytest.raises(UpstreamInvalid, match=r"openai upstream sent an invalid stream: .*") as err:
            await collect(
                OpenAIProvider(http).stream(HI, deployment("openai", fake.url), RequestContext("r", "x"))
            )
    assert reason in err.value.message
    assert err.value.status == 502


async def test_a_stream_that_ends_without_its_end_marker_is_interrupted_after_what_came(
    http: HttpClient,
) -> None:
    without_done = OPENAI_STREAM.replace(b"data: [DONE]\n\n", b"")
    seen: list[StreamEvent] = []
    async with OpenAIUpstream() as fake:
        fake.enqueue(Reply(raw_body=without_done))
        with pytest.raises(StreamInterrupted, match=r"openai upstream stream ended without \[DONE\]"):
            async for batch in OpenAIProvider(http).stream(
                HI, deployment("openai", fake.url), RequestContext("r", "x")
            ):
                seen += batch
    assert text(seen) != ""


async def test_an_anthropic_stream_without_message_stop_is_interrupted(http: HttpClient) -> None:
    cut = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_stop")]
    async with AnthropicUpstream() as fake:
        fake.enqueue(Reply(raw_body=cut))
        with pytest.raises(StreamInterrupted, match="anthropic upstream stream ended without message_stop"):
            await collect(
                AnthropicProvider(http).stream(
                    HI, deployment("anthropic", fake.url), RequestContext("r", "x")
                )
            )


async def test_an_event_name_that_is_not_utf8_is_an_upstream_error(http: HttpClient) -> None:
    async with AnthropicUpstream() as fake:
        fake.enqueue(Reply(garbage=b'event: \xff\ndata: {"type": "ping"}\n\n'))
        with pytest.raises(UpstreamInvalid, match="anthropic upstream sent an invalid stream"):
            await collect(
                AnthropicProvider(http).stream(
                    HI, deployment("anthropic", fake.url), RequestContext("r", "x")
                )
            )


def test_json_object_takes_objects_only() -> None:
    assert json_object(b'{"a": 1}') == {"a": 1}
    for data in (b"[1]", b'"text"', b"3", b"null", b"{", b"\xff"):
        with pytest.raises(ValueError, match="a frame that is"):
            json_object(data)
