"""The end of the grace period, on a real ``waypost serve`` process sent a real SIGTERM: what
still runs when ``server.shutdown_grace`` ends is cut, each request in its own format — an OpenAI
stream with an error chunk and no ``[DONE]``, an Anthropic stream with an ``error`` event, a request
not yet answered with a 503 — and each keeps its audit row, saying it was cut by the shutdown. The
old key ``audit.shutdown_grace`` still sets the grace period."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.budgets.test_concurrency import start_gateway
from tests.fakes import OpenAIUpstream, Reply
from tests.metering.test_audit_shutdown import gateway_doc, model_entry, read_log, server_log
from waypost.settings import ConfigError, Settings, load_settings

__all__ = ["gateway_doc"]  # the fixture

WAIT = 60.0  # seconds for what should happen long before
# Ten deltas a second apart: a stream is still running when the short grace period ends.
SLOW_STREAM = Reply(text=" ".join(f"w{i}" for i in range(10)), chunks=10, chunk_delay_s=1.0)
SLOW_ANSWER = Reply(text="late", latency_s=WAIT)  # its headers would come long after the grace


async def read_all(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], rid: str, begun: asyncio.Event
) -> tuple[int, str]:
    async with client.stream("POST", url, json=body, headers={"x-request-id": rid}) as resp:
        parts = []
        async for chunk in resp.aiter_raw():
            begun.set()
            parts.append(chunk)
        return resp.status_code, b"".join(parts).decode()


async def sent(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], rid: str, *, until_begun: bool
) -> asyncio.Task[tuple[int, str]]:
    """The request, running; ``until_begun``: once its answer's first bytes have come."""
    begun = asyncio.Event()
    task = asyncio.create_task(read_all(client, url, body, rid, begun))
    if until_begun:
        await asyncio.wait_for(begun.wait(), WAIT)
    return task


@pytest.mark.parametrize("workers", [1, 2])
async def test_what_still_runs_when_the_grace_period_ends_is_cut_in_its_format_and_keeps_its_row(
    tmp_path: Path, gateway_doc: dict[str, Any], workers: int
) -> None:
    async with OpenAIUpstream(api_key="sk-fake") as upstream:
        upstream.enqueue(SLOW_STREAM, SLOW_STREAM, SLOW_ANSWER)
        doc = {
            **gateway_doc,
            "models": [model_entry(upstream.url)],
            "server": {"shutdown_grace": 0.5, "workers": workers},
        }
        process, url = await asyncio.to_thread(start_gateway, tmp_path, "gateway", doc)
        try:
            async with httpx.AsyncClient(timeout=WAIT) as client:
                messages = [{"role": "user", "content": "count"}]
                chat, anthropic_messages = f"{url}/v1/chat/completions", f"{url}/v1/messages"
                streamed = {"model": "gpt", "stream": True, "messages": messages}
                openai = await sent(client, chat, streamed, "cut-openai", until_begun=True)
                anthropic = await sent(
                    client,
                    anthropic_messages,
                    {**streamed, "max_tokens": 50},
                    "cut-anthropic",
                    until_begun=True,
                )
                waiting = await sent(
                    client, chat, {"model": "gpt", "messages": messages}, "cut-waiting", until_begun=False
                )
                async with asyncio.timeout(WAIT):
                    while upstream.hits < 3:  # the third request waits for its answer upstream
                        await asyncio.sleep(0.02)
                process.send_signal(signal.SIGTERM)
                (
                    (openai_status, openai_text),
                    (anthropic_status, anthropic_text),
                    (status, answer),
                ) = await asyncio.gather(openai, anthropic, waiting)
            returncode = await asyncio.to_thread(process.wait, WAIT)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert returncode == 0, server_log(tmp_path)

    # OpenAI: some deltas, then an error chunk, and no [DONE] (a cut is never a clean end).
    assert openai_status == 200
    data = [line[6:] for line in openai_text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in data
    assert json.loads(data[0])["choices"][0]["delta"]
    error = json.loads(data[-1])["error"]
    assert error["type"] == "service_unavailable"
    assert "grace period (0.5 s)" in error["message"]

    # Anthropic: the stream's last event is an ``error`` event.
    assert anthropic_status == 200
    events = [line[7:] for line in anthropic_text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error"
    last = json.loads(anthropic_text.rstrip().splitlines()[-1][6:])
    assert last["type"] == "error" and last["error"]["type"] == "overloaded_error"

    # Not answered yet: a 503 in its format.
    assert status == 503
    assert json.loads(answer)["error"]["type"] == "service_unavailable"

    requests, attempts = await read_log(gateway_doc["database"]["url"])
    assert set(requests) == {"cut-openai", "cut-anthropic", "cut-waiting"}
    for rid, row in requests.items():
        assert (row.status, row.error_class) == (503, "ShuttingDown"), rid
        assert row.stream == (rid != "cut-waiting")
        assert len(attempts.get(rid, [])) == 1


def test_the_old_key_sets_the_grace_period_and_the_new_one_wins() -> None:
    assert Settings.model_validate({"audit": {"shutdown_grace": 7}}).server.shutdown_grace == 7
    both = Settings.model_validate({"audit": {"shutdown_grace": 7}, "server": {"shutdown_grace": 2}})
    assert both.server.shutdown_grace == 2
    assert Settings().server.shutdown_grace == 30


def test_an_invalid_old_key_is_reported_under_its_own_name() -> None:

    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"WAYPOST_AUDIT__SHUTDOWN_GRACE": "-1"})
    assert str(caught.value).startswith("audit.shutdown_grace: ")
    assert "server.shutdown_grace" not in str(caught.value)
