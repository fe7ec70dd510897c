"""/admin/tokens: every user's API tokens."""

from __future__ import annotations

from tests.control.client import Control, message

TOKEN_FIELDS = {"id", "name", "prefix", "user_id", "models", "expires_at", "last_used_at", "created_at"}


async def test_minting_a_token_for_a_user_shows_the_plaintext_once(api: Control) -> None:
    bob = await api.person("bob@example.com")
    resp = await api.post("/admin/tokens", {"user": bob.email, "name": "ci"})
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == TOKEN_FIELDS | {"token"}
    assert (body["user_id"], body["name"], body["models"]) == (bob.id, "ci", None)
    shown = (await api.get(f"/admin/tokens/{body['id']}")).json()
    assert set(shown) == TOKEN_FIELDS
    assert body["token"] not in await api.stored_text()


async def test_tokens_are_listed_for_everyone_or_for_one_user(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.post("/admin/tokens", {"user": bob.id, "name": "ci"})
    everyone = (await api.get("/admin/tokens")).json()["data"]
    bobs = (await api.get("/admin/tokens", params={"user": bob.email})).json()["data"]
    assert len(everyone) == len(bobs) + 1  # the administrator's seeded token
    assert [t["name"] for t in bobs] == ["ci"]


async def test_tokens_are_searched_and_paged_by_the_server(api: Control) -> None:
    bob = await api.person("bob@example.com")
    for name in ("ci-one", "CI-two", "deploy", "ci_%three"):
        await api.post("/admin/tokens", {"user": bob.id, "name": name})
    first = (await api.get("/admin/tokens", params={"search": "ci", "limit": 2})).json()
    assert [t["name"] for t in first["data"]] == ["ci-one", "CI-two"]
    rest = (
        await api.get("/admin/tokens", params={"search": "ci", "limit": 2, "after": first["next_after"]})
    ).json()
    assert [t["name"] for t in rest["data"]] == ["ci_%three"]
    assert rest["next_after"] is None
    literal = (await api.get("/admin/tokens", params={"search": "_%", "user": bob.email})).json()
    assert [t["name"] for t in literal["data"]] == ["ci_%three"]
    refused = await api.get("/admin/tokens", params={"limit": 0})
    assert refused.status_code in (400, 422) and "limit" in refused.text


async def test_a_token_can_be_renamed_restricted_and_given_an_expiry(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/echo/assign", {"users": [bob.email]})
    token = (await api.post("/admin/tokens", {"user": bob.id, "name": "ci"})).json()
    resp = await api.patch(
        f"/admin/tokens/{token['id']}",
        {"name": "build", "models": ["echo"], "expires_at": "2999-01-01T00:00:00Z"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert (body["name"], body["models"]) == ("build", ["echo"])
    assert body["expires_at"].startswith("2999-01-01")
    lifted = (await api.patch(f"/admin/tokens/{token['id']}", {"models": None, "expires_at": None})).json()
    assert (lifted["models"], lifted["expires_at"], lifted["name"]) == (None, None, "build")


async def test_a_tokens_models_may_only_narrow_its_owners_access(api: Control) -> None:
    await api.post("/admin/models", {"name": "other", "provider": "mock"})
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/echo/assign", {"users": [bob.email]})
    wider = await api.post("/admin/tokens", {"user": bob.id, "name": "ci", "models": ["other"]})
    assert wider.status_code == 403
    assert "'other'" in message(wider)
    token = (await api.post("/admin/tokens", {"user": bob.id, "name": "ci", "models": ["echo"]})).json()
    widened = await api.patch(f"/admin/tokens/{token['id']}", {"models": ["echo", "other"]})
    assert widened.status_code == 403


async def test_a_restricted_token_is_refused_other_models_on_the_data_plane(api: Control) -> None:
    await api.post("/admin/models", {"name": "other", "provider": "mock", "public": True})
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/echo/assign", {"users": [bob.email]})
    created = await api.post("/admin/tokens", {"user": bob.id, "name": "ci", "models": ["echo"]})
    token = created.json()["token"]
    assert (await api.chat("echo", token)).status_code == 200
    assert (await api.chat("other", token)).status_code in (403, 404)


async def test_a_revoked_token_stops_working_on_the_data_plane(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.post("/admin/models/echo/assign", {"users": [bob.email]})
    token = (await api.post("/admin/tokens", {"user": bob.id, "name": "ci"})).json()
    assert (await api.chat("echo", token["token"])).status_code == 200
    assert (await api.delete(f"/admin/tokens/{token['id']}")).status_code == 204
    assert (await api.chat("echo", token["token"])).status_code == 401
    assert (await api.get(f"/admin/tokens/{token['id']}")).status_code == 404


async def test_an_unknown_token_is_a_404(api: Control) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        resp = await api.call(method, "/admin/tokens/9999", {} if method == "PATCH" else None)
        assert resp.status_code == 404, method
        assert message(resp) == "token 9999 does not exist"


async def test_a_token_for_an_unknown_user_is_a_404(api: Control) -> None:
    resp = await api.post("/admin/tokens", {"user": "ghost@example.com", "name": "ci"})
    assert resp.status_code == 404
    assert message(resp) == "user 'ghost@example.com' does not exist"


async def test_a_token_id_must_be_a_number(api: Control) -> None:
    resp = await api.get("/admin/tokens/abc")
    assert resp.status_code == 400
    assert message(resp).startswith("path.token_id: ")
