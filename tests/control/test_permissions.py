"""Deny by default, grants, and the escalation rules: nobody hands out more than they hold, acts
on someone who holds more, or changes their own access."""

from __future__ import annotations

import re

from tests.control.client import Control, message
from tests.harness import ADMIN_EMAIL

AREA = {"users": "user", "groups": "group", "models": "model", "tokens": "token", "secrets": "secret"}
AREA["audit-trail"] = "audit"  # the admin audit trail needs audit.view
AREA["budgets"] = "budget"
AREA["limits"] = "limit"
AREA["rules"] = "rule"
AREA["cache"] = "cache"
AREA["usage"] = "usage"  # usage reports need usage.view
AREA["audit-logs"] = "audit"  # the request audit log needs audit.view
AREA["audit-logs.csv"] = "audit"  # its CSV export too
EXAMPLES = {"user": "1", "group": "1", "name": "echo", "token_id": "1", "permission": "user.view"}
EXAMPLES["budget"] = "1"
EXAMPLES["limit"] = "1"
EXAMPLES["rule"] = "1"
EXAMPLES["request_id"] = "req-1"
OPEN_TO_EVERYONE = {"/admin/status", "/admin/openapi.json", "/admin/docs"}


async def test_the_permission_catalog_describes_each_permission_and_role(api: Control) -> None:
    resp = await api.get("/admin/permissions")
    assert resp.status_code == 200
    body = resp.json()
    names = [p["name"] for p in body["data"]]
    assert "user.view" in names and "secret.delete" in names and "audit.view" in names
    assert all(p["description"] for p in body["data"])
    assert body["roles"]["admin"] == sorted(names)
    assert body["roles"]["user"] == body["roles"]["gateway"] == []


async def test_a_plain_user_is_refused_every_admin_route_naming_the_permission(api: Control) -> None:
    bob = await api.person("bob@example.com")
    doc = (await api.get("/admin/openapi.json")).json()
    checked = 0
    for template, operations in doc["paths"].items():
        if not template.startswith("/admin/") or template in OPEN_TO_EVERYONE:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: EXAMPLES[m.group(1)], template)
        area = AREA.get(template.split("/")[2], "user")  # /admin/permissions lists user permissions
        for method in operations:
            resp = await api.call(
                method.upper(), path, {} if method in ("post", "patch") else None, token=bob.token
            )
            assert resp.status_code == 403, (method, template, resp.text)
            named = re.fullmatch(r"this action needs the '([a-z]+)\.([a-z]+)' permission", message(resp))
            assert named is not None and named.group(1) == area, (method, template, message(resp))
            checked += 1
    assert checked >= 30


async def test_a_granted_permission_opens_just_its_route(api: Control) -> None:
    bob = await api.person("bob@example.com", permissions=("user.view",))
    assert (await api.get("/admin/users", token=bob.token)).status_code == 200
    assert (await api.post("/admin/users", {"email": "x@example.com"}, token=bob.token)).status_code == 403


async def test_granting_an_unknown_permission_is_a_400_listing_the_valid_ones(api: Control) -> None:
    bob = await api.person("bob@example.com")
    resp = await api.post(f"/admin/users/{bob.id}/permissions", {"permissions": ["user.fly"]})
    assert resp.status_code == 400
    assert "'user.fly'" in message(resp) and "user.view" in message(resp)


async def test_a_users_direct_grant_can_be_revoked(api: Control) -> None:
    bob = await api.person("bob@example.com", permissions=("user.view", "group.view"))
    resp = await api.delete(f"/admin/users/{bob.id}/permissions/user.view")
    assert resp.status_code == 204
    assert (await api.get(f"/admin/users/{bob.id}/permissions")).json()["direct"] == ["group.view"]
    assert (await api.get("/admin/users", token=bob.token)).status_code == 403
    again = await api.delete(f"/admin/users/{bob.id}/permissions/user.view")
    assert again.status_code == 404


