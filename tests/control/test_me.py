"""/me: one's own account, password, models and API tokens."""

from __future__ import annotations

import datetime

from tests.control.client import PASSWORD, Control, message
from tests.harness import ADMIN_EMAIL

NEW_PASSWORD = "Brand-New-Passw0rd-7"


async def test_me_shows_the_account_with_its_effective_permissions(api: Control) -> None:
    bob = await api.person("bob@example.com", permissions=("user.view",))
    resp = await api.get("/me", token=bob.token)
    assert resp.status_code == 200
    assert (resp.json()["email"], resp.json()["permissions"]) == ("bob@example.com", ["user.view"])


async def test_me_works_with_an_api_token_too(api: Control) -> None:
    resp = await api.get("/me")
    assert resp.json()["email"] == ADMIN_EMAIL


async def test_changing_ones_password(api: Control) -> None:
    bob = await api.person("bob@example.com")
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    resp = await api.post("/me/password", body, token=bob.token)
    assert resp.status_code == 204
    assert (await api.login(bob.email, PASSWORD)).status_code == 401
    assert (await api.login(bob.email, NEW_PASSWORD)).status_code == 200


async def test_changing_ones_password_ends_the_other_sessions(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.post(
        "/me/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, token=bob.token
    )
    resp = await api.post("/auth/refresh", {"refresh_token": bob.refresh_token}, token=None)
    assert resp.status_code == 401


async def test_a_wrong_current_password_is_a_400(api: Control) -> None:
    bob = await api.person("bob@example.com")
    body = {"current_password": "Not-The-Passw0rd", "new_password": NEW_PASSWORD}
    resp = await api.post("/me/password", body, token=bob.token)
    assert resp.status_code == 400
    assert message(resp).startswith("current_password: ")


async def test_a_weak_new_password_is_a_400_saying_why(api: Control) -> None:
    bob = await api.person("bob@example.com")
    resp = await api.post(
        "/me/password", {"current_password": PASSWORD, "new_password": "changeme"}, token=bob.token
    )
    assert resp.status_code == 400
    assert message(resp).startswith("new_password: the password")


async def test_my_models_are_the_assigned_and_public_ones(api: Control) -> None:
    for name, public in (("secret-model", False), ("open-model", True), ("mine", False)):
        await api.post("/admin/models", {"name": name, "provider": "mock", "public": public})
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/mine/assign", {"users": [bob.email]})
    resp = await api.get("/me/models", token=bob.token)
    assert resp.status_code == 200
    assert {m["name"] for m in resp.json()["data"]} == {"open-model", "mine"}
    admin = {m["name"] for m in (await api.get("/me/models")).json()["data"]}
    assert {"echo", "secret-model", "open-model", "mine"} <= admin


async def test_a_token_is_shown_once_and_stored_only_as_a_hash(api: Control) -> None:
    bob = await api.person("bob@example.com")
    created = await api.post("/me/tokens", {"name": "laptop"}, token=bob.token)
    assert created.status_code == 201
    plaintext = created.json()["token"]
    assert plaintext.startswith(created.json()["prefix"])
    listed = (await api.get("/me/tokens", token=bob.token)).json()["data"]
    assert [t["name"] for t in listed] == ["laptop"]
    assert "token" not in listed[0]
    assert sum(plaintext in answer for answer in api.answers) == 1
    stored = await api.stored_text()
    assert plaintext not in stored
    assert created.json()["prefix"] in stored


async def test_a_new_token_works_on_the_data_plane_and_stops_when_revoked(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/echo/assign", {"users": [bob.email]})
    created = (await api.post("/me/tokens", {"name": "laptop"}, token=bob.token)).json()
    assert (await api.chat("echo", created["token"])).status_code == 200
    assert (await api.delete(f"/me/tokens/{created['id']}", token=bob.token)).status_code == 204
    refused = await api.chat("echo", created["token"])
    assert refused.status_code == 401


async def test_someone_elses_token_is_a_404(api: Control) -> None:
    bob = await api.person("bob@example.com")
    carol = await api.person("carol@example.com")
    token = (await api.post("/me/tokens", {"name": "bob's"}, token=bob.token)).json()
    resp = await api.delete(f"/me/tokens/{token['id']}", token=carol.token)
    assert resp.status_code == 404
    assert message(resp) == f"token {token['id']} does not exist"


async def test_a_token_can_be_limited_to_models_the_user_may_use(api: Control) -> None:
    await api.post("/admin/models", {"name": "other", "provider": "mock"})
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/echo/assign", {"users": [bob.email]})
    narrower = await api.post("/me/tokens", {"name": "echo only", "models": ["echo"]}, token=bob.token)
    assert narrower.status_code == 201
    assert narrower.json()["models"] == ["echo"]
    wider = await api.post("/me/tokens", {"name": "more", "models": ["echo", "other"]}, token=bob.token)
    assert wider.status_code == 403
    assert "'other'" in message(wider)


async def test_a_restricted_token_only_mints_tokens_as_narrow_as_itself(api: Control) -> None:
    await api.post("/admin/models", {"name": "other", "provider": "mock"})
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/echo/assign", {"users": [bob.email]})
    await api.post("/admin/models/other/assign", {"users": [bob.email]})
    created = await api.post("/me/tokens", {"name": "n", "models": ["echo"]}, token=bob.token)
    narrow = created.json()["token"]
    inherits = await api.post("/me/tokens", {"name": "child"}, token=narrow)
    assert inherits.status_code == 201
    assert inherits.json()["models"] == ["echo"]
    wider = await api.post("/me/tokens", {"name": "child", "models": ["other"]}, token=narrow)
    assert wider.status_code == 403


async def test_a_token_for_an_unknown_model_is_a_400(api: Control) -> None:
    resp = await api.post("/me/tokens", {"name": "x", "models": ["nope"]})
    assert resp.status_code == 400
    assert message(resp) == "models: model 'nope' does not exist"


async def test_token_expiry_is_given_in_days_or_as_an_instant(api: Control) -> None:
    in_days = (await api.post("/me/tokens", {"name": "a", "expires_in_days": 30})).json()
    expires = datetime.datetime.fromisoformat(in_days["expires_at"])
    assert (
        datetime.timedelta(days=29)
        < expires - datetime.datetime.now(datetime.UTC)
        <= datetime.timedelta(days=30)
    )
    past = await api.post("/me/tokens", {"name": "b", "expires_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 400
    assert message(past) == "expires_at: must be in the future"
    both = await api.post(
        "/me/tokens", {"name": "c", "expires_at": "2999-01-01T00:00:00Z", "expires_in_days": 1}
    )
    assert both.status_code == 400


async def test_a_gateway_account_reads_me_and_its_models_but_mints_no_tokens(api: Control) -> None:
    svc = (await api.post("/admin/users", {"email": "svc@example.com", "role": "gateway"})).json()
    token = (await api.post("/admin/tokens", {"user": svc["id"], "name": "svc"})).json()["token"]
    assert (await api.get("/me", token=token)).status_code == 200
    assert (await api.get("/me/models", token=token)).status_code == 200
    for method, path, body in (
        ("GET", "/me/tokens", None),
        ("POST", "/me/tokens", {"name": "more"}),
        ("POST", "/me/password", {"current_password": "x", "new_password": NEW_PASSWORD}),
        ("GET", "/admin/status", None),
    ):
        resp = await api.call(method, path, body, token=token)
        assert resp.status_code == 403, path
