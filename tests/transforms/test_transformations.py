"""Content transformations reach the upstream as configured (checked at the fake upstreams):
``regex_replace`` on the text, ``jsonpath_drop`` / ``jsonpath_add`` on the body in the upstream's
own format; global and per model; on the same-format path and the translated one; streamed or
not. A transformation that would make the request invalid is refused at load, or answered 400
naming it, and nothing is sent upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.client import post
from tests.fakes import AnthropicUpstream, OpenAIUpstream, Reply
from tests.fakes.base import FakeUpstream
from tests.harness import model, serve, settings
from tests.transforms.wire import ASK, OPENAI_AUTH, ask_anthropic, ask_openai
from waypost.app import build_container
from waypost.settings import ConfigError, load_settings

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PHONE = r"\+?\d[\d ().-]{7,}\d"
MASKS = [
    {"type": "regex_replace", "name": "mask-emails", "pattern": EMAIL, "replacement": "[email]"},
    {"type": "regex_replace", "name": "mask-phones", "pattern": PHONE, "replacement": "[phone]"},
    # Kept in the list, not applied.
    {"type": "regex_replace", "name": "off", "enabled": False, "pattern": "hello", "replacement": "bye"},
]
PERSONAL = "hello, write to jane.doe@example.com or call +44 20 7946 0958 today"
MASKED = "hello, write to [email] or call [phone] today"


def user_text(fake: FakeUpstream) -> str:
    """The last user message's text as the upstream received it (either wire format)."""
    body = fake.last.json
    content = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content)


@dataclass
class Gateway:
    url: str
    openai: OpenAIUpstream
    anthropic: AnthropicUpstream

    def fake(self, name: str) -> FakeUpstream:
        return self.openai if name.startswith("gpt") else self.anthropic


