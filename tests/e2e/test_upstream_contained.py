"""What an upstream sends cannot hurt the gateway or leak its keys. Specified by docs/errors.md
("Upstream output is untrusted") and docs/providers.md ("Credentials in upstream text").

For every provider family, through a real gateway in front of its fake upstream:

* output that no parser accepts (a 20 MB line, bytes that are not JSON or not UTF-8, JSON that is
  not an object, a corrupt event-stream message, an answer that is not JSON or too large) is an
  upstream error that says the upstream sent something invalid: a 502 before the first byte, an
  error event after what came before it; never a 500, never a traceback in the log;
* upstream error text that repeats the key the gateway sent reaches neither the client nor the
  log (errors of any status, and errors in the middle of a stream).
"""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.e2e.test_failures import assert_ends_with_error_event
from tests.fakes import AnthropicUpstream, FakeUpstream, OpenAIUpstream, Reply
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream, corrupt
from tests.fakes.eventstream_encoder import encode_message, event
from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.ollama_upstream import OllamaUpstream
from tests.harness import GATEWAY_KEY, model, serve, settings
from waypost.providers.http import MAX_RESPONSE_BYTES

# One gateway for the whole module: every test's requests go to a different scripted reply.
pytestmark = pytest.mark.asyncio(loop_scope="module")

FAMILIES = ["openai", "anthropic", "gemini", "ollama", "bedrock"]
KEYS = {
    "openai": "sk-echo-openai-0123456789abcdef",
    "anthropic": "sk-ant-echo-0123456789abcdef",
    "gemini": "AIza-echo-gemini-0123456789abcdef",
    "ollama": "ollama-echo-0123456789abcdef",
    "bedrock": SECRET_ACCESS_KEY,
}
TEXT = " ".join(f"w{i}" for i in range(12))  # one frame per word
HUGE = 20 * 1024 * 1024


def _event_stream_prelude(total: int, headers_length: int = 0) -> bytes:
    prelude = struct.pack(">II", total, headers_length)
    return prelude + struct.pack(">I", zlib.crc32(prelude))


def _event_stream_message(headers: bytes) -> bytes:
    """A message with valid checksums around ``headers`` as given (however malformed)."""
    body = _event_stream_prelude(12 + len(headers) + 4, len(headers)) + headers
    return body + struct.pack(">I", zlib.crc32(body))


_SSE = {
    "20-MB-line": b"data: " + b"x" * HUGE,
    "not-json": b"data: {not json\n\n",
    "not-utf8": b'data: {"text": "\xff\xfe"}\n\n',
    "not-an-object": b"data: [1, 2, 3]\n\n",
}
GARBAGE: dict[str, dict[str, bytes]] = {
    "openai": _SSE,
    "anthropic": _SSE,
    "gemini": _SSE,
    "ollama": {
        "20-MB-line": b"x" * HUGE,
        "not-json": b"{not json\n",
        "not-utf8": b'{"message": {"content": "\xff"}}\n',
        "not-an-object": b"[1, 2, 3]\n",
    },
    "bedrock": {
        "25-MB-event": _event_stream_prelude(16 + 25 * 1024 * 1024),
        "bad-checksum": corrupt(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})),
        "unknown-header-type": _event_stream_message(b"\x05:type\x63xx"),
        "not-json": encode_message({":event-type": "contentBlockDelta", ":message-type": "event"}, b"{nope"),
    },
}
STREAM_CASES = [(family, kind) for family in FAMILIES for kind in GARBAGE[family]]
BODIES = {"not-json": b"{not json", "not-utf8": b'{"id": "\xff"}', "not-an-object": b"[1, 2, 3]"}


@dataclass
class Stage:
    url: str
    fakes: dict[str, FakeUpstream]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def started() -> AsyncIterator[Stage]:
    async with AsyncExitStack() as stack:
        fakes: dict[str, FakeUpstream] = {
            "openai": OpenAIUpstream(api_key=KEYS["openai"]),
            "anthropic": AnthropicUpstream(api_key=KEYS["anthropic"]),
            "gemini": GeminiUpstream(api_key=KEYS["gemini"]),
            "ollama": OllamaUpstream(api_key=KEYS["ollama"]),
            "bedrock": BedrockUpstream(),
        }
        for fake in fakes.values():
            await stack.enter_async_context(fake)
        aws = {
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "endpoint_url": fakes["bedrock"].url,
        }
        config = settings(
            *(model(f, f, fakes[f].url, KEYS[f]) for f in ("openai", "anthropic", "gemini", "ollama")),
            model("bedrock", "bedrock", upstream_model="anthropic.claude-sonnet-4-20250514-v1:0", aws=aws),
            logging={"level": "info", "access_log": True},  # the access log must be clean too
        )
        url = await stack.enter_async_context(serve(config))
        yield Stage(url, fakes)


@pytest_asyncio.fixture(loop_scope="module")
async def stage(started: Stage) -> Stage:
    for fake in started.fakes.values():
        fake.reset()
    return started


