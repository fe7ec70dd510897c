"""Header rules reach the upstream as configured (checked at the fake upstreams), global and per
model, on the same-format path and the translated one; no rule, and no client, gets a client's
credential to an upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import AnthropicUpstream, OpenAIUpstream
from tests.fakes.bedrock_upstream import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, BedrockUpstream
from tests.harness import GATEWAY_KEY, model, serve, settings
from tests.transforms.wire import ASK, ask_anthropic, ask_openai
from waypost.settings import ConfigError, load_settings


@dataclass
class Gateway:
    url: str
    openai: OpenAIUpstream
    anthropic: AnthropicUpstream


GLOBAL_RULES = {"add": {"x-tenant": "global", "x-gateway": "waypost"}, "drop": [{"regex": "^http-"}]}


@pytest.fixture
async def gateway(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> AsyncIterator[Gateway]:
    config = settings(
        model(
            "gpt",
            "openai",
            openai_upstream.url,
            openai_upstream.api_key,
            upstream_model="gpt-up",
            # The model's configured headers are part of what the rules work on.
            headers={"X-Title": "waypost-app", "HTTP-Referer": "https://app.example"},
            header_rules={"force": {"X-Tenant": "model"}, "drop": ["x-title"]},
        ),
        model(
            "claude",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            upstream_model="claude-up",
        ),
        model(
            "claude-nobeta",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            upstream_model="claude-up",
            header_rules={"drop": ["anthropic-beta"], "drop_all": False, "add": {"x-team": "research"}},
        ),
        header_rules=GLOBAL_RULES,
    )
    async with serve(config) as url:
        yield Gateway(url, openai_upstream, anthropic_upstream)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_global_then_model_rules_reach_an_openai_upstream_from_either_client(
    gateway: Gateway, client: str
) -> None:
    answer = await ASK[client](gateway.url, "gpt", "hello")

    assert answer.status == 200, answer.body
    sent = gateway.openai.last.headers
    assert sent["x-gateway"] == "waypost"  # global add
    assert sent["x-tenant"] == "model"  # the model's force wins over the global add
    assert "x-title" not in sent  # the model's drop, of one of its own configured headers
    assert "http-referer" not in sent  # the global regex drop
    assert sent["authorization"] == f"Bearer {gateway.openai.api_key}"


async def test_a_same_format_anthropic_call_keeps_the_client_beta_header_unless_a_rule_drops_it(
    gateway: Gateway,
) -> None:
    beta = {"anthropic-beta": "prompt-caching-2024-07-31"}

    assert (await ask_anthropic(gateway.url, "claude", "hi", beta)).status == 200
    kept = gateway.anthropic.last.headers
    assert (await ask_anthropic(gateway.url, "claude-nobeta", "hi", beta)).status == 200
    dropped = gateway.anthropic.last.headers

    assert kept["anthropic-beta"] == "prompt-caching-2024-07-31" and kept["x-tenant"] == "global"
    assert "anthropic-beta" not in dropped
    assert dropped["x-team"] == "research" and dropped["x-tenant"] == "global"
    assert dropped["x-api-key"] == gateway.anthropic.api_key


async def test_the_translated_path_to_anthropic_gets_the_global_rules(gateway: Gateway) -> None:
    answer = await ask_openai(gateway.url, "claude", "hello")

    assert answer.status == 200, answer.body
    sent = gateway.anthropic.last.headers
    assert (sent["x-tenant"], sent["x-gateway"]) == ("global", "waypost")
    assert sent["anthropic-version"]  # the wire format's own header is untouched


# Credentials a client may send besides the one it authenticates with (each format's own).
CLIENT_SECRETS = {
    "api-key": "client-azure-key-0123456789",
    "cookie": "session=client-cookie-0123456789",
    "proxy-authorization": "Basic Y2xpZW50OnByb3h5LXNlY3JldA==",
}


@pytest.fixture
async def greedy(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> AsyncIterator[Gateway]:
    """Rules that drop everything they can, by every means, and add what they may."""
    config = settings(
        model(
            "gpt",
            "openai",
            openai_upstream.url,
            openai_upstream.api_key,
            header_rules={"drop_all": True, "drop": [{"regex": ".*"}], "add": {"x-probe": "1"}},
        ),
        model(
            "claude",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            header_rules={"drop": [{"regex": "key|auth|cookie"}]},
        ),
        header_rules={"drop": [{"regex": "^x-"}], "force": {"x-forced": "yes"}},
    )
    async with serve(config) as url:
        yield Gateway(url, openai_upstream, anthropic_upstream)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("upstream", ["gpt", "claude"])
async def test_client_credentials_never_reach_an_upstream_whatever_the_rules(
    greedy: Gateway, client: str, upstream: str
) -> None:
    answer = await ASK[client](greedy.url, upstream, "hello", CLIENT_SECRETS)

    assert answer.status == 200, answer.body
    fake = greedy.openai if upstream == "gpt" else greedy.anthropic
    sent = fake.last.headers
    values = " ".join(sent.values())
    for secret in [GATEWAY_KEY, *CLIENT_SECRETS.values()]:
        assert secret not in values
    assert "cookie" not in sent and "proxy-authorization" not in sent and "api-key" not in sent
    # The provider credential is the model's own, set by the gateway, and survives every drop.
    if upstream == "gpt":
        assert sent["authorization"] == f"Bearer {fake.api_key}" and "x-api-key" not in sent
        assert sent["x-probe"] == "1" and sent["content-type"].startswith("application/json")
    else:
        assert sent["x-api-key"] == fake.api_key and "authorization" not in sent
        assert sent["x-forced"] == "yes"  # the global force (gpt's own drop_all came after it)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"header_rules": {"force": {"Authorization": "Bearer mine"}}}, "header_rules.force"),
        ({"header_rules": {"add": {"X-Api-Key": "mine"}}}, "header_rules.add"),
        ({"header_rules": {"add": {"Cookie": "session=1"}}}, "header_rules.add"),
        ({"header_rules": {"drop": ["authorization"]}}, "header_rules.drop"),
        ({"header_rules": {"force": {"content-type": "text/plain"}}}, "header_rules.force"),
        ({"header_rules": {"drop": [{"regex": "(a"}]}}, "header_rules.drop[0].regex:"),
        ({"header_rules": {"add": {"bad name": "x"}}}, "header_rules.add"),
        (
            {"models": [{"name": "m", "provider": "mock", "header_rules": {"force": {"api-key": "x"}}}]},
            "models[0].header_rules.force",
        ),
        (
            {
                "models": [
                    {"name": "m", "provider": "mock", "header_rules": {"add": {"Proxy-Authorization": "x"}}}
                ]
            },
            "models[0].header_rules.add",
        ),
    ],
)
def test_a_rule_touching_a_credential_or_a_transport_header_is_refused_at_load_naming_its_key(
    tmp_path: Path, section: dict[str, Any], key: str
) -> None:
    import yaml

    path = tmp_path / "waypost.yaml"
    path.write_text(yaml.safe_dump(section))

    with pytest.raises(ConfigError) as refused:
        load_settings(str(path))

    assert str(refused.value).startswith(key), str(refused.value)


async def test_bedrock_signs_the_headers_and_the_body_the_rules_leave() -> None:
    """Header rules and JSONPath transformations apply before SigV4 signing: the fake verifies
    every signature."""
    async with BedrockUpstream() as fake:
        aws = {
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "endpoint_url": fake.url,
        }
        config = settings(
            model(
                "llama",
                "bedrock",
                upstream_model="meta.llama3-70b-instruct-v1:0",
                aws=aws,
                headers={"x-trace": "configured"},
                header_rules={"drop": ["x-trace"], "force": {"x-team": "research"}},
                transformations=[{"type": "jsonpath_add", "path": "$.requestMetadata.team", "value": "r"}],
            )
        )
        async with serve(config) as url:
            answer = await ask_openai(url, "llama", "hello")

        assert answer.status == 200, answer.body
        sent = fake.last.headers
        assert sent["x-team"] == "research" and "x-trace" not in sent
        assert "x-team" in sent["authorization"]  # among the SignedHeaders
        assert fake.last.json["requestMetadata"] == {"team": "r"}
