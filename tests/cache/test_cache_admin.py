"""Invalidation through the admin API and ``waypost cache``: by key, by model, by user, by
group, or all; ``cache.*`` permissions; the admin trail."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

from tests.cache.conftest import api_token, cache_settings, chat
from tests.control.client import Control, control
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import GATEWAY_KEY
from waypost.cli.main import app as cli_app


async def status(api: Control, body: dict[str, Any], token: str = GATEWAY_KEY) -> str:
    answer = await api.post("/v1/chat/completions", body, token=token)
    assert answer.status_code == 200, answer.text
    return str(answer.headers["x-cache-status"])


async def invalidate(api: Control, **body: Any) -> dict[str, Any]:
    answer = await api.post("/admin/cache/invalidate", body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_one_entry_is_invalidated_by_its_key(api: Control) -> None:
    first = await api.post("/v1/chat/completions", chat())
    await api.post("/v1/chat/completions", chat("other"))

    removed = await invalidate(api, key=first.headers["x-waypost-cache-key"])

    assert removed == {"removed": 1, "scope": f"key:{first.headers['x-waypost-cache-key']}"}
    assert await status(api, chat()) == "MISS"
    assert await status(api, chat("other")) == "HIT"


async def test_a_models_entries_are_invalidated_together(api: Control) -> None:
    await status(api, chat("a"))
    await status(api, chat("b"))
    await status(api, chat("a", model="gpt-big"))

    assert (await invalidate(api, model="gpt"))["removed"] == 2

    assert [await status(api, chat(t)) for t in ("a", "b")] == ["MISS", "MISS"]
    assert await status(api, chat("a", model="gpt-big")) == "HIT"


async def test_a_users_entries_are_invalidated_by_email_or_id(api: Control) -> None:
    alice = await api_token(api, "alice@example.com")
    await status(api, chat(), token=alice)
    await status(api, chat())  # the administrator's own entry

    assert (await invalidate(api, user="alice@example.com"))["removed"] == 1

    assert await status(api, chat(), token=alice) == "MISS"
    assert await status(api, chat()) == "HIT"
    users = (await api.get("/admin/users")).json()["data"]
    alice_id = next(u["id"] for u in users if u["email"] == "alice@example.com")
    assert (await invalidate(api, user=alice_id))["scope"] == f"user:{alice_id}"


async def test_everything_is_invalidated_with_all(api: Control) -> None:
    for text in ("a", "b", "c"):
        await status(api, chat(text))

    assert (await invalidate(api, all=True))["removed"] == 3
    assert (await api.get("/admin/cache")).json()["entries"] == 0


async def test_exactly_one_scope_is_given(api: Control) -> None:
    both = await api.post("/admin/cache/invalidate", {"model": "gpt", "all": True})
    none = await api.post("/admin/cache/invalidate", {})
    bad_key = await api.post("/admin/cache/invalidate", {"key": "not-a-key"})

    assert both.status_code == none.status_code == bad_key.status_code == 400
    assert "exactly one of key, model, user, group or all" in both.json()["error"]["message"]
    assert "body.key" in bad_key.json()["error"]["message"]


async def test_invalidating_needs_cache_manage_and_stats_cache_view(api: Control) -> None:
    viewer = await api.person("viewer@example.com", permissions=("cache.view",))

    seen = await api.get("/admin/cache", token=viewer.token)
    refused = await api.post("/admin/cache/invalidate", {"all": True}, token=viewer.token)

    assert seen.status_code == 200 and seen.json()["enabled"] is True
    assert refused.status_code == 403 and "'cache.manage'" in refused.json()["error"]["message"]


async def test_stats_count_what_the_cache_did(api: Control) -> None:
    await status(api, chat())
    await status(api, chat())
    await api.post("/v1/chat/completions", chat(), headers={"x-waypost-cache": "bypass"})

    stats = (await api.get("/admin/cache")).json()

    assert (stats["backend"], stats["tenant"], stats["entries"]) == ("memory", "user", 1)
    assert stats["bytes"] > 0 and stats["max_bytes"] == 64 * 1024 * 1024
    counts = stats["counts"]
    assert (counts["hits"], counts["misses"], counts["bypasses"], counts["stored"]) == (1, 1, 1, 1)


async def test_an_invalidation_is_in_the_admin_trail(api: Control) -> None:
    await status(api, chat())
    await invalidate(api, model="gpt")

    trail = (await api.get("/admin/audit-trail")).json()["data"]

    entry = next(e for e in trail if e["action"] == "cache.invalidate")
    assert entry["after"] == {"scope": "model:gpt", "removed": 1}


async def test_with_the_cache_off_invalidation_is_a_409(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    async with control(cache_settings(upstream, cache={"enabled": False}, database=database)) as api:
        stats = await api.get("/admin/cache")
        refused = await api.post("/admin/cache/invalidate", {"all": True})

    assert stats.json()["enabled"] is False
    assert refused.status_code == 409 and "cache.enabled: false" in refused.json()["error"]["message"]


async def test_the_cli_shows_and_invalidates(api: Control) -> None:
    await status(api, chat())
    env = {
        "WAYPOST_URL": api.url,
        "WAYPOST_TOKEN": GATEWAY_KEY,
        "WAYPOST_CREDENTIALS": "/nonexistent/creds.json",
    }

    def waypost(*args: str) -> Any:
        return CliRunner().invoke(cli_app, list(args), env=env)

    shown = await asyncio.to_thread(waypost, "cache", "stats")
    removed = await asyncio.to_thread(waypost, "cache", "invalidate", "--model", "gpt", "--json")
    neither = await asyncio.to_thread(waypost, "cache", "invalidate")

    assert shown.exit_code == 0, shown.output
    assert "entries" in shown.stdout and "1 (0 waited" not in shown.stdout
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout) == {"removed": 1, "scope": "model:gpt"}
    assert neither.exit_code == 2 and "exactly one of" in neither.stderr
    assert await status(api, chat()) == "MISS"


async def test_a_groups_entries_are_invalidated_under_tenant_group(
    upstream: OpenAIUpstream, database: dict[str, Any]
) -> None:
    async with control(cache_settings(upstream, cache={"tenant": "group"}, database=database)) as api:
        erin = await api_token(api, "erin@example.com")
        frank = await api_token(api, "frank@example.com")
        assert (await api.post("/admin/groups", {"name": "eng"})).status_code == 201
        for email in ("erin@example.com", "frank@example.com"):
            await api.post("/admin/groups/eng/members", {"user": email})
        await status(api, chat(), token=erin)
        await status(api, chat("other"))  # the administrator's: in no group

        removed = await invalidate(api, group="eng")

        assert removed == {"removed": 1, "scope": "group:eng"}
        assert await status(api, chat(), token=frank) == "MISS"
        assert await status(api, chat("other")) == "HIT"
