"""Rate limits enforced on the data plane of a real gateway (memory counters, or Redis) in front of a fake
OpenAI upstream that bills 100 input and 50 output tokens per answer: 429 in the caller's format
with Retry-After, the allowance headers in each provider's formats, tokens settled to the real
usage, concurrency slots freed whatever happens."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.control.client import Control, control
from tests.fakes.base import Reply
from tests.fakes.openai_upstream import OpenAIUpstream
from tests.harness import GATEWAY_KEY, model, settings
from tests.rate_limits.conftest import REDIS_URL, forget_prefix, need_redis, unique_prefix
from tests.rate_limits.gated_upstream import GatedUpstream

ANTHROPIC = {"anthropic-version": "2023-06-01"}
GO_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$|^(\d+)ms$")


def go_seconds(text: str) -> float:
    """A Go duration (``6m0s``, ``1.5s``, ``20ms``) in seconds; fails on anything else."""
    match = GO_DURATION.match(text)
    assert match and text, f"not a Go duration: {text!r}"
    hours, minutes, seconds, ms = match.groups()
    if ms is not None:
        return int(ms) / 1000
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def rfc3339(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def chat(model: str = "gpt", max_tokens: int = 100, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "hello there"}],
        **extra,
    }


def limits(*definitions: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"limits": list(definitions), **options}


@pytest.fixture
async def upstream() -> AsyncIterator[OpenAIUpstream]:
    async with OpenAIUpstream() as fake:
        fake.default_reply = Reply(text="ok", input_tokens=100, output_tokens=50)
        yield fake


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """The ``state`` section: counters in the gateway's memory, or in Redis."""
    if request.param == "memory":
        yield {"backend": "memory"}
        return
    need_redis()
    prefix = unique_prefix()
    try:
        yield {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix}
    finally:
        await forget_prefix(prefix)


def gateway_with(
    upstream_url: str, state: dict[str, Any], *definitions: dict[str, Any], **sections: Any
) -> Any:
    return settings(
        model("gpt", "openai", upstream_url, "sk-x", upstream_model="gpt-4o-mini", public=True),
        model("other", "openai", upstream_url, "sk-x", upstream_model="gpt-4o", public=True),
        rate_limits=limits(*definitions, **sections.pop("rate_limits", {})),
        state=state,
        **sections,
    )


@pytest.fixture
async def api(
    upstream: OpenAIUpstream, state: dict[str, Any], request: pytest.FixtureRequest
) -> AsyncIterator[Control]:
    definitions = getattr(request, "param", None) or [
        {
            "name": "everyone",
            "scope": "default",
            "windows": [
                {"per": "minute", "requests": 3, "tokens": 100_000},
                {"per": "day", "requests": 1000},
            ],
        }
    ]
    async with control(gateway_with(upstream.url, state, *definitions)) as client:
        yield client


async def test_openai_callers_get_their_allowance_in_openai_headers(api: Control) -> None:
    answer = await api.post("/v1/chat/completions", chat())

    assert answer.status_code == 200, answer.text
    h = answer.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("3", "2")
    assert 59 <= go_seconds(h["x-ratelimit-reset-requests"]) <= 60  # whole again a minute on
    assert h["x-ratelimit-limit-tokens"] == "100000"
    assert int(h["x-ratelimit-remaining-tokens"]) < 100_000
    assert 0 < go_seconds(h["x-ratelimit-reset-tokens"]) <= 60
    assert not any(name.startswith("anthropic-ratelimit") for name in h)


async def test_anthropic_callers_get_their_allowance_in_anthropic_headers(api: Control) -> None:
    answer = await api.post("/v1/messages", chat(), headers=ANTHROPIC)

    assert answer.status_code == 200, answer.text
    h = answer.headers
    assert (h["anthropic-ratelimit-requests-limit"], h["anthropic-ratelimit-requests-remaining"]) == (
        "3",
        "2",
    )
    reset = rfc3339(h["anthropic-ratelimit-requests-reset"])
    assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 61
    for family in ("tokens", "input-tokens", "output-tokens"):  # the combined limit bounds each
        assert h[f"anthropic-ratelimit-{family}-limit"] == "100000"
        assert int(h[f"anthropic-ratelimit-{family}-remaining"]) < 100_000
        rfc3339(h[f"anthropic-ratelimit-{family}-reset"])
    assert not any(name.startswith("x-ratelimit") for name in h)


async def test_past_the_limit_an_openai_caller_gets_429_with_retry_after(
    api: Control, upstream: OpenAIUpstream
) -> None:
    for _ in range(3):
        assert (await api.post("/v1/chat/completions", chat())).status_code == 200

    refused = await api.post("/v1/chat/completions", chat())

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "Rate limit 'everyone' (each user: 3 requests and 100,000 tokens per minute" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in refused.headers  # waiting helps
    assert upstream.hits == 3  # the refused request reached nothing