@dataclass
class Answer:
    status: int
    body: bytes

    def error(self) -> dict[str, Any]:
        """The error object of a non-streamed error answer (both formats nest it as ``error``)."""
        error: dict[str, Any] = json.loads(self.body)["error"]
        return error


def client_of(family: str) -> str:
    """The caller's format: the upstream's own where it has one, so the raw relay is exercised."""
    return "anthropic" if family == "anthropic" else "openai"


async def call(stage: Stage, family: str, *, stream: bool) -> Answer:
    fmt = client_of(family)
    body: dict[str, Any] = {
        "model": family,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    }
    path = "/v1/chat/completions"
    if fmt == "anthropic":
        body["max_tokens"] = 64
        path = "/v1/messages"
    headers = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(stage.url + path, json=body, headers=headers) as resp,
    ):
        return Answer(resp.status, await resp.read())


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything the gateway logged during the test: records and the access log on stderr."""
    records = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    return records + "\n" + capfd.readouterr().err


def assert_no_traceback(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in logged(caplog, capfd)


# -- garbage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("family", "kind"), STREAM_CASES)
async def test_garbage_instead_of_a_stream_is_a_502_saying_the_upstream_sent_something_invalid(
    stage: Stage,
    family: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stage.fakes[family].enqueue(Reply(text=TEXT, garbage=GARBAGE[family][kind]))
    with caplog.at_level(logging.INFO):
        answer = await call(stage, family, stream=True)
    assert answer.status == 502, answer.body[:300]
    assert f"{family} upstream sent an invalid stream" in answer.error()["message"]
    assert_no_traceback(caplog, capfd)


@pytest.mark.parametrize(("family", "kind"), STREAM_CASES)
async def test_garbage_mid_stream_ends_it_with_an_error_event_after_what_came_before(
    stage: Stage,
    family: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stage.fakes[family].enqueue(Reply(text=TEXT, garbage=GARBAGE[family][kind], garbage_after_chunks=4))
    with caplog.at_level(logging.INFO):
        answer = await call(stage, family, stream=True)
    assert answer.status == 200
    error = assert_ends_with_error_event(client_of(family), answer.body)
    assert f"{family} upstream sent an invalid stream" in error["message"]
    assert b"w0" in answer.body  # what came before the garbage reached the client
    assert_no_traceback(caplog, capfd)


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("family", FAMILIES)
async def test_an_answer_that_is_not_a_json_object_is_a_502_saying_the_upstream_sent_something_invalid(
    stage: Stage,
    family: str,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stage.fakes[family].enqueue(Reply(garbage=BODIES[kind]))
    with caplog.at_level(logging.INFO):
        answer = await call(stage, family, stream=False)
    assert answer.status == 502
    assert f"{family} upstream sent an invalid response" in answer.error()["message"]
    assert_no_traceback(caplog, capfd)


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
async def test_an_answer_over_the_size_limit_is_refused(stage: Stage, announced: bool) -> None:
    too_large = b" " * (MAX_RESPONSE_BYTES + 1)
    stage.fakes["openai"].enqueue(Reply(raw_body=too_large) if announced else Reply(garbage=too_large))
    answer = await call(stage, "openai", stream=False)
    assert answer.status == 502
    message = answer.error()["message"]
    assert "openai upstream sent an invalid response: a body larger than the limit of 64 MiB" in message


# -- keys echoed by the upstream --------------------------------------------------------------


def echo(family: str) -> str:
    """Error text repeating every credential the gateway sent."""
    if family == "bedrock":
        return f"the key {ACCESS_KEY_ID} with secret {SECRET_ACCESS_KEY} is not allowed here"
    return f"the key {KEYS[family]} is not allowed here"


def assert_no_key(family: str, text: str) -> None:
    assert KEYS[family] not in text
    assert ACCESS_KEY_ID not in text


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("status", [400, 429, 500])
@pytest.mark.parametrize("family", FAMILIES)
async def test_an_error_repeating_the_key_reaches_neither_the_client_nor_the_log(
    stage: Stage,
    family: str,
    status: int,
    stream: bool,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stage.fakes[family].enqueue(Reply(status=status, error_message=echo(family)))
    with caplog.at_level(logging.DEBUG):
        answer = await call(stage, family, stream=stream)
    assert answer.status >= 400
    message = answer.error()["message"]
    assert "[redacted]" in message  # the upstream's message still comes through, without the key
    assert_no_key(family, answer.body.decode())
    text = logged(caplog, capfd)
    assert "is not allowed here" in text
    assert_no_key(family, text)


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_mid_stream_error_repeating_the_key_reaches_neither_the_client_nor_the_log(
    stage: Stage,
    family: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    stage.fakes[family].enqueue(Reply(text=TEXT, error_event_after_chunks=4, error_message=echo(family)))
    with caplog.at_level(logging.DEBUG):
        answer = await call(stage, family, stream=True)
    error = assert_ends_with_error_event(client_of(family), answer.body)
    assert "[redacted]" in error["message"]
    assert_no_key(family, answer.body.decode())
    assert_no_key(family, logged(caplog, capfd))
