"""Where a request goes and what arrives there: fallback chains, regex model matching, the headers
an upstream receives, and request ids. Specified by docs/configuration.md (``models``, "Retries and
fallbacks") and the gateway's documented security rules; real gateway, real fake upstreams."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import openai
import pytest
from multidict import CIMultiDictProxy

from tests.fakes import AnthropicUpstream, FakeUpstream, OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, serve, settings

FORMATS = ["openai", "anthropic"]
USER: Any = [{"role": "user", "content": "hi"}]
HEX_ID = re.compile(r"[0-9a-f]{32}")


def entry(name: str, fake: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """A models entry pointing at ``fake`` with its own key."""
    kind = "openai" if isinstance(fake, OpenAIUpstream) else "anthropic"
    return model(name, kind, fake.url, fake.api_key, **extra)


def upstream_of(
    kind: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> FakeUpstream:
    return openai_upstream if kind == "openai" else anthropic_upstream


@asynccontextmanager
async def openai_sdk(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=url + "/v1", api_key=GATEWAY_KEY, max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


def path_for(fmt: str) -> str:
    return "/v1/chat/completions" if fmt == "openai" else "/v1/messages"


def body_for(fmt: str, name: str, *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": name, "messages": USER, "stream": stream, **extra}
    if fmt == "anthropic":
        body["max_tokens"] = 64
    return body


BASE_HEADERS = {"authorization": f"Bearer {GATEWAY_KEY}", "anthropic-version": "2023-06-01"}


async def post(
    url: str, fmt: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path_for(fmt), json=body, headers={**BASE_HEADERS, **(headers or {})}) as resp,
    ):
        return resp.status, resp.headers, await resp.read()


async def ask(url: str, name: str) -> tuple[str, Any]:
    """The answer text and response headers of a non-streamed OpenAI-format call."""
    async with openai_sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(model=name, messages=USER)
    return raw.parse().choices[0].message.content or "", raw.headers


# -- fallbacks -------------------------------------------------------------------------------------


async def test_failing_model_falls_back_to_the_next_one(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=503))
    anthropic_upstream.enqueue(Reply(text="answered by B"))
    config = settings(entry("A", openai_upstream, fallbacks=["B"]), entry("B", anthropic_upstream))
    async with serve(config) as url:
        text, headers = await ask(url, "A")
    assert text == "answered by B"
    assert headers["x-waypost-deployment"] == "B"
    assert headers["x-waypost-provider"] == "anthropic"
    assert (openai_upstream.hits, anthropic_upstream.hits) == (1, 1)


async def test_fallback_loop_tries_each_model_once(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=500, repeat=5))
    anthropic_upstream.enqueue(Reply(status=500, repeat=5))
    config = settings(
        entry("A", openai_upstream, fallbacks=["B"]), entry("B", anthropic_upstream, fallbacks=["A"])
    )
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="A", messages=USER)
    assert err.value.status_code == 502
    assert (openai_upstream.hits, anthropic_upstream.hits) == (1, 1)


async def test_fallbacks_of_fallbacks_are_followed(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=503))
    anthropic_upstream.enqueue(Reply(status=529))
    async with OpenAIUpstream(api_key="sk-third-upstream") as third:
        third.enqueue(Reply(text="answered by C"))
        config = settings(
            entry("A", openai_upstream, fallbacks=["B"]),
            entry("B", anthropic_upstream, fallbacks=["C"]),
            entry("C", third),
        )
        async with serve(config) as url:
            text, headers = await ask(url, "A")
    assert text == "answered by C"
    assert headers["x-waypost-deployment"] == "C"
    assert (openai_upstream.hits, anthropic_upstream.hits, third.hits) == (1, 1, 1)


async def test_fallback_chain_stops_after_eight_models(openai_upstream: OpenAIUpstream) -> None:
    openai_upstream.enqueue(Reply(status=500, repeat=20))
    names = [f"m{i}" for i in range(10)]
    entries = [entry(n, openai_upstream, fallbacks=names[i + 1 : i + 2]) for i, n in enumerate(names)]
    async with serve(settings(*entries)) as url, openai_sdk(url) as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="m0", messages=USER)
    assert openai_upstream.hits == 8


async def test_stream_falls_back_when_the_first_model_fails_before_its_first_byte(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=503))
    anthropic_upstream.enqueue(Reply(text="streamed by B"))
    config = settings(entry("A", openai_upstream, fallbacks=["B"]), entry("B", anthropic_upstream))
    async with serve(config) as url, openai_sdk(url) as client:
        raw = await client.chat.completions.with_raw_response.create(model="A", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "streamed by B"
    assert raw.headers["x-waypost-deployment"] == "B"
    assert raw.headers["x-waypost-attempts"] == "2"


async def test_upstream_redirect_is_not_followed(openai_upstream: OpenAIUpstream) -> None:
    async with OpenAIUpstream() as trap:
        location = {"location": trap.url + "/v1/chat/completions"}
        openai_upstream.enqueue(Reply(status=307, raw_body=b"", headers=location))
        async with serve(settings(entry("m", openai_upstream))) as url, openai_sdk(url) as client:
            with pytest.raises(openai.APIStatusError) as err:
                await client.chat.completions.create(model="m", messages=USER)
        assert trap.hits == 0
    assert err.value.status_code == 502


# -- regex matching --------------------------------------------------------------------------------


async def test_pattern_forwards_the_requested_name(openai_upstream: OpenAIUpstream) -> None:
    config = settings(entry("gpt-4-family", openai_upstream, match="gpt-4.*"))
    async with serve(config) as url:
        _, headers = await ask(url, "gpt-4o-mini")
    assert openai_upstream.last.json["model"] == "gpt-4o-mini"
    assert headers["x-waypost-deployment"] == "gpt-4-family"


async def test_exact_name_wins_over_a_matching_pattern(
    openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    config = settings(
        entry("gpt-4-family", anthropic_upstream, match="gpt-4.*"),  # listed first, still loses
        entry("gpt-4o", openai_upstream, upstream_model="exact-upstream"),
    )
    async with serve(config) as url:
        _, headers = await ask(url, "gpt-4o")
    assert headers["x-waypost-deployment"] == "gpt-4o"
    assert openai_upstream.last.json["model"] == "exact-upstream"
    assert anthropic_upstream.hits == 0


async def test_pattern_with_upstream_model_aliases(anthropic_upstream: AnthropicUpstream) -> None:
    config = settings(
        entry("claude-any", anthropic_upstream, match="claude-.*", upstream_model="claude-sonnet-4-6")
    )
    async with serve(config) as url:
        await ask(url, "claude-whatever-you-like")
    assert anthropic_upstream.last.json["model"] == "claude-sonnet-4-6"


async def test_pattern_must_match_the_whole_name(openai_upstream: OpenAIUpstream) -> None:
    config = settings(entry("gpt-4-family", openai_upstream, match="gpt-4.*"))
    async with serve(config) as url, openai_sdk(url) as client:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="my-gpt-4o", messages=USER)
    assert openai_upstream.hits == 0


# -- what the upstream receives --------------------------------------------------------------------

# Credentials of the caller, cookies, hop-by-hop and proxy headers: none is the upstream's business.
CLIENT_ONLY_HEADERS = {
    "x-api-key": GATEWAY_KEY,
    "api-key": GATEWAY_KEY,
    "cookie": "session=s3cr3t",
    "connection": "keep-alive, x-hop",
    "x-hop": "hop-by-hop by Connection",
    "keep-alive": "timeout=5, max=100",
    "proxy-authorization": "Basic cHJveHk6c2VjcmV0",
    "proxy-connection": "keep-alive",
    "te": "trailers",
    "trailer": "x-checksum",
    "upgrade": "h2c",
    "x-forwarded-for": "10.0.0.7",
    "x-forwarded-host": "internal.example",
    "x-forwarded-proto": "http",
    "forwarded": "for=10.0.0.7;proto=http",
    "x-real-ip": "10.0.0.7",
}


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f"from-{f}" for f in FORMATS])
async def test_client_credentials_and_hop_by_hop_headers_stay_at_the_gateway(
    fmt: str, upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    async with serve(settings(entry("m", fake))) as url:
        status, _, _ = await post(url, fmt, body_for(fmt, "m"), CLIENT_ONLY_HEADERS)
    assert status == 200
    received = fake.last.headers
    # The Anthropic upstream does get an x-api-key: its own, configured one (the last check).
    leaked = sorted(set(received) & (set(CLIENT_ONLY_HEADERS) - {"connection", "x-api-key"}))
    assert leaked == []
    assert "x-hop" not in received.get("connection", "")
    assert GATEWAY_KEY not in json.dumps(received)
    assert "transfer-encoding" not in received and "upgrade" not in received.get("connection", "")


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_upstream_gets_the_configured_key_not_the_callers(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    async with serve(settings(entry("m", fake))) as url:
        await ask(url, "m")
    received = fake.last.headers
    if upstream == "openai":
        assert received["authorization"] == f"Bearer {fake.api_key}"
        assert "x-api-key" not in received
    else:
        assert received["x-api-key"] == fake.api_key
        assert "authorization" not in received


async def test_chunked_request_reaches_the_upstream_with_a_plain_length(
    openai_upstream: OpenAIUpstream,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        data = json.dumps(body_for("openai", "m")).encode()
        yield data[:10]
        yield data[10:]

    async with serve(settings(entry("m", openai_upstream))) as url, aiohttp.ClientSession() as session:
        headers = {**BASE_HEADERS, "content-type": "application/json"}
        async with session.post(url + path_for("openai"), data=chunks(), headers=headers) as resp:
            assert resp.status == 200
            assert resp.request_info.headers.get("transfer-encoding") == "chunked"
    received = openai_upstream.last
    assert "transfer-encoding" not in received.headers
    assert received.headers["content-length"] == str(len(received.body))


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_configured_model_headers_are_sent_upstream(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    config = settings(entry("m", fake, headers={"X-Team": "blue", "OpenAI-Organization": "org-42"}))
    async with serve(config) as url:
        await ask(url, "m")
    assert fake.last.headers["x-team"] == "blue"
    assert fake.last.headers["openai-organization"] == "org-42"


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
async def test_configured_headers_override_the_gateways_own(
    upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    # The key goes in a differently-cased header: only the configured value may reach the upstream.
    header = (
        {"Authorization": f"Bearer {fake.api_key}"} if upstream == "openai" else {"X-Api-Key": fake.api_key}
    )
    config = settings(model("m", upstream, fake.url, "sk-stale-key-0000", headers=header))
    async with serve(config) as url:
        text, _ = await ask(url, "m")
    assert text == "echo: hi"
    assert "sk-stale-key-0000" not in json.dumps(fake.last.headers)


# Every spelling an SDK or another gateway has used to carry an endpoint or a key in the body.
REDIRECTING_FIELDS = ("base_url", "api_base", "api_url", "endpoint", "url")


@pytest.mark.parametrize("upstream", FORMATS, ids=[f"to-{u}" for u in FORMATS])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f"from-{f}" for f in FORMATS])
async def test_request_body_cannot_redirect_the_call_or_replace_the_key(
    fmt: str, upstream: str, openai_upstream: OpenAIUpstream, anthropic_upstream: AnthropicUpstream
) -> None:
    fake = upstream_of(upstream, openai_upstream, anthropic_upstream)
    async with OpenAIUpstream() as trap:  # accepts any key: it must simply never be called
        target = {field: trap.url + "/v1" for field in REDIRECTING_FIELDS}
        redirect: dict[str, Any] = {
            **target,
            "api_key": "sk-attacker",
            "extra_body": {**target, "api_key": "sk-attacker"},
        }
        async with serve(settings(entry("m", fake))) as url:
            status, _, body = await post(url, fmt, body_for(fmt, "m", **redirect))
        assert trap.hits == 0
    assert status == 200, body
    assert fake.hits == 1
    received = fake.last.headers
    key_header = received.get("x-api-key") or received.get("authorization", "")
    assert key_header.removeprefix("Bearer ") == fake.api_key


# -- request ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_request_id_of_the_caller_is_echoed(fmt: str, openai_upstream: OpenAIUpstream) -> None:
    async with serve(settings(entry("m", openai_upstream))) as url:
        _, headers, _ = await post(url, fmt, body_for(fmt, "m"), {"x-request-id": "trace-42.a:b_c"})
    assert headers["x-request-id"] == "trace-42.a:b_c"


@pytest.mark.parametrize("fmt", FORMATS)
async def test_request_id_is_generated_when_none_is_sent(fmt: str, openai_upstream: OpenAIUpstream) -> None:
    async with serve(settings(entry("m", openai_upstream))) as url:
        _, first, _ = await post(url, fmt, body_for(fmt, "m"))
        _, second, _ = await post(url, fmt, body_for(fmt, "m"))
    assert HEX_ID.fullmatch(first["x-request-id"])
    assert first["x-request-id"] != second["x-request-id"]


async def test_unusable_request_id_is_replaced(openai_upstream: OpenAIUpstream) -> None:
    async with serve(settings(entry("m", openai_upstream))) as url:
        _, headers, _ = await post(url, "openai", body_for("openai", "m"), {"x-request-id": "x" * 129})
    assert HEX_ID.fullmatch(headers["x-request-id"])


@pytest.mark.parametrize(
    "failure",
    ["unknown-model", "wrong-key", "upstream-500"],
    ids=["unknown-model", "wrong-key", "upstream-500"],
)
@pytest.mark.parametrize("fmt", FORMATS)
async def test_request_id_is_on_error_responses(
    fmt: str, failure: str, openai_upstream: OpenAIUpstream
) -> None:
    openai_upstream.enqueue(Reply(status=500, repeat=2))
    name = "nope" if failure == "unknown-model" else "m"
    headers = {"authorization": "Bearer wrong-key-0000"} if failure == "wrong-key" else {}
    async with serve(settings(entry("m", openai_upstream))) as url:
        status, sent, _ = await post(
            url, fmt, body_for(fmt, name), {**headers, "x-request-id": "err-trace-1"}
        )
        status_generated, generated, _ = await post(url, fmt, body_for(fmt, name), headers)
    assert status >= 400 and status_generated >= 400
    assert sent["x-request-id"] == "err-trace-1"
    assert HEX_ID.fullmatch(generated["x-request-id"])


@pytest.mark.parametrize("fmt", FORMATS)
async def test_request_id_is_on_streams(fmt: str, anthropic_upstream: AnthropicUpstream) -> None:
    async with serve(settings(entry("m", anthropic_upstream))) as url:
        status, sent, _ = await post(
            url, fmt, body_for(fmt, "m", stream=True), {"x-request-id": "stream-trace-1"}
        )
        _, generated, _ = await post(url, fmt, body_for(fmt, "m", stream=True))
    assert status == 200
    assert sent["content-type"].startswith("text/event-stream")
    assert sent["x-request-id"] == "stream-trace-1"
    assert HEX_ID.fullmatch(generated["x-request-id"])
