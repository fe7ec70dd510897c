"""A catalogue change (here a model created through the database, then a reload) builds a new
registry, so names remembered by the old one, found or not, resolve afresh."""

from __future__ import annotations

from typing import Any

from tests.api.client import post
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, running, settings

CHAT = "/v1/chat/completions"
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}


def chat(name: str) -> dict[str, Any]:
    return {"model": name, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_reload_replaces_remembered_resolutions(database: dict[str, Any]) -> None:
    config = settings(model("family", "mock", match="gpt-.*", public=True), database=database)
    async with OpenAIUpstream() as upstream, running(config) as gw:
        # Remembered by the first registry: one name through the pattern, one matched by nothing.
        for _ in range(2):
            assert (await post(gw.url + CHAT, chat("gpt-4o"), AUTH)).status == 200
            assert (await post(gw.url + CHAT, chat("runtime"), AUTH)).status == 404
        before = gw.container.router.registry
        target = {"provider": "openai", "base_url": upstream.url + "/v1"}
        await gw.container.store.models.create("gpt-4o", target, public=True)  # an exact name wins
        await gw.container.store.models.create("runtime", target, public=True)
        await gw.container.catalog.reload()
        assert gw.container.router.registry is not before
        assert (await post(gw.url + CHAT, chat("gpt-4o"), AUTH)).status == 200
        assert (await post(gw.url + CHAT, chat("runtime"), AUTH)).status == 200
        still_pattern = await post(gw.url + CHAT, chat("gpt-5"), AUTH)
    assert [r.json["model"] for r in upstream.requests] == ["gpt-4o", "runtime"]
    assert still_pattern.status == 200
