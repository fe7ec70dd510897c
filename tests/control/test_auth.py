"""Logging in with a password: access and refresh tokens, rotation, logout."""

from __future__ import annotations

import datetime
import time

import jwt

from tests.control.client import PASSWORD, Control, message
from tests.harness import ADMIN_EMAIL


async def test_login_answers_an_access_token_a_refresh_token_and_the_user(api: Control) -> None:
    resp = await api.login()
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api.container.settings.auth.access_token_ttl
    assert body["refresh_token"].startswith("wpr-")
    assert body["user"]["email"] == ADMIN_EMAIL
    assert body["user"]["role"] == "admin"
    assert resp.headers["cache-control"] == "no-store"
    me = await api.get("/me", token=body["access_token"])
    assert me.status_code == 200
    assert me.json()["email"] == ADMIN_EMAIL


async def test_login_records_the_time_of_the_last_login(api: Control) -> None:
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    token = (await api.login()).json()["access_token"]
    seen = (await api.get("/me", token=token)).json()["last_login_at"]
    assert datetime.datetime.fromisoformat(seen) >= before


async def test_e_mails_are_case_insensitive(api: Control) -> None:
    resp = await api.login(ADMIN_EMAIL.upper())
    assert resp.status_code == 200


async def test_an_unknown_e_mail_and_a_wrong_password_get_the_same_answer(api: Control) -> None:
    unknown = await api.login("nobody@example.com", PASSWORD)
    wrong = await api.login(ADMIN_EMAIL, "not-the-password-1A")
    assert unknown.status_code == wrong.status_code == 401
    assert message(unknown) == message(wrong) == "Invalid e-mail or password."


async def test_a_deactivated_user_cannot_log_in(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.patch(f"/admin/users/{bob.id}", {"active": False})
    resp = await api.login(bob.email, PASSWORD)
    assert resp.status_code == 401
    assert "deactivated" in message(resp)


async def test_a_deactivated_users_access_token_stops_working(api: Control) -> None:
    bob = await api.person("bob@example.com")
    await api.patch(f"/admin/users/{bob.id}", {"active": False})
    resp = await api.get("/me", token=bob.token)
    assert resp.status_code == 401


async def test_a_gateway_account_cannot_log_in(api: Control) -> None:
    await api.post("/admin/users", {"email": "svc@example.com", "role": "gateway"})
    await api.container.store.users.update(
        (await api.container.store.users.by_email("svc@example.com")).id,
        password_hash=api.container.passwords.hash(PASSWORD),
    )
    resp = await api.login("svc@example.com", PASSWORD)
    assert resp.status_code == 403
    assert message(resp) == "gateway-only accounts cannot log in"


async def test_refresh_answers_new_tokens_and_the_old_refresh_token_is_then_refused(api: Control) -> None:
    first = (await api.login()).json()
    second = await api.post("/auth/refresh", {"refresh_token": first["refresh_token"]}, token=None)
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert (await api.get("/me", token=second.json()["access_token"])).status_code == 200
    again = await api.post("/auth/refresh", {"refresh_token": first["refresh_token"]}, token=None)
    assert again.status_code == 401
    assert "refresh token" in message(again)


async def test_the_rotated_refresh_token_works_once_in_turn(api: Control) -> None:
    first = (await api.login()).json()
    second = (await api.post("/auth/refresh", {"refresh_token": first["refresh_token"]}, token=None)).json()
    third = await api.post("/auth/refresh", {"refresh_token": second["refresh_token"]}, token=None)
    assert third.status_code == 200


async def test_logout_revokes_the_refresh_token(api: Control) -> None:
    session = (await api.login()).json()
    out = await api.post("/auth/logout", {"refresh_token": session["refresh_token"]}, token=None)
    assert out.status_code == 204
    resp = await api.post("/auth/refresh", {"refresh_token": session["refresh_token"]}, token=None)
    assert resp.status_code == 401


async def test_an_access_token_signed_with_another_secret_is_refused(api: Control) -> None:
    now = int(time.time())
    claims = {"sub": "1", "email": ADMIN_EMAIL, "role": "admin", "typ": "access", "iat": now}
    forged = jwt.encode(
        {**claims, "exp": now + 600, "iss": "waypost"},
        "someone-elses-secret-0123456789-abcdef",
        algorithm="HS256",
    )
    resp = await api.get("/admin/users", token=forged)
    assert resp.status_code == 401
    assert "signature" in message(resp)


async def test_an_unsigned_access_token_is_refused(api: Control) -> None:
    now = int(time.time())
    claims = {"sub": "1", "typ": "access", "iat": now, "exp": now + 600, "iss": "waypost"}
    resp = await api.get("/admin/users", token=jwt.encode(claims, None, algorithm="none"))
    assert resp.status_code == 401


async def test_control_routes_need_credentials(api: Control) -> None:
    resp = await api.get("/me", token=None)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"


async def test_a_malformed_body_gets_a_400_naming_the_field(api: Control) -> None:
    resp = await api.post("/auth/login", {"password": "x"}, token=None)
    assert resp.status_code == 400
    assert message(resp) == "body.email: Field required"
    assert resp.json()["error"]["param"] == "body.email"


async def test_unknown_fields_are_refused(api: Control) -> None:
    resp = await api.post("/auth/login", {"email": "a@b", "password": "x", "role": "admin"}, token=None)
    assert resp.status_code == 400
    assert "body.role" in message(resp)


async def test_unknown_routes_and_methods_answer_in_the_openai_shape(api: Control) -> None:
    missing = await api.get("/admin/nothing-here")
    wrong_method = await api.call("PUT", "/auth/login")
    assert missing.status_code == 404
    assert message(missing) == "No route for GET /admin/nothing-here."
    assert wrong_method.status_code == 405
    assert "PUT" in message(wrong_method)


async def test_identity_providers_is_empty_without_single_sign_on(api: Control) -> None:
    resp = await api.get("/auth/identity-providers", token=None)
    assert resp.status_code == 200
    assert resp.json() == {"data": []}


async def test_a_huge_body_is_refused_before_it_is_read(api: Control) -> None:
    big = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'", "password": "x"}'
    declared = await api.http.post("/auth/login", content=big, headers={"content-type": "application/json"})

    async def chunks():  # no Content-Length: the limit applies as the body streams in
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = await api.http.post(
        "/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert declared.status_code == streamed.status_code == 413
    assert "larger than" in message(declared) and "larger than" in message(streamed)


async def test_answers_carry_a_request_id(api: Control) -> None:
    resp = await api.get("/me", headers={"x-request-id": "trace-42"})
    assert resp.headers["x-request-id"] == "trace-42"
