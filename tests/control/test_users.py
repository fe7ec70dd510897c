"""/admin/users: accounts created, read, changed and deleted by an administrator."""

from __future__ import annotations

from tests.control.client import PASSWORD, Control, message

USER_FIELDS = {
    "id",
    "email",
    "display_name",
    "role",
    "active",
    "groups",
    "created_at",
    "updated_at",
    "last_login_at",
}


async def test_creating_a_user_answers_201_with_the_user(api: Control) -> None:
    resp = await api.post(
        "/admin/users", {"email": "Bob@Example.com", "display_name": "Bob", "password": PASSWORD}
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == USER_FIELDS | {"permissions"}
    assert body["email"] == "bob@example.com"
    assert body["role"] == "user"
    assert body["active"] is True
    assert body["permissions"] == []
    assert body["last_login_at"] is None
    assert (await api.login("bob@example.com", PASSWORD)).status_code == 200


async def test_a_user_is_found_by_id_or_by_e_mail(api: Control) -> None:
    created = (await api.post("/admin/users", {"email": "bob@example.com"})).json()
    by_id = await api.get(f"/admin/users/{created['id']}")
    by_email = await api.get("/admin/users/bob@example.com")
    assert by_id.status_code == by_email.status_code == 200
    assert by_id.json() == by_email.json()


async def test_the_user_list_has_everyone(api: Control) -> None:
    await api.post("/admin/users", {"email": "bob@example.com"})
    resp = await api.get("/admin/users")
    assert resp.status_code == 200
    emails = [u["email"] for u in resp.json()["data"]]
    assert "admin@localhost" in emails and "bob@example.com" in emails
    assert all(set(u) == USER_FIELDS for u in resp.json()["data"])


async def test_the_user_list_is_searched_and_paged_on_the_server(api: Control) -> None:
    for name in ("ann", "bob", "anna", "annie_%"):
        await api.post("/admin/users", {"email": f"{name}@example.com", "display_name": name.title()})
    first = (await api.get("/admin/users?search=ANN&limit=2")).json()
    assert [u["email"] for u in first["data"]] == ["ann@example.com", "anna@example.com"]
    rest = (await api.get(f"/admin/users?search=ANN&limit=2&after={first['next_after']}")).json()
    assert [u["email"] for u in rest["data"]] == ["annie_%@example.com"]
    assert rest["next_after"] is None
    # LIKE's wildcards are searched for as themselves.
    literal = (await api.get("/admin/users?search=_%25")).json()
    assert [u["email"] for u in literal["data"]] == ["annie_%@example.com"]


async def test_an_admins_permissions_are_every_permission(api: Control) -> None:
    body = (await api.get("/admin/users/admin@localhost")).json()
    catalog = (await api.get("/admin/permissions")).json()
    assert body["permissions"] == sorted(p["name"] for p in catalog["data"])


async def test_an_e_mail_in_use_is_a_409(api: Control) -> None:
    await api.post("/admin/users", {"email": "bob@example.com"})
    resp = await api.post("/admin/users", {"email": "BOB@example.com"})
    assert resp.status_code == 409
    assert "bob@example.com" in message(resp)


async def test_a_weak_password_is_a_400_naming_the_field(api: Control) -> None:
    resp = await api.post("/admin/users", {"email": "bob@example.com", "password": "password"})
    assert resp.status_code == 400
    assert message(resp).startswith("password: ")
    assert (await api.get("/admin/users/bob@example.com")).status_code == 404


async def test_an_invalid_e_mail_is_a_400_naming_the_field(api: Control) -> None:
    resp = await api.post("/admin/users", {"email": "not an e-mail"})
    assert resp.status_code == 400
    assert message(resp).startswith("body.email: ")


async def test_an_unknown_role_is_a_400(api: Control) -> None:
    resp = await api.post("/admin/users", {"email": "bob@example.com", "role": "root"})
    assert resp.status_code == 400
    assert message(resp).startswith("body.role: ")


async def test_a_gateway_account_gets_no_password(api: Control) -> None:
    resp = await api.post(
        "/admin/users", {"email": "svc@example.com", "role": "gateway", "password": PASSWORD}
    )
    assert resp.status_code == 400
    assert "gateway accounts cannot log in" in message(resp)


async def test_a_user_can_be_created_in_groups(api: Control) -> None:
    await api.post("/admin/groups", {"name": "team"})
    resp = await api.post("/admin/users", {"email": "bob@example.com", "groups": ["team"]})
    assert resp.status_code == 201
    assert resp.json()["groups"] == ["team"]


async def test_creating_a_user_in_a_missing_group_is_a_400(api: Control) -> None:
    resp = await api.post("/admin/users", {"email": "bob@example.com", "groups": ["ghosts"]})
    assert resp.status_code == 400
    assert message(resp) == "groups: group 'ghosts' does not exist"


async def test_patch_changes_only_the_fields_sent(api: Control) -> None:
    created = (await api.post("/admin/users", {"email": "bob@example.com", "display_name": "Bob"})).json()
    resp = await api.patch("/admin/users/bob@example.com", {"display_name": "Robert", "role": "admin"})
    assert resp.status_code == 200
    body = resp.json()
    assert (body["display_name"], body["role"], body["email"]) == ("Robert", "admin", "bob@example.com")
    assert body["updated_at"] >= created["updated_at"]


async def test_a_new_password_ends_the_users_sessions(api: Control) -> None:
    bob = await api.person("bob@example.com")
    resp = await api.patch(f"/admin/users/{bob.id}", {"password": "Another-Fine-Passw0rd"})
    assert resp.status_code == 200
    assert (
        await api.post("/auth/refresh", {"refresh_token": bob.refresh_token}, token=None)
    ).status_code == 401
    assert (await api.login(bob.email, "Another-Fine-Passw0rd")).status_code == 200


async def test_changing_an_e_mail_to_one_in_use_is_a_409(api: Control) -> None:
    await api.post("/admin/users", {"email": "bob@example.com"})
    resp = await api.patch("/admin/users/bob@example.com", {"email": "admin@localhost"})
    assert resp.status_code == 409


async def test_deleting_a_user_answers_204_and_the_user_is_gone(api: Control) -> None:
    bob = await api.person("bob@example.com")
    resp = await api.delete(f"/admin/users/{bob.id}")
    assert resp.status_code == 204
    gone = await api.get(f"/admin/users/{bob.id}")
    assert gone.status_code == 404
    assert message(gone) == f"user '{bob.id}' does not exist"
    assert (await api.get("/me", token=bob.token)).status_code == 401


async def test_an_unknown_user_is_a_404_naming_it(api: Control) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        resp = await api.call(method, "/admin/users/ghost@example.com", {} if method == "PATCH" else None)
        assert resp.status_code == 404, method
        assert message(resp) == "user 'ghost@example.com' does not exist"
