"""The gateway keeps no cookies from upstreams: one HTTP client serves every caller, so a cookie
an upstream sets in answer to one caller's request (a session, a load balancer's affinity, a bot
check) would otherwise go out with every later request of every caller to that host."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, serve, settings

HELLO = {"model": "gpt", "messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 5}


async def test_a_cookie_an_upstream_sets_is_not_sent_back(database: dict[str, Any]) -> None:
    async with OpenAIUpstream() as fake:
        fake.enqueue(
            Reply(text="Hi.", headers={"set-cookie": "session=caller-a-secret; Path=/"}),
            Reply(text="Hi again."),
        )
        upstream = fake.url.replace("127.0.0.1", "localhost")  # a name: a jar keeps no IP's cookies
        config = settings(model("gpt", "openai", upstream, "sk-x", public=True), database=database)
        async with serve(config) as url, aiohttp.ClientSession() as http:
            for stream in (False, True):
                headers = {"authorization": f"Bearer {GATEWAY_KEY}"}
                async with http.post(
                    url + "/v1/chat/completions", json={**HELLO, "stream": stream}, headers=headers
                ) as resp:
                    assert resp.status == 200
                    await resp.read()
                    assert "set-cookie" not in resp.headers  # nor passed back to the caller
        assert len(fake.requests) == 2
        assert "cookie" not in fake.requests[1].headers
