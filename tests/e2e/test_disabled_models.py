"""A model whose credentials are missing is disabled: never called (no retry, no second of
failed attempts), skipped in fallback chains, refused with 503 naming what is missing when it is
the only choice, and listed as disabled in ``/health`` and the admin API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, auth_section, model, serve, settings
from waypost.settings import load_settings

pytestmark = pytest.mark.asyncio

# As waypost.example.yaml's gpt-4o-mini without OPENAI_API_KEY: OpenAI's own API and no key.
REMOTE = {"name": "remote", "provider": "openai"}
HEADERS = {
    "authorization": f"Bearer {GATEWAY_KEY}",
    "x-api-key": GATEWAY_KEY,
    "anthropic-version": "2023-06-01",
}


def body(name: str) -> dict[str, Any]:
    return {"model": name, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


async def test_a_disabled_model_is_skipped_for_its_fallback_without_an_attempt() -> None:
    async with OpenAIUpstream(api_key="sk-local-fallback") as fake:
        fake.enqueue(Reply(text="from the fallback"))
        config = settings(
            {**REMOTE, "fallbacks": ["local"]}, model("local", "openai", fake.url, fake.api_key)
        )
        async with serve(config) as url, httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
            answer = await client.post("/v1/chat/completions", json=body("remote"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "from the fallback"
    assert answer.headers["x-waypost-deployment"] == "local"
    assert "x-waypost-attempts" not in answer.headers  # nothing was tried before it
    assert fake.hits == 1


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_disabled_model_alone_is_a_503_naming_what_is_missing(path: str) -> None:
    config = settings(REMOTE, {"name": "groq", "provider": "groq"})
    async with serve(config) as url, httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        remote = await client.post(path, json=body("remote"))
        groq = await client.post(path, json=body("groq"))
        health = (await client.get("/health")).json()
        listed = {m["name"]: m["disabled"] for m in (await client.get("/admin/models")).json()["data"]}
    assert remote.status_code == groq.status_code == 503
    error = groq.json()["error"]
    if path == "/v1/messages":
        assert groq.json()["type"] == "error" and error["type"] == "api_error"
    else:
        assert error["code"] == "model_disabled"
    assert "'groq' is disabled" in error["message"] and "GROQ_API_KEY is not set" in error["message"]
    assert "missing credential: no api_key" in remote.json()["error"]["message"]
    assert set(health["disabled_models"]) == {"remote", "groq"}
    assert "GROQ_API_KEY" in health["disabled_models"]["groq"]
    assert listed == {
        "remote": health["disabled_models"]["remote"],
        "groq": health["disabled_models"]["groq"],
    }


async def test_an_empty_env_reference_names_its_variable(tmp_path: Any) -> None:
    """The example's ``api_key: env://OPENAI_API_KEY,`` with the variable unset (or set empty):
    the model is disabled and every answer names the variable, never a value."""
    async with OpenAIUpstream(api_key="sk-from-the-environment") as fake:
        fake.enqueue(Reply(text="keyed"))
        doc: dict[str, Any] = {"auth": auth_section(), "security": {"allow_private_targets": True}}
        doc["models"] = [
            {"name": "unset", "provider": "openai", "api_key": "env://WP_TEST_UNSET_KEY,"},
            {"name": "blank", "provider": "openai", "api_key": "env://WP_TEST_BLANK_KEY"},
            {**model("keyed", "openai", fake.url), "api_key": "env://WP_TEST_SET_KEY,"},
            {"name": "with-fallback", "provider": "openai", "api_key": "env://WP_TEST_UNSET_KEY,"}
            | {"fallbacks": ["echo"]},
            model("echo", "mock"),
        ]
        path = tmp_path / "waypost.yaml"
        path.write_text(yaml.safe_dump(doc))
        environ = {"WP_TEST_BLANK_KEY": "", "WP_TEST_SET_KEY": fake.api_key}
        config = load_settings(path, environ=environ)
        async with serve(config) as url, httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
            answers = {n: await client.post("/v1/messages", json=body(n)) for n in ("unset", "blank")}
            keyed = await client.post("/v1/chat/completions", json=body("keyed"))
            fallback = await client.post("/v1/chat/completions", json=body("with-fallback"))
            health = (await client.get("/health")).json()
    for name, var in (("unset", "WP_TEST_UNSET_KEY"), ("blank", "WP_TEST_BLANK_KEY")):
        assert answers[name].status_code == 503
        message = answers[name].json()["error"]["message"]
        assert message == (
            f"The model {name!r} is disabled: missing credential: {var} is unset or empty"
            f" (api_key: env://{var})."
        )
        assert health["disabled_models"][name] == message.split("disabled: ", 1)[1].rstrip(".")
    assert keyed.status_code == 200 and keyed.json()["choices"][0]["message"]["content"] == "keyed"
    assert fake.hits == 1  # only the keyed model reached an upstream
    assert fallback.status_code == 200 and fallback.headers["x-waypost-deployment"] == "echo"
    assert set(health["disabled_models"]) == {"unset", "blank", "with-fallback"}
