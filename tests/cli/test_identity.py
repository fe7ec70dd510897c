"""``waypost login``, ``logout``, ``whoami``, ``status``: the session kept in the credentials file."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid

import jwt

from tests.cli.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, JWT_SECRET, Cli


def test_login_saves_the_session_readable_only_by_its_owner(cli: Cli) -> None:
    out = cli.ok("login", "--email", ADMIN_EMAIL, "--password-stdin", input=ADMIN_PASSWORD + "\n")

    assert f"Logged in to {cli.url} as {ADMIN_EMAIL}" in out
    session = cli.session()
    assert session["access_token"] and session["refresh_token"]
    assert stat.S_IMODE(cli.credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.credentials.parent.stat().st_mode) == 0o700


def test_login_prompts_for_email_with_admin_default_and_hidden_password(cli: Cli) -> None:
    result = cli.run("login", input="\n" + ADMIN_PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert "admin@localhost" in result.stdout
    assert ADMIN_PASSWORD not in result.output


def test_login_with_a_wrong_password_prints_the_server_message(cli: Cli) -> None:
    err = cli.fails("login", "--email", ADMIN_EMAIL, "--password-stdin", input="not-the-password\n")

    assert err.strip() == "error: Invalid e-mail or password."
    assert not cli.credentials.exists()


def test_whoami_shows_the_logged_in_account(admin: Cli) -> None:
    out = admin.ok("whoami")

    assert ADMIN_EMAIL in out
    assert "admin" in out
    assert "user.create" in out  # effective permissions


def test_whoami_json_is_the_api_answer(admin: Cli) -> None:
    me = admin.json("whoami")

    assert me["email"] == ADMIN_EMAIL
    assert me["role"] == "admin"


def test_status_lists_every_check(admin: Cli) -> None:
    out = admin.ok("status")

    for check in ("database", "encryption_key", "jwt_secret", "admin_password", "outbound_guard"):
        assert check in out
    status = admin.json("status")
    assert status["status"] in ("ok", "degraded")


def test_without_a_login_commands_say_how_to_log_in(cli: Cli) -> None:
    err = cli.fails("whoami")

    assert "waypost login" in err
    assert cli.url in err


def test_an_unreachable_gateway_is_named(cli: Cli) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the CLI connects

    err = cli.fails("whoami", "--url", f"http://127.0.0.1:{port}")

    assert f"cannot connect to the gateway at http://127.0.0.1:{port}" in err


def test_a_rejected_access_token_is_refreshed_once_and_the_new_pair_saved(admin: Cli) -> None:
    before = admin.session()
    _replace_access_token(admin, "garbage")

    assert ADMIN_EMAIL in admin.ok("whoami")

    after = admin.session()
    assert after["access_token"] not in ("garbage", before["access_token"])
    assert after["refresh_token"] != before["refresh_token"]  # rotated


def test_an_expired_access_token_is_refreshed(admin: Cli) -> None:
    claims = jwt.decode(admin.session()["access_token"], options={"verify_signature": False})
    past = int(time.time()) - 3600
    claims.update(iat=past, exp=past + 60, jti=uuid.uuid4().hex)
    _replace_access_token(admin, jwt.encode(claims, JWT_SECRET, algorithm="HS256"))

    assert ADMIN_EMAIL in admin.ok("whoami")


def test_a_spent_refresh_token_ends_the_session(admin: Cli) -> None:
    session = admin.session()
    _replace_access_token(admin, "garbage")
    admin.ok("whoami")  # spends the stored refresh token
    session["access_token"] = "garbage"  # put the old, spent refresh token back
    admin.credentials.write_text(json.dumps({"gateways": [session]}))

    err = admin.fails("whoami")

    assert "expired" in err
    assert "waypost login" in err


def test_logout_revokes_the_refresh_token_and_forgets_the_session(admin: Cli) -> None:
    refresh_token = admin.session()["refresh_token"]

    assert "Logged out" in admin.ok("logout")

    assert json.loads(admin.credentials.read_text())["gateways"] == []
    admin.credentials.write_text(
        json.dumps({"gateways": [{"url": admin.url, "access_token": "x", "refresh_token": refresh_token}]})
    )
    assert "expired" in admin.fails("whoami")


def test_an_api_token_in_the_environment_is_used_instead_of_the_login(admin: Cli) -> None:
    token = admin.ok("me", "tokens", "create", "env-token").strip()
    admin.ok("logout")

    me = json.loads(admin.ok("whoami", "--json", env={"WAYPOST_TOKEN": token}))

    assert me["email"] == ADMIN_EMAIL


def test_an_invalid_api_token_in_the_environment_is_named_in_the_error(cli: Cli) -> None:
    err = cli.fails("whoami", env={"WAYPOST_TOKEN": "wp-not-a-real-token"})

    assert "WAYPOST_TOKEN" in err


def test_the_installed_command_works_end_to_end(cli: Cli) -> None:
    env = {**os.environ, "WAYPOST_URL": cli.url, "WAYPOST_CREDENTIALS": str(cli.credentials)}
    env.pop("WAYPOST_TOKEN", None)

    def waypost(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "waypost.cli", *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=60)

    login = waypost("login", "--email", ADMIN_EMAIL, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    whoami = waypost("whoami", "--json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["email"] == ADMIN_EMAIL


def _replace_access_token(cli: Cli, token: str) -> None:
    doc = json.loads(cli.credentials.read_text())
    for entry in doc["gateways"]:
        entry["access_token"] = token
    cli.credentials.write_text(json.dumps(doc))