async def test_past_the_limit_an_anthropic_caller_gets_429_in_its_format(api: Control) -> None:
    for _ in range(3):
        assert (await api.post("/v1/messages", chat(), headers=ANTHROPIC)).status_code == 200

    refused = await api.post("/v1/messages", chat(), headers=ANTHROPIC)

    assert refused.status_code == 429
    body = refused.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "Rate limit 'everyone'" in body["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"


@pytest.mark.parametrize(
    "api",
    [[{"name": "tpm", "scope": "default", "windows": [{"per": "minute", "tokens": 2500}]}]],
    indirect=True,
)
async def test_tokens_reserved_are_settled_to_the_real_usage(api: Control) -> None:
    """Each request reserves its prompt estimate and 1,000 output tokens, and uses 150: two fit
    at once, yet ten in a row all pass as each settles."""
    remaining = []
    for _ in range(10):
        answer = await api.post("/v1/chat/completions", chat(max_tokens=1000))
        assert answer.status_code == 200, answer.text
        remaining.append(int(answer.headers["x-ratelimit-remaining-tokens"]))

    assert [a - b for a, b in itertools.pairwise(remaining)] == [150] * 9
    assert 2500 - remaining[-1] - 150 * 9 > 1000  # what the last one holds: its reservation


@pytest.mark.parametrize(
    "api",
    [[{"name": "small", "scope": "model", "target": "gpt", "windows": [{"per": "minute", "tokens": 500}]}]],
    indirect=True,
)
async def test_a_request_bigger_than_a_window_is_told_so_and_not_to_retry(
    api: Control, upstream: OpenAIUpstream
) -> None:
    refused = await api.post("/v1/chat/completions", chat(max_tokens=1000))

    assert refused.status_code == 429
    assert "more than rate limit 'small'" in refused.json()["error"]["message"]
    assert refused.headers["x-should-retry"] == "false" and "retry-after" not in refused.headers
    assert upstream.hits == 0
    assert (await api.post("/v1/chat/completions", chat(max_tokens=100))).status_code == 200


@pytest.mark.parametrize(
    "api",
    [[{"name": "gpt-rpm", "scope": "model", "target": "gpt", "windows": [{"per": "minute", "requests": 1}]}]],
    indirect=True,
)
async def test_a_model_limit_counts_that_model_only(api: Control) -> None:
    assert (await api.post("/v1/chat/completions", chat("gpt"))).status_code == 200
    assert (await api.post("/v1/chat/completions", chat("gpt"))).status_code == 429

    other = await api.post("/v1/chat/completions", chat("other"))

    assert other.status_code == 200 and "x-ratelimit-limit-requests" not in other.headers


async def api_token(api: Control, email: str) -> str:
    minted = await api.post("/admin/tokens", {"user": email, "name": "calls"})
    assert minted.status_code == 201, minted.text
    return str(minted.json()["token"])


async def test_each_user_has_a_default_of_its_own_and_a_user_limit_replaces_it(api: Control) -> None:
    alice = await api.person("alice@example.com")
    bob = await api.person("bob@example.com")
    created = await api.post(
        "/admin/limits",
        {"name": "bob", "scope": "user", "target": bob.email, "windows": [{"per": "minute", "requests": 5}]},
    )
    assert created.status_code == 201, created.text
    for _ in range(3):
        assert (await api.post("/v1/chat/completions", chat())).status_code == 200

    theirs = await api.post("/v1/chat/completions", chat(), token=await api_token(api, alice.email))
    bobs = await api.post("/v1/chat/completions", chat(), token=await api_token(api, bob.email))

    assert theirs.headers["x-ratelimit-remaining-requests"] == "2"  # alice's own default
    assert (bobs.headers["x-ratelimit-limit-requests"], bobs.headers["x-ratelimit-remaining-requests"]) == (
        "5",
        "4",
    )


async def test_a_request_refused_by_a_later_stage_is_not_counted(
    upstream: OpenAIUpstream, state: dict[str, Any]
) -> None:
    definition = {
        "name": "rpm",
        "scope": "model",
        "target": "gpt",
        "windows": [{"per": "minute", "requests": 2}],
    }
    config = gateway_with(upstream.url, state, definition, budgets={"enabled": True})
    async with control(config) as api:
        budget = {"name": "none-left", "scope": "global", "limit_tokens": 1, "period": "monthly"}
        assert (await api.post("/admin/budgets", budget)).status_code == 201
        for _ in range(4):
            refused = await api.post("/v1/chat/completions", chat())
            assert refused.status_code == 429 and "Budget" in refused.text
        usage = (await api.get("/admin/limits/rpm")).json()["usage"]

    assert usage["windows"][0]["requests"] == 0 and upstream.hits == 0


@pytest.fixture
async def gated() -> AsyncIterator[GatedUpstream]:
    async with GatedUpstream() as fake:
        yield fake


async def first_chunk(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, Any]:
    """Start a stream and read until its first chunk: the request is in flight."""
    body = {**chat(), "stream": True}
    request = client.build_request(
        "POST", f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {GATEWAY_KEY}"}
    )
    response = await client.send(request, stream=True)
    lines = response.aiter_lines()
    async for line in lines:
        if line.startswith("data:"):
            break
    return response, lines


async def wait_for_in_flight(api: Control, name: str, count: int) -> None:
    """Until the limit's slots in use are ``count`` (the gateway frees a slot once it has seen
    the client go, which takes it a moment)."""
    for _ in range(500):
        usage = (await api.get(f"/admin/limits/{name}")).json()["usage"]
        if usage["in_flight"] == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name}: in flight {usage['in_flight']}, never {count}")


