"""The admin audit trail through the control plane: every change of users, groups, permissions,
models, assignments, tokens and secrets is recorded with who, when, from where and before/after,
never a credential; /admin/audit-trail pages through it and /verify catches tampering."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.control.client import PASSWORD, Control, control, message
from tests.control.test_oidc import CLIENT_SECRET, sso_settings, to_callback
from tests.fakes.oidc_provider import FakeOidcProvider
from tests.harness import ADMIN_EMAIL, GATEWAY_KEY
from waypost.store import tables

SECRET_VALUE = "sk-trail-secret-value-0123456789"
MODEL_KEY = "sk-trail-model-key-0123456789"
NEW_PASSWORD = "Another-long-passw0rd-99"


async def trail(api: Control, **params: Any) -> list[dict[str, Any]]:
    """Every entry, oldest first, following the cursor."""
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        resp = await api.get("/admin/audit-trail", params=query)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        entries += page["data"]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if cursor is None:
            return entries[::-1]


def actions(entries: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in entries]


def only(entries: list[dict[str, Any]], action: str) -> dict[str, Any]:
    found = [e for e in entries if e["action"] == action]
    assert len(found) == 1, (action, actions(entries))
    return found[0]


async def test_user_changes_are_recorded_with_who_when_where_and_before_after(api: Control) -> None:
    created = await api.post("/admin/users", {"email": "bob@example.com", "password": PASSWORD})
    bob = created.json()["id"]
    await api.patch(f"/admin/users/{bob}", {"display_name": "Robert", "password": NEW_PASSWORD})
    await api.delete(f"/admin/users/{bob}")
    entries = await trail(api)
    assert actions(entries) == ["user.create", "user.update", "user.delete"]
    create, update, delete = entries
    admin_id = (await api.get("/me")).json()["id"]
    for entry in entries:
        assert (entry["actor_id"], entry["actor_email"]) == (admin_id, ADMIN_EMAIL)
        assert entry["client_ip"] == "127.0.0.1"
        assert (entry["target_type"], entry["target_id"]) == ("user", str(bob))
        assert entry["created_at"]
    assert create["before"] is None
    assert create["after"]["email"] == "bob@example.com" and create["after"]["has_password"] is True
    assert update["before"]["display_name"] == "bob"
    assert update["after"]["display_name"] == "Robert" and update["after"]["password_changed"] is True
    assert delete["before"]["display_name"] == "Robert" and delete["after"] is None


async def test_group_membership_and_permission_changes_are_recorded(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.post("/admin/groups", {"name": "team", "description": "first"})
    await api.patch("/admin/groups/team", {"description": "second"})
    await api.post("/admin/groups/team/members", {"user": bob.email})
    await api.post("/admin/groups/team/permissions", {"permissions": ["model.view"]})
    await api.delete("/admin/groups/team/permissions/model.view")
    await api.post(f"/admin/users/{bob.id}/permissions", {"permissions": ["usage.view"]})
    await api.delete(f"/admin/users/{bob.id}/permissions/usage.view")
    await api.delete(f"/admin/groups/team/members/{bob.id}")
    await api.delete("/admin/groups/team")
    entries = [e for e in await trail(api) if e["target_type"] == "group" or e["action"].startswith("perm")]
    assert actions(entries) == [
        "group.create",
        "group.update",
        "group.member.add",
        "permission.grant",
        "permission.revoke",
        "permission.grant",
        "permission.revoke",
        "group.member.remove",
        "group.delete",
    ]
    update = only(entries, "group.update")
    assert (update["before"]["description"], update["after"]["description"]) == ("first", "second")
    added = only(entries, "group.member.add")
    assert added["before"]["members"] == [] and added["after"]["members"][0]["email"] == bob.email
    user_grant = [e for e in entries if e["action"] == "permission.grant" and e["target_type"] == "user"]
    assert user_grant[0]["target_id"] == str(bob.id)
    assert (user_grant[0]["before"]["direct"], user_grant[0]["after"]["direct"]) == ([], ["usage.view"])
    group_revoke = [e for e in entries if e["action"] == "permission.revoke" and e["target_type"] == "group"]
    assert (group_revoke[0]["before"]["direct"], group_revoke[0]["after"]["direct"]) == (["model.view"], [])


async def test_model_and_assignment_changes_are_recorded_with_their_secrets(api: Control) -> None:
    bob = await api.person("bob@example.com")
    model = {"name": "gpt", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": MODEL_KEY}
    assert (await api.post("/admin/models", model)).status_code == 201
    await api.patch("/admin/models/gpt", {"upstream_model": "gpt-4o-mini"})
    await api.post("/admin/models/gpt/assign", {"users": [bob.email]})
    await api.post("/admin/models/gpt/unassign", {"users": [bob.email]})
    await api.delete("/admin/models/gpt")
    entries = [e for e in await trail(api) if e["target_type"] in ("model", "secret")]
    assert actions(entries) == [
        "secret.create",  # the plaintext key became the secret model.gpt.api_key
        "model.create",
        "model.update",
        "model.assign",
        "model.unassign",
        "model.delete",
        "secret.delete",  # and went with the model
    ]
    assert only(entries, "secret.create")["target_id"] == "model.gpt.api_key"
    create = only(entries, "model.create")
    assert create["after"]["config"]["api_key"] == "secret://model.gpt.api_key"
    update = only(entries, "model.update")
    assert update["before"]["config"]["upstream_model"] is None
    assert update["after"]["config"]["upstream_model"] == "gpt-4o-mini"
    assign = only(entries, "model.assign")
    assert (assign["before"]["users"], assign["after"]["users"]) == ([], [bob.email])
    unassign = only(entries, "model.unassign")
    assert (unassign["before"]["users"], unassign["after"]["users"]) == ([bob.email], [])
    assert only(entries, "model.delete")["before"]["name"] == "gpt"


async def test_token_changes_are_recorded_from_admin_and_self_service(api: Control) -> None:
    bob = await api.person("bob@example.com")
    minted = (await api.post("/admin/tokens", {"user": bob.email, "name": "ci"})).json()
    await api.patch(f"/admin/tokens/{minted['id']}", {"name": "build"})
    await api.delete(f"/admin/tokens/{minted['id']}")
    own = (await api.post("/me/tokens", {"name": "laptop"}, token=bob.token)).json()
    await api.delete(f"/me/tokens/{own['id']}", token=bob.token)
    entries = [e for e in await trail(api) if e["target_type"] == "token"]
    assert actions(entries) == [
        "token.create",
        "token.update",
        "token.delete",
        "token.create",
        "token.delete",
    ]
    create, update, _, own_create, own_delete = entries
    assert create["target_id"] == str(minted["id"]) and create["after"]["user_id"] == bob.id
    assert "token" not in create["after"]
    assert (update["before"]["name"], update["after"]["name"]) == ("ci", "build")
    assert (own_create["actor_email"], own_create["after"]["name"]) == (bob.email, "laptop")
    assert own_delete["actor_id"] == bob.id and own_delete["before"]["id"] == own["id"]


async def test_secret_and_password_changes_are_recorded(api: Control) -> None:
    await api.post("/admin/secrets", {"name": "key", "value": SECRET_VALUE, "description": "one"})
    await api.patch("/admin/secrets/key", {"value": SECRET_VALUE + "-2", "description": "two"})
    await api.post("/admin/secrets/rotate")
    await api.delete("/admin/secrets/key")
    bob = await api.person("bob@example.com")
    changed = await api.post(
        "/me/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=bob.token
    )
    assert changed.status_code == 204
    entries = await trail(api)
    assert actions(entries)[-1] == "user.password.change"
    assert (entries[-1]["actor_id"], entries[-1]["target_id"]) == (bob.id, str(bob.id))
    secrets = [e for e in entries if e["target_type"] == "secret"]
    assert actions(secrets) == ["secret.create", "secret.update", "secret.rotate", "secret.delete"]
    update = only(secrets, "secret.update")
    assert (update["before"]["description"], update["after"]["description"]) == ("one", "two")
    assert update["after"]["value_changed"] is True
    assert only(secrets, "secret.rotate")["after"] == {"rotated": 1}


async def test_no_credential_reaches_the_trail(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.patch(f"/admin/users/{bob.id}", {"password": NEW_PASSWORD})
    token = (await api.post("/admin/tokens", {"user": bob.email, "name": "ci"})).json()
    await api.post("/admin/secrets", {"name": "key", "value": SECRET_VALUE})
    await api.patch("/admin/secrets/key", {"value": SECRET_VALUE + "-2"})
    model = {"name": "gpt", "provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": MODEL_KEY}
    await api.post("/admin/models", model)
    await api.patch("/admin/models/gpt", {"api_key": MODEL_KEY + "-2"})
    async with api.container.store.engine.connect() as conn:
        stored = repr((await conn.execute(sa.select(tables.admin_audit))).all())
        hashes = (await conn.execute(sa.select(tables.users.c.password_hash))).scalars().all()
        token_hashes = (await conn.execute(sa.select(tables.api_tokens.c.token_hash))).scalars().all()
        ciphertexts = (await conn.execute(sa.select(tables.secrets.c.ciphertext))).scalars().all()
    assert len(await trail(api)) >= 8
    for leaked in (PASSWORD, NEW_PASSWORD, SECRET_VALUE, MODEL_KEY, token["token"], GATEWAY_KEY):
        assert leaked not in stored
    for value in [*hashes, *token_hashes, *ciphertexts]:
        assert value is None or value not in stored
    assert not api.leaked(SECRET_VALUE) and not api.leaked(MODEL_KEY)


async def test_a_refused_change_records_nothing(api: Control) -> None:
    bob = await api.person("bob@example.com")
    before = len(await trail(api))
    assert (await api.post("/admin/groups", {"name": "x"}, token=bob.token)).status_code == 403
    assert (await api.delete("/admin/users/9999")).status_code == 404
    assert (await api.post("/admin/secrets", {"name": "../x", "value": "v"})).status_code == 400
    assert len(await trail(api)) == before


async def test_the_trail_filters_by_action_target_and_actor(api: Control) -> None:
    bob = await api.person("bob@example.com", permissions=("group.create",))
    await api.post("/admin/groups", {"name": "ops"}, token=bob.token)
    assert actions(await trail(api, action="group.create")) == ["group.create"]
    assert [e["target_id"] for e in await trail(api, target_type="user")] == [str(bob.id)] * 2
    by_bob = await trail(api, actor=bob.email.upper())
    assert actions(by_bob) == ["group.create"] and by_bob == await trail(api, actor=str(bob.id))
    assert await trail(api, **{"from": "2999-01-01"}) == []
    assert len(await trail(api, to="2999-01-01T00:00:00Z")) == 3


async def test_bad_parameters_are_400s_naming_them(api: Control) -> None:
    cases = {
        "cursor": {"cursor": "abc"},
        "query.action": {"action": "User; DROP TABLE"},
        "query.limit": {"limit": "0"},
        "from": {"from": "yesterday"},
        "to": {"from": "2026-02-01", "to": "2026-01-01"},
        "sort": {"sort": "id"},
        "actor": {"actor": "\x01"},
    }
    for name, query in cases.items():
        resp = await api.get("/admin/audit-trail", params=query)
        assert resp.status_code == 400, (name, resp.text)
        assert message(resp).startswith(name), (name, message(resp))
    bad_anchor = await api.get("/admin/audit-trail/verify", params={"anchor": "xyz"})
    assert bad_anchor.status_code == 400 and message(bad_anchor).startswith("query.anchor")


async def test_the_trail_needs_audit_view(api: Control) -> None:
    bob = await api.person("bob@example.com")
    for path in ("/admin/audit-trail", "/admin/audit-trail/verify"):
        resp = await api.get(path, token=bob.token)
        assert resp.status_code == 403 and "audit.view" in message(resp)
    auditor = await api.person("eve@example.com", permissions=("audit.view",))
    assert (await api.get("/admin/audit-trail", token=auditor.token)).status_code == 200


async def test_verify_reports_an_intact_chain_and_an_edited_entry(api: Control) -> None:
    await api.post("/admin/groups", {"name": "a"})
    await api.post("/admin/groups", {"name": "b"})
    await api.post("/admin/groups", {"name": "c"})
    intact = (await api.get("/admin/audit-trail/verify")).json()
    assert intact["ok"] is True and intact["entries"] == 3 and intact["problems"] == []
    anchor = intact["head_hash"]
    middle = (await trail(api))[1]["id"]
    async with api.container.store.engine.begin() as conn:
        await conn.execute(sa.text(f"UPDATE admin_audit SET client_ip = '10.0.0.1' WHERE id = {middle}"))
    result = (await api.get("/admin/audit-trail/verify", params={"anchor": anchor})).json()
    assert result["ok"] is False and result["problem_count"] == 1
    assert result["problems"][0] == {
        "kind": "edited",
        "id": middle,
        "message": f"entry {middle} was edited: it no longer matches its hash",
    }


async def test_verify_catches_a_removed_and_a_reordered_entry(api: Control) -> None:
    for name in "abcde":
        await api.post("/admin/groups", {"name": name})
    ids = [e["id"] for e in await trail(api)]
    async with api.container.store.engine.begin() as conn:
        await conn.execute(sa.text(f"DELETE FROM admin_audit WHERE id = {ids[1]}"))
        await conn.execute(sa.text(f"UPDATE admin_audit SET id = -1 WHERE id = {ids[3]}"))
        await conn.execute(sa.text(f"UPDATE admin_audit SET id = {ids[3]} WHERE id = {ids[4]}"))
        await conn.execute(sa.text(f"UPDATE admin_audit SET id = {ids[4]} WHERE id = -1"))
    result = (await api.get("/admin/audit-trail/verify")).json()
    kinds = [(p["kind"], p["id"]) for p in result["problems"]]
    assert kinds[0] == ("removed", ids[2])
    assert kinds[1] == ("reordered", ids[3])


async def test_an_account_created_at_its_first_single_sign_on_is_recorded() -> None:
    async with (
        FakeOidcProvider(client_id="waypost", client_secret=CLIENT_SECRET) as idp,
        control(sso_settings(idp)) as api,
    ):
        signed_in = await api.http.get(await to_callback(api))
        assert signed_in.status_code == 200, signed_in.text
        again = await api.http.get(await to_callback(api))  # the account exists: no second entry
        assert again.status_code == 200
        entries = await trail(api)
    assert actions(entries) == ["user.create"]
    entry = entries[0]
    user = signed_in.json()["user"]
    assert (entry["actor_id"], entry["actor_email"], entry["target_id"]) == (
        user["id"],
        user["email"],
        str(user["id"]),
    )
    assert entry["after"]["created_by"] == "single sign-on (corp)" and entry["client_ip"] == "127.0.0.1"
