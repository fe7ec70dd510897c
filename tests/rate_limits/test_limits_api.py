"""/admin/limits: validation that names the field, ``limit.*`` permissions, the admin audit trail,
limits of the config file listed read-only, and changes that apply at once; and the repository
on the run's database backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control, message
from tests.harness import model, settings
from waypost.core.errors import Conflict
from waypost.settings import DatabaseSettings
from waypost.store import Store

CONFIGURED = {
    "name": "from-config",
    "scope": "model",
    "target": "echo",
    "windows": [{"per": "day", "requests": 10_000}],
    "concurrency": 20,
}
LIMIT = {"name": "rpm", "scope": "default", "windows": [{"per": "minute", "requests": 2}]}


@pytest.fixture
async def api(database: dict[str, Any]) -> AsyncIterator[Control]:
    config = settings(
        model("echo", "mock", public=True), database=database, rate_limits={"limits": [CONFIGURED]}
    )
    async with control(config) as client:
        yield client


@pytest.mark.parametrize(
    ("fields", "param", "text"),
    [
        ({"scope": "planet"}, "body.scope", "token"),
        ({"windows": []}, "windows", "needs windows, concurrency or both"),
        ({"windows": [{"per": "minute"}]}, "body.windows.0", "a window needs requests"),
        ({"windows": [{"per": "fortnight", "requests": 1}]}, "body.windows.0.per", "minute"),
        (
            {"windows": [{"per": "minute", "requests": 0}]},
            "body.windows.0.requests",
            "greater than or equal to 1",
        ),
        (
            {"windows": [{"per": "minute", "requests": 1}, {"per": 60, "tokens": 5}]},
            "windows",
            "a period ('per') of its own",
        ),
        ({"concurrency": 0}, "body.concurrency", "greater than or equal to 1"),
        ({"target": "x"}, "target", "takes no target"),
        ({"scope": "user"}, "target", "needs a target"),
        ({"scope": "user", "target": "nobody@example.com"}, None, "user 'nobody@example.com' does not exist"),
        ({"scope": "token", "target": "999"}, None, "token '999' does not exist"),
        ({"scope": "model", "target": "nope"}, "target", "no model named 'nope'"),
        ({"name": "has space"}, "body.name", "pattern"),
        ({"name": "from-config"}, None, "declared in the config file"),
        ({"colour": "red"}, "body.colour", "Extra inputs"),
    ],
)
async def test_an_invalid_limit_is_refused_naming_what_is_wrong(
    api: Control, fields: dict[str, Any], param: str | None, text: str
) -> None:
    answer = await api.post("/admin/limits", {**LIMIT, **fields})

    assert answer.status_code in (400, 404, 409), answer.text
    assert text in message(answer)
    if param is not None:
        assert answer.json()["error"]["param"] == param
    names = [item["name"] for item in (await api.get("/admin/limits")).json()["data"]]
    assert names == ["from-config"]  # nothing half-written


async def test_a_limit_is_created_shown_changed_and_deleted_and_applies_at_once(api: Control) -> None:
    created = await api.post("/admin/limits", {**LIMIT, "description": "two a minute"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["source"], body["target_name"], body["enabled"], body["description"]) == (
        "database",
        "each user",
        True,
        "two a minute",
    )
    assert body["windows"] == [
        {"per": "minute", "requests": 2, "tokens": None, "input_tokens": None, "output_tokens": None}
    ]
    chat = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    assert [(await api.post("/v1/chat/completions", chat)).status_code for _ in range(3)] == [200, 200, 429]

    changed = await api.patch(
        f"/admin/limits/{body['id']}",
        {"scope": "model", "target": "echo", "windows": [{"per": "minute", "requests": 5}], "concurrency": 3},
    )
    assert changed.status_code == 200, changed.text
    shown = (await api.get("/admin/limits/rpm")).json()
    assert (shown["scope"], shown["target"], shown["concurrency"]) == ("model", "echo", 3)
    assert shown["usage"]["windows"][0]["requests"] == 0 and shown["usage"]["in_flight"] == 0
    assert (await api.post("/v1/chat/completions", chat)).status_code == 200  # a new target: counted afresh
    assert (await api.get("/admin/limits/rpm")).json()["usage"]["windows"][0]["requests"] == 1

    disabled = await api.patch("/admin/limits/rpm", {"enabled": False})
    assert disabled.json()["enabled"] is False and disabled.json()["usage"] is None
    assert (await api.delete("/admin/limits/rpm")).status_code == 204
    assert (await api.get("/admin/limits/rpm")).status_code == 404


async def test_a_limit_of_the_config_file_is_listed_and_read_only(api: Control) -> None:
    listed = (await api.get("/admin/limits")).json()["data"]

    assert [(x["name"], x["source"], x["id"], x["concurrency"]) for x in listed] == [
        ("from-config", "config", None, 20)
    ]
    assert listed[0]["usage"] == {"windows": [listed[0]["usage"]["windows"][0]], "in_flight": 0}
    for answer in (
        await api.patch("/admin/limits/from-config", {"concurrency": 1}),
        await api.delete("/admin/limits/from-config"),
    ):
        assert answer.status_code == 409
        assert "declared in the config file" in message(answer)


async def test_limit_permissions_are_needed_for_each_action(api: Control) -> None:
    viewer = await api.person("viewer@example.com", permissions=("limit.view",))
    nobody = await api.person("nobody@example.com")

    assert (await api.get("/admin/limits", token=viewer.token)).status_code == 200
    refused = await api.post("/admin/limits", LIMIT, token=viewer.token)
    assert refused.status_code == 403 and "limit.create" in message(refused)
    assert (await api.get("/admin/limits", token=nobody.token)).status_code == 403
    created = await api.post("/admin/limits", LIMIT)
    assert (await api.patch("/admin/limits/rpm", {"concurrency": 2}, token=viewer.token)).status_code == 403
    assert (await api.delete(f"/admin/limits/{created.json()['id']}", token=viewer.token)).status_code == 403


async def test_every_change_goes_to_the_admin_audit_trail(api: Control) -> None:
    alice = await api.person("alice@example.com")
    created = (
        await api.post(
            "/admin/limits",
            {
                "name": "alice",
                "scope": "user",
                "target": alice.email,
                "windows": [{"per": "hour", "tokens": 9}],
            },
        )
    ).json()
    await api.patch("/admin/limits/alice", {"concurrency": 4})
    await api.delete("/admin/limits/alice")

    entries = (await api.get("/admin/audit-trail", params={"target_type": "rate_limit"})).json()["data"]
    assert [e["action"] for e in entries] == ["limit.delete", "limit.update", "limit.create"]
    assert {e["target_id"] for e in entries} == {str(created["id"])}
    update = entries[1]
    assert (update["before"]["concurrency"], update["after"]["concurrency"]) == (None, 4)
    assert update["after"]["target_name"] == "user alice@example.com"


@pytest.fixture
async def store(database: dict[str, Any]) -> AsyncIterator[Store]:
    store = Store.from_settings(DatabaseSettings.model_validate(database))
    await store.upgrade()
    try:
        yield store
    finally:
        await store.close()


async def test_the_repository_keeps_limits_by_id_and_by_unique_name(store: Store) -> None:
    repo = store.rate_limits
    config = {"windows": [{"per": "minute", "requests": 10}], "concurrency": None, "enabled": True}
    made = await repo.create(name="a", scope="group", target="7", config=config)
    with pytest.raises(Conflict, match="named 'a' already exists"):
        await repo.create(name="a", scope="default", target=None, config=config)

    changed = await repo.update(made.id, {"name": "b", "config": {**config, "concurrency": 2}})

    assert (changed.name, changed.config["concurrency"], changed.created_at) == ("b", 2, made.created_at)
    assert await repo.by_name("b") == changed == await repo.get(made.id)
    assert [r.name for r in await repo.list()] == ["b"]
    assert await repo.delete(made.id) and not await repo.delete(made.id)
    assert await repo.get(made.id) is None
