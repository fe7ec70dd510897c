"""A caller never receives another tenant's cached answer; a hit still checks model access."""

from __future__ import annotations

from typing import Any

from tests.cache.conftest import api_token, cache_settings, chat
from tests.control.client import Control, control
from tests.fakes.openai_upstream import OpenAIUpstream


async def test_two_users_sending_the_same_bytes_each_reach_the_upstream(
    api: Control, upstream: OpenAIUpstream
) -> None:
    alice = await api_token(api, "alice@example.com")
    bob = await api_token(api, "bob@example.com")

    first = await api.post("/v1/chat/completions", chat(), token=alice)
    other = await api.post("/v1/chat/completions", chat(), token=bob)
    again = await api.post("/v1/chat/completions", chat(), token=alice)
    bob_again = await api.post("/v1/chat/completions", chat(), token=bob)

    assert upstream.hits == 2
    assert [a.headers["x-cache-status"] for a in (first, other, again, bob_again)] == [
        "MISS",
        "MISS",
        "HIT",
        "HIT",
    ]
    assert first.headers["x-waypost-cache-key"] != other.headers["x-waypost-cache-key"]
    # Both upstream calls were byte-identical: only the tenant told them apart.
    assert upstream.requests[0].body == upstream.requests[1].body


async def test_a_users_tokens_share_their_entries(api: Control, upstream: OpenAIUpstream) -> None:
    person = await api.person("carol@example.com")
    tokens = []
    for name in ("laptop", "ci"):
        created = await api.post("/me/tokens", {"name": name}, token=person.token)
        tokens.append(created.json()["token"])

    await api.post("/v1/chat/completions", chat(), token=tokens[0])
    hit = await api.post("/v1/chat/completions", chat(), token=tokens[1])

    assert hit.headers["x-cache-status"] == "HIT" and upstream.hits == 1


async def test_a_token_without_access_to_the_model_gets_no_hit(
    api: Control, upstream: OpenAIUpstream
) -> None:
    person = await api.person("dave@example.com")
    full = (await api.post("/me/tokens", {"name": "all"}, token=person.token)).json()["token"]
    narrow = (
        await api.post("/me/tokens", {"name": "big", "models": ["gpt-big"]}, token=person.token)
    ).json()["token"]
    await api.post("/v1/chat/completions", chat(), token=full)

    refused = await api.post("/v1/chat/completions", chat(), token=narrow)

    assert refused.status_code == 404
    assert "does not exist or you do not have access to it" in refused.json()["error"]["message"]
    assert upstream.hits == 1


async def test_with_tenant_group_members_of_the_same_groups_share_entries(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    async with control(cache_settings(upstream, cache={"tenant": "group"}, database=database)) as api:
        erin = await api_token(api, "erin@example.com")
        frank = await api_token(api, "frank@example.com")
        grace = await api_token(api, "grace@example.com")
        heidi = await api_token(api, "heidi@example.com")
        for name in ("eng", "ops"):
            assert (await api.post("/admin/groups", {"name": name})).status_code == 201
        for email, group in (("erin", "eng"), ("frank", "eng"), ("grace", "eng"), ("grace", "ops")):
            added = await api.post(f"/admin/groups/{group}/members", {"user": f"{email}@example.com"})
            assert added.status_code == 200, added.text

        by_erin = await api.post("/v1/chat/completions", chat(), token=erin)
        by_frank = await api.post("/v1/chat/completions", chat(), token=frank)
        by_grace = await api.post("/v1/chat/completions", chat(), token=grace)  # eng and ops: another set
        by_heidi = await api.post("/v1/chat/completions", chat(), token=heidi)  # no group: her own

    assert [a.headers["x-cache-status"] for a in (by_erin, by_frank, by_grace, by_heidi)] == [
        "MISS",
        "HIT",
        "MISS",
        "MISS",
    ]
    assert upstream.hits == 3
