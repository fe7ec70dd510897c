"""A model created through /admin/models may have deployments too: each deployment's key is
stored as an encrypted secret of its own (never answered, never in the stored config), and
requests reach every deployment with its own key."""

from __future__ import annotations

from typing import Any

from tests.control.client import control
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, settings

KEYS = ("sk-first-deployment-key-0123456789", "sk-second-deployment-key-0123456789")


async def test_deployment_keys_become_secrets_and_each_deployment_gets_its_own(
    database: dict[str, Any],
) -> None:
    async with OpenAIUpstream(api_key=KEYS[0]) as first, OpenAIUpstream(api_key=KEYS[1]) as second:
        deployments = [
            {"name": "east", "base_url": first.url + "/v1", "api_key": KEYS[0]},
            {"name": "west", "base_url": second.url + "/v1", "api_key": KEYS[1], "region": "us-west"},
        ]
        body = {"name": "pool", "provider": "openai", "deployments": deployments, "strategy": "weighted"}
        async with control(settings(model("echo", "mock"), database=database)) as api:
            resp = await api.post("/admin/models", body)
            assert resp.status_code == 201, resp.text
            stored = resp.json()["config"]["deployments"]
            assert [d["api_key"] for d in stored] == [
                "secret://model.pool.deployments.0.api_key",
                "secret://model.pool.deployments.1.api_key",
            ]
            for _ in range(2):
                assert (await api.chat("pool", GATEWAY_KEY)).status_code == 200
            assert not any(api.leaked(key) for key in KEYS)
            stored_text = await api.stored_text()
            assert not any(key in stored_text for key in KEYS)
    assert (first.hits, second.hits) == (1, 1)  # weighted, equal weights: one each
    assert first.last.headers["authorization"] == f"Bearer {KEYS[0]}"
    assert second.last.headers["authorization"] == f"Bearer {KEYS[1]}"


async def test_a_deployment_is_refused_with_its_field_named(database: dict[str, Any]) -> None:
    body = {"name": "pool", "provider": "openai", "deployments": [{"name": "x", "base_url": "ftp://nowhere"}]}
    async with control(settings(model("echo", "mock"), database=database)) as api:
        resp = await api.post("/admin/models", body)
    assert resp.status_code == 400
    assert "deployments.0.base_url" in resp.text
