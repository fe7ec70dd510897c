"""``waypost models``, ``tokens`` and ``me models`` / ``me tokens``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.conftest import MOCK_MODEL, Cli

PASSWORD = "Lena-Has-A-Long-Passw0rd"


def chat(url: str, token: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello from the cli"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {token}"})


def test_models_list_shows_config_and_database_models(admin: Cli) -> None:
    admin.ok("models", "create", "db-mock", "--provider", "mock", "--public", "--set", "mock.reply=hi")

    out = admin.ok("models", "list")

    config_row = next(line for line in out.splitlines() if line.strip().startswith(MOCK_MODEL))
    assert "config" in config_row
    db_row = next(line for line in out.splitlines() if line.strip().startswith("db-mock"))
    assert "database" in db_row
    assert "yes" in db_row  # public


def test_models_list_shows_a_model_without_its_key_as_disabled(admin: Cli) -> None:
    admin.ok("models", "create", "keyless", "--provider", "openai")  # OpenAI's own API, no api_key

    out = admin.ok("models", "list")

    keyless = next(line for line in out.splitlines() if line.strip().startswith("keyless"))
    assert "disabled: missing credential" in keyless
    mock_row = next(line for line in out.splitlines() if line.strip().startswith(MOCK_MODEL))
    assert "enabled" in mock_row
    listed = {m["name"]: m["disabled"] for m in json.loads(admin.ok("models", "list", "--json"))["data"]}
    assert listed[MOCK_MODEL] is None and listed["keyless"].startswith("missing credential: no api_key")


def test_models_create_from_a_file_with_overrides(admin: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "model.yaml"
    spec.write_text("provider: mock\nmock:\n  reply: from the file\ndefault_max_tokens: 100\n")

    admin.ok("models", "create", "filed", "--file", str(spec), "--set", "default_max_tokens=200")

    model = admin.json("models", "show", "filed")
    assert model["source"] == "database"
    assert model["config"]["mock"]["reply"] == "from the file"
    assert model["config"]["default_max_tokens"] == 200


def test_models_update_and_delete(admin: Cli) -> None:
    admin.ok("models", "create", "changing", "--provider", "mock")

    admin.ok("models", "update", "changing", "--upstream-model", "other", "--public")
    model = admin.json("models", "show", "changing")
    assert model["config"]["upstream_model"] == "other"
    assert model["public"] is True

    admin.ok("models", "delete", "changing")
    assert "changing" not in {m["name"] for m in admin.json("models", "list")["data"]}


def test_config_file_models_cannot_be_deleted_through_the_cli(admin: Cli) -> None:
    err = admin.fails("models", "delete", MOCK_MODEL)

    assert "config file" in err


def test_models_assign_and_unassign(admin: Cli) -> None:
    admin.ok("users", "create", "mia@example.com")
    admin.ok("groups", "create", "ml")
    admin.ok("models", "create", "assigned-mock", "--provider", "mock")

    admin.ok("models", "assign", "assigned-mock", "--user", "mia@example.com", "--group", "ml")

    row = next(line for line in admin.ok("models", "list").splitlines() if "assigned-mock" in line)
    assert "mia@example.com" in row
    assert "group:ml" in row

    admin.ok("models", "unassign", "assigned-mock", "--user", "mia@example.com", "--group", "ml")

    assignments = admin.json("models", "show", "assigned-mock")["assignments"]
    assert assignments == {"users": [], "groups": []}


def test_a_token_is_shown_once_and_works_on_the_data_plane(admin: Cli, gateway: str) -> None:
    admin.ok("users", "create", "lena@example.com")
    admin.ok("models", "assign", MOCK_MODEL, "--user", "lena@example.com")

    result = admin.run("tokens", "create", "ci", "--user", "lena@example.com")

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("wp-")
    assert "will not be shown again" in result.stderr
    answer = chat(gateway, token, MOCK_MODEL)
    assert answer.status_code == 200, answer.text
    assert "hello from the cli" in answer.json()["choices"][0]["message"]["content"]
    for listing in (admin.ok("tokens", "list"), admin.ok("tokens", "list", "--json")):
        assert token not in listing
        assert token[:10] in listing  # the prefix identifies it


def test_tokens_list_shows_owner_models_and_expiry(admin: Cli) -> None:
    admin.ok("users", "create", "nina@example.com")
    admin.ok("models", "assign", MOCK_MODEL, "--user", "nina@example.com")
    admin.ok(
        "tokens",
        "create",
        "limited",
        "--user",
        "nina@example.com",
        "--model",
        MOCK_MODEL,
        "--expires-in-days",
        "7",
    )

    out = admin.ok("tokens", "list", "--user", "nina@example.com")

    row = next(line for line in out.splitlines() if "limited" in line)
    assert "nina@example.com" in row
    assert MOCK_MODEL in row
    assert "never" in row  # last used
    token = admin.json("tokens", "list", "--user", "nina@example.com")["data"][0]
    assert token["expires_at"] is not None
    assert "token" not in token


def test_tokens_update_and_delete(admin: Cli, gateway: str) -> None:
    admin.ok("users", "create", "otto@example.com")
    admin.ok("models", "assign", MOCK_MODEL, "--user", "otto@example.com")
    created = json.loads(admin.ok("tokens", "create", "old-name", "--user", "otto@example.com", "--json"))

    admin.ok("tokens", "update", str(created["id"]), "--name", "new-name")
    assert admin.json("tokens", "show", str(created["id"]))["name"] == "new-name"

    admin.ok("tokens", "delete", str(created["id"]))
    assert chat(gateway, created["token"], MOCK_MODEL).status_code == 401


def test_me_models_and_me_tokens_for_a_plain_user(admin: Cli, gateway: str) -> None:
    admin.ok("users", "create", "pia@example.com", "--password-stdin", input=PASSWORD + "\n")
    admin.ok("models", "assign", MOCK_MODEL, "--user", "pia@example.com")
    admin.ok("logout")
    admin.login("pia@example.com", PASSWORD)

    assert MOCK_MODEL in admin.ok("me", "models")
    token = admin.ok("me", "tokens", "create", "laptop").strip()
    assert chat(gateway, token, MOCK_MODEL).status_code == 200
    mine = admin.json("me", "tokens", "list")["data"]
    assert [t["name"] for t in mine] == ["laptop"]

    admin.ok("me", "tokens", "delete", str(mine[0]["id"]))
    assert admin.json("me", "tokens", "list")["data"] == []
