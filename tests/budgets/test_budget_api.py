"""/admin/budgets: validation that names the field, budget.* permissions, the admin audit trail,
and the caller's remaining budgets on GET /me/usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.control.client import Control, control, message
from tests.harness import model, settings


@pytest.fixture
async def api(database: dict[str, Any]) -> AsyncIterator[Control]:
    config = settings(
        model("echo", "mock", prices={"input": 1.0, "output": 2.0}, public=True), database=database
    )
    async with control(config) as client:
        yield client


BUDGET = {"name": "b", "scope": "global", "limit_usd": "12.5", "period": "monthly"}


@pytest.mark.parametrize(
    ("fields", "param", "text"),
    [
        ({"scope": "planet"}, "body.scope", "user"),
        ({"period": "yearly"}, "body.period", "monthly"),
        ({"limit_usd": None}, "limit_usd", "limit_usd, limit_tokens or both"),
        ({"limit_usd": "-1"}, "body.limit_usd", "greater than or equal to 0"),
        ({"scope": "user"}, "target", "needs a target"),
        ({"target": "x"}, "target", "takes no target"),
        ({"scope": "user", "target": "nobody@example.com"}, None, "user 'nobody@example.com' does not exist"),
        ({"scope": "model", "target": "nope"}, "target", "no model named 'nope'"),
        ({"scope": "tag", "target": "bad tag"}, "target", "is not a tag"),
        ({"period": "total", "rolling": True}, "period", "cannot be rolling"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"fallback_model": "nope"}, "fallback_model", "no model named 'nope'"),
        ({"alert_webhook": "ftp://example.com/hook"}, "alert_webhook", "http"),
        ({"alert_thresholds": [0]}, "body.alert_thresholds.0", "greater than or equal to 1"),
        ({"name": "has space"}, "body.name", "pattern"),
        ({"colour": "red"}, "body.colour", "Extra inputs"),
    ],
)
async def test_an_invalid_budget_is_refused_naming_what_is_wrong(
    api: Control, fields: dict[str, Any], param: str | None, text: str
) -> None:
    answer = await api.post("/admin/budgets", {**BUDGET, **fields})

    assert answer.status_code in (400, 404), answer.text
    assert text in message(answer)
    if param is not None:
        assert answer.json()["error"]["param"] == param
    assert (await api.get("/admin/budgets")).json()["data"] == []  # nothing half-written


async def test_a_budget_is_created_shown_changed_reset_and_deleted(api: Control) -> None:
    user = await api.person("alice@example.com")
    created = await api.post(
        "/admin/budgets",
        {
            **BUDGET,
            "scope": "user",
            "target": "alice@example.com",
            "timezone": "Europe/Paris",
            "fallback_model": "echo",
        },
    )
    assert created.status_code == 201, created.text
    budget = created.json()
    assert (budget["target"], budget["target_name"], budget["limit_usd"]) == (
        str(user.id),
        "user alice@example.com",
        12.5,
    )
    assert budget["usage"]["remaining_usd"] == 12.5 and budget["alert_thresholds"] == [50, 80, 100]

    changed = await api.patch(f"/admin/budgets/{budget['id']}", {"limit_usd": "20", "cut_off_streams": True})
    assert (
        changed.status_code == 200 and changed.json()["limit_usd"] == 20 and changed.json()["cut_off_streams"]
    )
    assert (await api.get("/admin/budgets/b")).json()["limit_usd"] == 20

    reset = await api.post("/admin/budgets/b/reset", {"keep_usage": False})
    assert reset.status_code == 200 and reset.json()["counted_from"] is not None

    assert (await api.delete("/admin/budgets/b")).status_code == 204
    assert (await api.get("/admin/budgets/b")).status_code == 404


async def test_a_renamed_budget_keeps_a_unique_name(api: Control) -> None:
    await api.post("/admin/budgets", BUDGET)
    await api.post("/admin/budgets", {**BUDGET, "name": "c"})

    answer = await api.patch("/admin/budgets/c", {"name": "b"})

    assert answer.status_code == 409 and "'b' already exists" in message(answer)


async def test_budgets_need_the_budget_permissions(api: Control) -> None:
    viewer = await api.person("viewer@example.com", permissions=("budget.view",))
    assert (await api.post("/admin/budgets", BUDGET)).status_code == 201

    assert (await api.get("/admin/budgets", token=viewer.token)).status_code == 200
    for method, path, body in (
        ("POST", "/admin/budgets", {**BUDGET, "name": "v"}),
        ("PATCH", "/admin/budgets/b", {"limit_usd": "1"}),
        ("POST", "/admin/budgets/b/reset", {}),
        ("DELETE", "/admin/budgets/b", None),
    ):
        answer = await api.call(method, path, body, token=viewer.token)
        assert answer.status_code == 403, (method, path)
        assert "'budget." in message(answer)
    nobody = await api.person("nobody@example.com")
    refused = await api.get("/admin/budgets", token=nobody.token)
    assert refused.status_code == 403 and "'budget.view'" in message(refused)


async def test_budget_changes_are_in_the_admin_audit_trail(api: Control) -> None:
    budget = (await api.post("/admin/budgets", BUDGET)).json()
    await api.patch("/admin/budgets/b", {"limit_usd": "30"})
    await api.post("/admin/budgets/b/reset", {"keep_usage": True})
    await api.delete("/admin/budgets/b")

    trail = (await api.get("/admin/audit-trail", params={"target_type": "budget"})).json()["data"]

    assert [e["action"] for e in reversed(trail)] == [
        "budget.create",
        "budget.update",
        "budget.recount",
        "budget.delete",
    ]
    update = next(e for e in trail if e["action"] == "budget.update")
    assert (update["before"]["limit_usd"], update["after"]["limit_usd"]) == (12.5, 30)
    assert all(e["target_id"] == str(budget["id"]) for e in trail)


async def test_my_usage_shows_the_budgets_on_me_and_what_remains(api: Control) -> None:
    alice = await api.person("alice@example.com")
    await api.post(
        "/admin/budgets", {**BUDGET, "name": "mine", "scope": "user", "target": "alice@example.com"}
    )
    await api.post("/admin/budgets", {**BUDGET, "name": "everyone", "limit_usd": "100"})
    await api.post("/admin/budgets", {**BUDGET, "name": "someone-else", "scope": "user", "target": "1"})

    mine = (await api.get("/me/usage", token=alice.token)).json()["budgets"]

    assert sorted(b["name"] for b in mine) == ["everyone", "mine"]
    assert next(b for b in mine if b["name"] == "mine")["remaining_usd"] == 12.5
