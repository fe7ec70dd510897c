"""The same answer replayed many times: each hit is a copy with an id of its own, and an entry
stored again (after an invalidation, with another answer) is what the next hit replays."""

from __future__ import annotations

from tests.cache.conftest import chat
from tests.control.client import Control
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream


async def test_repeated_hits_have_ids_of_their_own_and_the_same_answer(api: Control) -> None:
    answers = [await api.post("/v1/chat/completions", chat()) for _ in range(4)]

    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "HIT", "HIT"]
    hits = [a.json() for a in answers[1:]]
    assert len({h["id"] for h in hits}) == 3 and all("cache-" in h["id"] for h in hits)
    assert {h["choices"][0]["message"]["content"] for h in hits} == {"The answer is 42."}


async def test_an_entry_stored_again_replays_its_new_answer(api: Control, upstream: OpenAIUpstream) -> None:
    assert (await api.post("/v1/chat/completions", chat())).headers["x-cache-status"] == "MISS"
    assert (await api.post("/v1/chat/completions", chat())).headers["x-cache-status"] == "HIT"
    gone = await api.post("/admin/cache/invalidate", {"model": "gpt"})
    assert gone.status_code == 200, gone.text
    upstream.default_reply = Reply(text="Now it is 43.", input_tokens=100, output_tokens=50)

    again = await api.post("/v1/chat/completions", chat())
    hit = await api.post("/v1/chat/completions", chat())

    assert again.headers["x-cache-status"] == "MISS"
    assert hit.headers["x-cache-status"] == "HIT"
    assert hit.json()["choices"][0]["message"]["content"] == "Now it is 43."