async def test_user_modify_does_not_let_a_user_grant_themselves_token_create(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.modify",))
    resp = await api.post(
        f"/admin/users/{carol.id}/permissions", {"permissions": ["token.create"]}, token=carol.token
    )
    assert resp.status_code == 403
    assert "token.create" in message(resp)
    assert "token.create" not in (await api.get(f"/admin/users/{carol.id}")).json()["permissions"]


async def test_a_user_cannot_grant_others_a_permission_they_lack(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.modify",))
    dave = await api.person("dave@example.com")
    resp = await api.post(
        f"/admin/users/{dave.id}/permissions", {"permissions": ["secret.view"]}, token=carol.token
    )
    assert resp.status_code == 403
    assert "you cannot grant permissions you do not hold: 'secret.view'" in message(resp)


async def test_nobody_changes_their_own_grants_even_with_permissions_they_hold(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.modify", "user.view"))
    resp = await api.delete(f"/admin/users/{carol.id}/permissions/user.view", token=carol.token)
    assert resp.status_code == 403
    assert "your own" in message(resp)


async def test_a_user_cannot_change_their_own_role(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.modify",))
    resp = await api.patch(f"/admin/users/{carol.id}", {"role": "admin"}, token=carol.token)
    assert resp.status_code == 403
    assert (await api.get(f"/admin/users/{carol.id}")).json()["role"] == "user"


async def test_an_admin_cannot_demote_deactivate_or_delete_themselves(api: Control) -> None:
    admin = (await api.login()).json()["access_token"]
    for change in ({"role": "user"}, {"active": False}):
        resp = await api.patch(f"/admin/users/{ADMIN_EMAIL}", change, token=admin)
        assert resp.status_code == 403, change
    assert (await api.delete(f"/admin/users/{ADMIN_EMAIL}", token=admin)).status_code == 403
    assert (await api.get("/me", token=admin)).json()["role"] == "admin"


async def test_a_user_may_still_change_their_own_display_name(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.modify",))
    resp = await api.patch(f"/admin/users/{carol.id}", {"display_name": "C."}, token=carol.token)
    assert resp.status_code == 200


async def test_a_non_admin_cannot_create_an_admin(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.create",))
    resp = await api.post("/admin/users", {"email": "eve@example.com", "role": "admin"}, token=carol.token)
    assert resp.status_code == 403
    assert "'admin'" in message(resp)
    plain = await api.post("/admin/users", {"email": "eve@example.com"}, token=carol.token)
    assert plain.status_code == 201


async def test_a_non_admin_cannot_promote_someone_to_admin(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.modify",))
    dave = await api.person("dave@example.com")
    resp = await api.patch(f"/admin/users/{dave.id}", {"role": "admin"}, token=carol.token)
    assert resp.status_code == 403


async def test_a_user_cannot_change_someone_who_holds_more(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("user.modify", "user.delete"))
    password = await api.patch(
        f"/admin/users/{ADMIN_EMAIL}", {"password": "Taken-Over-Passw0rd"}, token=carol.token
    )
    delete = await api.delete(f"/admin/users/{ADMIN_EMAIL}", token=carol.token)
    assert password.status_code == delete.status_code == 403
    assert "holds permissions you do not" in message(password)


async def test_a_non_admin_cannot_mint_a_token_for_an_admin(api: Control) -> None:
    carol = await api.person("carol@example.com", permissions=("token.create",))
    resp = await api.post("/admin/tokens", {"user": ADMIN_EMAIL, "name": "mine now"}, token=carol.token)
    assert resp.status_code == 403
    await api.person("dave@example.com")
    allowed = await api.post("/admin/tokens", {"user": "dave@example.com", "name": "ci"}, token=carol.token)
    assert allowed.status_code == 201


async def test_a_user_cannot_add_someone_to_a_group_holding_more_than_they_do(api: Control) -> None:
    await api.post("/admin/groups", {"name": "vault"})
    await api.post("/admin/groups/vault/permissions", {"permissions": ["secret.view"]})
    await api.post("/admin/groups", {"name": "plain"})
    carol = await api.person("carol@example.com", permissions=("group.modify",))
    dave = await api.person("dave@example.com")
    refused = await api.post("/admin/groups/vault/members", {"user": dave.id}, token=carol.token)
    assert refused.status_code == 403
    assert "'secret.view'" in message(refused)
    allowed = await api.post("/admin/groups/plain/members", {"user": dave.id}, token=carol.token)
    assert allowed.status_code == 200


async def test_a_user_cannot_add_themselves_to_a_group(api: Control) -> None:
    await api.post("/admin/groups", {"name": "plain"})
    carol = await api.person("carol@example.com", permissions=("group.modify",))
    resp = await api.post("/admin/groups/plain/members", {"user": carol.id}, token=carol.token)
    assert resp.status_code == 403


async def test_a_user_cannot_grant_a_group_a_permission_they_lack(api: Control) -> None:
    await api.post("/admin/groups", {"name": "plain"})
    carol = await api.person("carol@example.com", permissions=("group.modify",))
    resp = await api.post(
        "/admin/groups/plain/permissions", {"permissions": ["user.delete"]}, token=carol.token
    )
    assert resp.status_code == 403
