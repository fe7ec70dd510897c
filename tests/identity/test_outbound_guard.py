"""The outbound URL guard on the gateway itself: config-file models are checked at start, and every
call is checked again on the address a name resolves to."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.client import post
from tests.fakes import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, running, settings
from waypost.app import create_app
from waypost.settings import ConfigError

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}


def guarded(*models: dict[str, Any], **sections: Any) -> Any:
    return settings(*models, security={"allow_private_targets": False}, **sections)


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(database: dict[str, Any]) -> None:
    async with OpenAIUpstream(api_key="sk-upstream-key-1") as upstream:
        local_name = upstream.url.replace("127.0.0.1", "localhost")
        config = guarded(model("gpt", "openai", local_name, "sk-upstream-key-1"), database=database)
        async with running(config) as gw:
            resp = await post(gw.url + CHAT, BODY, AUTH)
    assert resp.status == 502
    message = resp.body["error"]["message"]
    assert "not an allowed target" in message
    assert "localhost" in message
    assert "sk-upstream-key-1" not in message
    assert upstream.hits == 0


async def test_the_same_upstream_is_reachable_when_private_targets_are_allowed(
    database: dict[str, Any],
) -> None:
    async with OpenAIUpstream(api_key="sk-upstream-key-1") as upstream:
        local_name = upstream.url.replace("127.0.0.1", "localhost")
        config = settings(model("gpt", "openai", local_name, "sk-upstream-key-1"), database=database)
        async with running(config) as gw:
            resp = await post(gw.url + CHAT, BODY, AUTH)
    assert resp.status == 200
    assert upstream.hits == 1


def test_a_config_model_on_a_private_address_is_refused_at_start() -> None:
    config = guarded(model("gpt", "openai", "http://10.1.2.3:8000", "k"))
    with pytest.raises(ConfigError, match=r"models\[0\]\.base_url: .*10\.1\.2\.3"):
        create_app(config, configure_logs=False)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254", "http://metadata.google.internal", "http://[fd00:ec2::254]"]
)
def test_metadata_addresses_are_refused_even_when_private_targets_are_allowed(url: str) -> None:
    config = settings(model("gpt", "openai", url, "k"))
    with pytest.raises(ConfigError, match=r"models\[0\]\.base_url"):
        create_app(config, configure_logs=False)


def test_a_url_outside_the_allow_list_is_refused_at_start() -> None:
    config = settings(
        model("gpt", "openai", "https://api.example.com", "k"),
        security={"allowed_base_urls": ["https://api.openai.com/*"]},
    )
    with pytest.raises(ConfigError, match=r"models\[0\]\.base_url"):
        create_app(config, configure_logs=False)