@pytest.fixture
async def gateway(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> AsyncIterator[Gateway]:
    ant = (anthropic_upstream.url, anthropic_upstream.api_key)
    oai = (openai_upstream.url, openai_upstream.api_key)
    config = settings(
        model("gpt", "openai", *oai, upstream_model="gpt-up"),
        model("claude", "anthropic", *ant, upstream_model="claude-up"),
        model(
            "gpt-shaped",
            "openai",
            *oai,
            upstream_model="gpt-up",
            transformations=[
                {"type": "jsonpath_drop", "path": "$.x_vendor.secret"},
                {"type": "jsonpath_drop", "path": "$.user"},
                {"type": "jsonpath_drop", "path": "$.messages[*].name"},
                {"type": "jsonpath_add", "path": "$.metadata.team", "value": "research"},
                {"type": "jsonpath_add", "path": "$.service_tier", "value": "flex", "overwrite": False},
                {"type": "jsonpath_add", "path": "$.store", "value": False},
            ],
        ),
        model(
            "claude-shaped",
            "anthropic",
            *ant,
            upstream_model="claude-up",
            transformations=[
                {"type": "jsonpath_drop", "path": "$.temperature"},
                {"type": "jsonpath_add", "path": "$.metadata.user_id", "value": "team-7"},
                {"type": "regex_replace", "pattern": "(?i)project (\\w+)", "replacement": "project \\g<1>-X"},
            ],
        ),
        transformations=MASKS,
    )
    async with serve(config) as url:
        yield Gateway(url, openai_upstream, anthropic_upstream)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("upstream", ["gpt", "claude"])
@pytest.mark.parametrize("stream", [False, True])
async def test_global_masks_reach_either_upstream_from_either_client(
    gateway: Gateway, client: str, upstream: str, stream: bool
) -> None:
    answer = await ASK[client](gateway.url, upstream, PERSONAL, stream=stream)

    assert answer.status == 200, answer.body
    assert user_text(gateway.fake(upstream)) == MASKED


async def test_the_upstream_body_is_edited_on_the_same_format_path(gateway: Gateway) -> None:
    answer = await ask_openai(
        gateway.url,
        "gpt-shaped",
        "hi",
        user="client-user",
        service_tier="default",
        x_vendor={"keep": 1, "secret": 2},
        messages=[{"role": "user", "content": "hi", "name": "jane"}],
    )

    assert answer.status == 200, answer.body
    body = gateway.openai.last.json
    assert body["x_vendor"] == {"keep": 1}  # a field the gateway does not know, edited in place
    assert "user" not in body and "name" not in body["messages"][0]
    assert body["metadata"] == {"team": "research"}  # created on the way
    assert body["service_tier"] == "default"  # overwrite: false keeps the client's
    assert body["store"] is False
    assert body["model"] == "gpt-up"  # the gateway's own edits are untouched


@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_s_own_transformations_apply_to_its_format_after_translation(
    gateway: Gateway, stream: bool
) -> None:
    answer = await ask_openai(
        gateway.url, "claude-shaped", "about Project apollo", temperature=0.3, stream=stream
    )

    assert answer.status == 200, answer.body
    body = gateway.anthropic.last.json
    assert "temperature" not in body
    assert body["metadata"] == {"user_id": "team-7"}
    assert user_text(gateway.anthropic) == "about project apollo-X"
    assert body["max_tokens"] and body["model"] == "claude-up"


async def test_the_same_format_anthropic_path_gets_the_model_s_rules_too(gateway: Gateway) -> None:
    answer = await ask_anthropic(
        gateway.url, "claude-shaped", "project zeus for jane.doe@example.com", temperature=0.5
    )

    assert answer.status == 200, answer.body
    body = gateway.anthropic.last.json
    assert "temperature" not in body and body["metadata"] == {"user_id": "team-7"}
    assert user_text(gateway.anthropic) == "project zeus-X for [email]"  # global, then the model's


async def test_a_model_without_transformations_of_its_own_gets_only_the_global_ones(gateway: Gateway) -> None:
    answer = await ask_openai(gateway.url, "claude", "Project apollo", temperature=0.3)

    assert answer.status == 200, answer.body
    body = gateway.anthropic.last.json
    assert body["temperature"] == 0.3 and "metadata" not in body
    assert user_text(gateway.anthropic) == "Project apollo"


async def test_embedding_inputs_are_masked_too(gateway: Gateway) -> None:
    body = {"model": "gpt", "input": ["mail jane.doe@example.com", "nothing personal"]}
    answer = await post(gateway.url + "/v1/embeddings", body, OPENAI_AUTH)

    assert answer.status == 200, answer.body
    assert gateway.openai.last.json["input"] == ["mail [email]", "nothing personal"]


async def test_a_fallback_model_applies_its_own_masks_to_what_it_receives(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    """Per-model masking covers every request that reaches the model, as a fallback too."""
    config = settings(
        model("plain", "openai", openai_upstream.url, openai_upstream.api_key, fallbacks=["careful"]),
        model(
            "careful",
            "anthropic",
            anthropic_upstream.url,
            anthropic_upstream.api_key,
            transformations=MASKS,
        ),
    )
    openai_upstream.enqueue(Reply(status=500))
    async with serve(config) as url:
        answer = await ask_openai(url, "plain", PERSONAL)

    assert answer.status == 200, answer.body
    assert answer.headers["x-waypost-deployment"] == "careful"
    assert user_text(openai_upstream) == PERSONAL  # the first attempt, at a model without masks
    assert user_text(anthropic_upstream) == MASKED


@pytest.fixture
async def strict(openai_upstream: OpenAIUpstream) -> AsyncIterator[str]:
    config = settings(
        model(
            "gpt",
            "openai",
            openai_upstream.url,
            openai_upstream.api_key,
            transformations=[
                {"type": "jsonpath_drop", "name": "no-user-turns", "path": "$.messages[?@.role == 'user']"}
            ],
        ),
        model(
            "gpt-list",
            "openai",
            openai_upstream.url,
            openai_upstream.api_key,
            transformations=[{"type": "jsonpath_add", "path": "$.x_vendor.team", "value": "x"}],
        ),
        transformations=[{"type": "regex_replace", "name": "erase-secrets", "pattern": "^SECRET-\\w+$"}],
    )
    async with serve(config) as url:
        yield url


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_a_body_transformation_that_would_leave_no_messages_is_a_400_naming_it(
    strict: str, openai_upstream: OpenAIUpstream, client: str
) -> None:
    answer = await ASK[client](strict, "gpt", "hello")

    assert answer.status == 400
    message = answer.body["error"]["message"]
    assert "'no-user-turns'" in message and "jsonpath_drop" in message and "'messages'" in message
    assert answer.body["error"]["type"] == "invalid_request_error"
    assert openai_upstream.hits == 0


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_a_rewrite_that_empties_a_text_is_a_400_naming_it(
    strict: str, openai_upstream: OpenAIUpstream, client: str
) -> None:
    answer = await ASK[client](strict, "gpt", "SECRET-abc123")

    assert answer.status == 400
    assert "'erase-secrets'" in answer.body["error"]["message"]
    assert openai_upstream.hits == 0


async def test_a_path_that_cannot_be_followed_is_a_400_naming_the_transformation(
    strict: str, openai_upstream: OpenAIUpstream
) -> None:
    answer = await ask_openai(strict, "gpt-list", "hello", x_vendor="not an object")

    assert answer.status == 400
    assert "jsonpath_add $.x_vendor.team" in answer.body["error"]["message"]
    assert openai_upstream.hits == 0


@pytest.mark.parametrize(
    ("transformation", "key", "why"),
    [
        ({"type": "jsonpath_drop", "path": "$.model"}, "transformations[0]", "the gateway sets itself"),
        ({"type": "jsonpath_drop", "path": "$['stream_options']"}, "transformations[0]", "the gateway sets"),
        ({"type": "jsonpath_drop", "path": "$.messages"}, "transformations[0]", "carries the request"),
        ({"type": "jsonpath_drop", "path": "$"}, "transformations[0]", "the whole body"),
        ({"type": "jsonpath_drop", "path": "$.messages[?@.role =="}, "transformations[0]", "RFC 9535"),
        ({"type": "jsonpath_add", "path": "$.stream", "value": False}, "transformations[0]", "gateway sets"),
        ({"type": "jsonpath_add", "path": "$..team", "value": 1}, "transformations[0]", "one member"),
        ({"type": "jsonpath_add", "path": "$.a"}, "transformations[0]", "value"),
        ({"type": "regex_replace", "pattern": "(a)\\1"}, "transformations[0]", "linear time"),
        ({"type": "regex_replace", "pattern": "(?<=a)b"}, "transformations[0]", "RE2"),
        ({"type": "regex_replace", "pattern": "a", "replacement": "\\2"}, "transformations[0]", "group 2"),
        ({"type": "regex_replace", "pattern": "a", "flags": ["global"]}, "transformations[0]", "flags"),
        ({"type": "uppercase"}, "transformations[0]", "regex_replace"),
    ],
)
@pytest.mark.parametrize("where", ["global", "model"])
def test_an_invalid_transformation_is_refused_at_load_naming_its_key(
    tmp_path: Path, transformation: dict[str, Any], key: str, why: str, where: str
) -> None:
    import yaml

    doc: dict[str, Any] = {"transformations": [transformation]}
    if where == "model":
        doc = {"models": [{"name": "m", "provider": "mock", **doc}]}
        key = "models[0]." + key
    path = tmp_path / "waypost.yaml"
    path.write_text(yaml.safe_dump(doc))

    with pytest.raises(ConfigError) as refused:
        load_settings(str(path))

    assert str(refused.value).startswith(key), str(refused.value)
    assert why in str(refused.value)


def test_the_stage_is_in_the_pipeline_only_with_a_global_text_transformation(tmp_path: Path) -> None:
    # A database in tmp_path: the generated secrets are kept beside it, not in the working directory.
    database = {"url": f"sqlite:///{tmp_path}/waypost.db"}
    jsonpath_only = settings(
        transformations=[{"type": "jsonpath_add", "path": "$.store", "value": False}], database=database
    )
    disabled = settings(transformations=[{**MASKS[0], "enabled": False}], database=database)
    masking = settings(
        transformations=MASKS, rules={"enabled": True}, rate_limits={"enabled": True}, database=database
    )

    assert build_container(jsonpath_only).pipeline.stage("transformations") is None
    assert build_container(disabled).pipeline.stage("transformations") is None
    names = [stage.name for stage in build_container(masking).pipeline.stages]
    assert names.index("rules") < names.index("transformations") < names.index("rate_limits")