CONCURRENT = {"name": "two-at-once", "scope": "model", "target": "gpt", "concurrency": 2}


async def test_a_concurrency_limit_refuses_while_slow_streams_hold_the_slots(
    gated: GatedUpstream, state: dict[str, Any]
) -> None:
    async with (
        control(gateway_with(gated.url, state, CONCURRENT)) as api,
        httpx.AsyncClient(timeout=30) as client,
    ):
        streams = [await first_chunk(client, api.url) for _ in range(2)]

        refused = await api.post("/v1/chat/completions", chat())
        assert refused.status_code == 429
        assert "2 requests in flight" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "1"

        gated.gate.set()
        for response, lines in streams:
            assert "[DONE]" in "".join([line async for line in lines])
            await response.aclose()
        await wait_for_in_flight(api, "two-at-once", 0)
        assert (await api.post("/v1/chat/completions", chat())).status_code == 200
    assert gated.hits == 3


async def test_a_client_that_goes_away_frees_its_slot(gated: GatedUpstream, state: dict[str, Any]) -> None:
    async with (
        control(gateway_with(gated.url, state, CONCURRENT)) as api,
        httpx.AsyncClient(timeout=30) as client,
    ):
        kept = await first_chunk(client, api.url)
        dropped, _ = await first_chunk(client, api.url)
        assert (await api.post("/v1/chat/completions", chat())).status_code == 429

        await dropped.aclose()  # the client hangs up mid-stream
        await wait_for_in_flight(api, "two-at-once", 1)

        gated.gate.set()
        assert (await api.post("/v1/chat/completions", chat())).status_code == 200
        await kept[0].aclose()


async def test_an_upstream_error_frees_the_slot_and_counts_the_request(
    gated: GatedUpstream, state: dict[str, Any]
) -> None:
    definition = {**CONCURRENT, "windows": [{"per": "minute", "requests": 100}]}
    gated.status = 500
    async with control(gateway_with(gated.url, state, definition)) as api:
        for _ in range(3):
            assert (await api.post("/v1/chat/completions", chat())).status_code == 502
        usage = (await api.get("/admin/limits/two-at-once")).json()["usage"]

    assert usage["in_flight"] == 0
    assert usage["windows"][0]["requests"] == 3  # they reached the upstream


CONFIG_PEOPLE = [
    {"name": "team", "scope": "group", "target": "team", "windows": [{"per": "minute", "requests": 2}]},
    {
        "name": "carol",
        "scope": "user",
        "target": "carol@example.com",
        "windows": [{"per": "hour", "requests": 1}],
    },
]


@pytest.mark.parametrize("api", [CONFIG_PEOPLE], indirect=True)
async def test_config_limits_name_groups_and_users_as_people_know_them(api: Control) -> None:
    """A group limit is shared by its members; a user limit of the config file names the user by
    e-mail, and applies once the user exists (after a reload)."""
    alice, bob = await api.person("alice@example.com"), await api.person("bob@example.com")
    assert (await api.post("/admin/groups", {"name": "team"})).status_code == 201
    for person in (alice, bob):
        added = await api.post("/admin/groups/team/members", {"user": person.email})
        assert added.status_code == 200, added.text
    shown = (await api.get("/admin/limits/carol")).json()
    assert shown["target_name"] == "user carol@example.com (does not exist)"
    carol = await api.person("carol@example.com")
    assert api.container.rate_limits is not None
    await api.container.rate_limits.load()  # what the refresher does every cache_ttl seconds

    statuses = [
        (await api.post("/v1/chat/completions", chat(), token=await api_token(api, who.email))).status_code
        for who in (alice, bob, alice)
    ]
    carols = [
        (await api.post("/v1/chat/completions", chat(), token=await api_token(api, carol.email))).status_code
        for _ in range(2)
    ]

    assert statuses == [200, 200, 429]  # two a minute for the group, together
    assert carols == [200, 429]
    assert (await api.get("/admin/limits/carol")).json()["target_name"] == "user carol@example.com"
