"""What a caller is told was dropped (``X-Waypost-Dropped`` and the access log) is about the
attempt that served the answer: the notes of a deployment that failed after encoding the request
for its own format never reach the caller. Real gateway, real fake upstreams on loopback."""

from __future__ import annotations

import socket
import uuid

import aiohttp
import pytest

from tests.fakes import AnthropicUpstream, Reply
from tests.fakes.ollama_upstream import OllamaUpstream
from tests.harness import GATEWAY_KEY, access_line, model, serve, settings

# Anthropic cannot carry ``seed`` (and notes it); Ollama carries it but has no ``user`` field.
ANTHROPIC_NOTE = "seed dropped (no Anthropic equivalent)"
OLLAMA_NOTE = "user dropped: Ollama has no end-user field"


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("failure", ["status-500", "connection-refused"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_fallbacks_answer_reports_only_its_own_dropped_fields(
    failure: str, stream: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    async with AnthropicUpstream() as first, OllamaUpstream(models=["llama3.2"]) as second:
        first.enqueue(Reply(status=500))
        first_url = first.url if failure == "status-500" else f"http://127.0.0.1:{closed_port()}"
        config = settings(
            model("claude", "anthropic", first_url, first.api_key, fallbacks=["local"]),
            model("local", "ollama", second.url, upstream_model="llama3.2"),
            logging={"level": "info", "access_log": True, "json": True},
        )
        rid = uuid.uuid4().hex
        body = {
            "model": "claude",
            "messages": [{"role": "user", "content": "hi"}],
            "seed": 7,
            "user": "end-user-1",
            "stream": stream,
        }
        headers = {"authorization": f"Bearer {GATEWAY_KEY}", "x-request-id": rid}
        async with (
            serve(config) as url,
            aiohttp.ClientSession() as session,
            session.post(url + "/v1/chat/completions", json=body, headers=headers) as resp,
        ):
            await resp.read()
            assert resp.status == 200
            assert resp.headers["x-waypost-deployment"] == "local"
            assert resp.headers["x-waypost-attempts"] == "2"
            dropped = resp.headers["x-waypost-dropped"]
        line = await access_line(capfd, rid)
        if failure == "status-500":
            assert first.hits == 1  # the request was encoded for Anthropic, with its note, and sent
    assert second.last.json["options"]["seed"] == 7
    assert dropped == OLLAMA_NOTE
    assert line["dropped"] == [OLLAMA_NOTE]
    assert ANTHROPIC_NOTE not in dropped
