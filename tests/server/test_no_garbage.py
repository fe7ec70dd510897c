"""The request path leaves nothing for the garbage collector: every object a request makes is freed
when the request ends, by reference counting. A reference cycle made per request (a cancelled
watcher task holding its own frame, a row that refers back to the request) keeps the request's
objects alive until a collection finds them, and under load that was tens of microseconds of CPU
per request (bench/RESULTS.md, "Garbage collection")."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, serve, settings
from waypost.core.context import RequestContext

PRICES = {"input": 1.0, "output": 2.0}
HELLO = {"model": "gpt", "messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 20}


# Every stage at work: a rule that is evaluated (and does not act), a rate limit that counts, the
# cache (which stores the first answer of each kind and replays it after).
POLICY = {
    "rules": {
        "rules": [
            {
                "name": "no-secrets",
                "conditions": [
                    {"type": "content", "target": "messages", "operator": "regex", "value": "secret-[0-9]+"}
                ],
                "action": {"type": "block"},
            }
        ]
    },
    "rate_limits": {
        "limits": [
            {"name": "everyone", "scope": "default", "windows": [{"per": "minute", "requests": 10**6}]}
        ]
    },
    "cache": {"enabled": True, "sampled": True},
}


@pytest.fixture(params=["plain", "policy"])
async def url(request: pytest.FixtureRequest, database: dict[str, Any]) -> AsyncIterator[str]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = Reply(text="Hi there.", input_tokens=5, output_tokens=3)
        config = settings(
            model("gpt", "openai", fake.url, "sk-x", prices=PRICES, public=True),
            database=database,
            budgets={"enabled": True},
            **(POLICY if request.param == "policy" else {}),
        )
        async with serve(config) as gateway:
            yield gateway


MARK = "no-garbage-"  # the X-Request-ID prefix of this test's requests


def _ours(obj: object) -> bool:
    """Whether ``obj`` is one of this test's requests, as the server holds it: its ASGI cycle
    (uvicorn's) or its context (Waypost's). Other tests' servers in the same process may leave
    garbage of their own while this one runs; it is not counted."""
    if isinstance(obj, RequestContext):
        return obj.request_id.startswith(MARK)
    if isinstance(obj, RequestResponseCycle):
        headers = dict(obj.scope.get("headers") or ())
        return headers.get(b"x-request-id", b"").startswith(MARK.encode())
    return False


@contextmanager
def garbage_kept() -> Iterator[list[object]]:
    """Collections off; on exit, what one collection finds unreachable (kept, not freed). The
    caller collects first (``gc.collect()``), before it opens the connection it then uses: in a
    worker that has run most of the suite a full collection blocks the loop for seconds, and
    past uvicorn's keep-alive (5 s) the server closes the idle connection just as the client
    sends on it (a reset, seen in CI)."""
    gc.disable()
    found: list[object] = []
    try:
        yield found
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found.extend(o for o in gc.garbage if _ours(o))
        finally:
            gc.garbage.clear()
            gc.set_debug(0)
            gc.enable()


async def test_requests_answered_plain_and_streamed_in_both_formats_leave_no_reference_cycles(
    url: str,
) -> None:
    headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
    gc.collect()  # before the connection's keep-alive starts (see ``garbage_kept``)
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(url + "/v1/chat/completions", json=HELLO) as resp:  # warm: first-use caches
            assert resp.status == 200
        with garbage_kept() as garbage:
            for stream in (False, True) * 5:
                for path in ("/v1/chat/completions", "/v1/messages"):
                    rid = {"x-request-id": f"{MARK}{uuid.uuid4().hex}"}
                    async with http.post(url + path, json={**HELLO, "stream": stream}, headers=rid) as resp:
                        assert resp.status == 200
                        await resp.read()
            await asyncio.sleep(0.2)  # the requests' ``after`` (audit row, budget settlement) ran
    assert not garbage, f"{len(garbage)} of this test's requests were left in reference cycles"
