"""/admin/groups: groups, members and group permissions."""

from __future__ import annotations

from tests.control.client import Control, message


async def test_creating_a_group_answers_201_with_the_group(api: Control) -> None:
    resp = await api.post("/admin/groups", {"name": "research", "description": "the lab"})
    assert resp.status_code == 201
    body = resp.json()
    assert (body["name"], body["description"], body["members"], body["permissions"]) == (
        "research",
        "the lab",
        [],
        [],
    )


async def test_a_group_is_found_by_id_or_by_name(api: Control) -> None:
    created = (await api.post("/admin/groups", {"name": "research"})).json()
    by_id = await api.get(f"/admin/groups/{created['id']}")
    by_name = await api.get("/admin/groups/research")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json()
    listed = (await api.get("/admin/groups")).json()["data"]
    assert [g["name"] for g in listed] == ["research"]


async def test_a_taken_group_name_is_a_409(api: Control) -> None:
    await api.post("/admin/groups", {"name": "research"})
    resp = await api.post("/admin/groups", {"name": "research"})
    assert resp.status_code == 409
    assert "research" in message(resp)


async def test_a_group_name_cannot_be_a_number(api: Control) -> None:
    resp = await api.post("/admin/groups", {"name": "42"})
    assert resp.status_code == 400
    assert message(resp).startswith("body.name: ")


async def test_a_group_can_be_renamed_and_described(api: Control) -> None:
    await api.post("/admin/groups", {"name": "research"})
    resp = await api.patch("/admin/groups/research", {"name": "lab", "description": "renamed"})
    assert resp.status_code == 200
    assert (resp.json()["name"], resp.json()["description"]) == ("lab", "renamed")
    assert (await api.get("/admin/groups/research")).status_code == 404


async def test_members_are_added_and_removed(api: Control) -> None:
    await api.post("/admin/groups", {"name": "research"})
    bob = (await api.post("/admin/users", {"email": "bob@example.com"})).json()
    added = await api.post("/admin/groups/research/members", {"user": "bob@example.com"})
    assert added.status_code == 200
    assert added.json()["members"] == [{"id": bob["id"], "email": "bob@example.com"}]
    assert (await api.get("/admin/users/bob@example.com")).json()["groups"] == ["research"]
    removed = await api.delete(f"/admin/groups/research/members/{bob['id']}")
    assert removed.status_code == 204
    assert (await api.get("/admin/groups/research")).json()["members"] == []


async def test_removing_a_non_member_is_a_404(api: Control) -> None:
    await api.post("/admin/groups", {"name": "research"})
    await api.post("/admin/users", {"email": "bob@example.com"})
    resp = await api.delete("/admin/groups/research/members/bob@example.com")
    assert resp.status_code == 404
    assert message(resp) == "user 'bob@example.com' is not a member of group 'research'"


async def test_adding_an_unknown_user_is_a_404(api: Control) -> None:
    await api.post("/admin/groups", {"name": "research"})
    resp = await api.post("/admin/groups/research/members", {"user": "ghost@example.com"})
    assert resp.status_code == 404
    assert message(resp) == "user 'ghost@example.com' does not exist"


async def test_members_hold_the_groups_permissions(api: Control) -> None:
    await api.post("/admin/groups", {"name": "auditors"})
    granted = await api.post("/admin/groups/auditors/permissions", {"permissions": ["user.view"]})
    assert granted.json() == {"direct": ["user.view"], "effective": ["user.view"]}
    bob = await api.person("bob@example.com")
    assert (await api.get("/admin/users", token=bob.token)).status_code == 403
    await api.post("/admin/groups/auditors/members", {"user": bob.id})
    assert (await api.get("/admin/users", token=bob.token)).status_code == 200
    assert (await api.get(f"/admin/users/{bob.id}/permissions")).json() == {
        "direct": [],
        "effective": ["user.view"],
    }


async def test_a_groups_permission_can_be_revoked(api: Control) -> None:
    await api.post("/admin/groups", {"name": "auditors"})
    await api.post("/admin/groups/auditors/permissions", {"permissions": ["user.view", "group.view"]})
    resp = await api.delete("/admin/groups/auditors/permissions/user.view")
    assert resp.status_code == 204
    assert (await api.get("/admin/groups/auditors/permissions")).json()["direct"] == ["group.view"]
    again = await api.delete("/admin/groups/auditors/permissions/user.view")
    assert again.status_code == 404
    assert message(again) == "group 'auditors' does not hold 'user.view'"


async def test_deleting_a_group_takes_its_permissions_from_the_members(api: Control) -> None:
    await api.post("/admin/groups", {"name": "auditors"})
    await api.post("/admin/groups/auditors/permissions", {"permissions": ["user.view"]})
    bob = await api.person("bob@example.com", groups=["auditors"])
    assert (await api.get("/admin/users", token=bob.token)).status_code == 200
    assert (await api.delete("/admin/groups/auditors")).status_code == 204
    assert (await api.get("/admin/groups/auditors")).status_code == 404
    assert (await api.get("/admin/users", token=bob.token)).status_code == 403


async def test_an_unknown_group_is_a_404_naming_it(api: Control) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        resp = await api.call(method, "/admin/groups/ghosts", {} if method == "PATCH" else None)
        assert resp.status_code == 404, method
        assert message(resp) == "group 'ghosts' does not exist"
