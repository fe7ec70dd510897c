"""The guard wired into HttpClient, against real loopback servers: names that resolve to private
addresses fail at connect time, literals before any connection, redirects are never followed."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from waypost.core.errors import BadRequest, UpstreamError
from waypost.providers.base import Deployment
from waypost.providers.http import HttpClient
from waypost.security.urlguard import BlockedAddress, OutboundPolicy
from waypost.settings import ModelSettings

PROVIDER_KEY = "sk-provider-key-that-must-never-leak"


class Upstream:
    """A loopback server that answers JSON on /ok and redirects /redirect to ``redirect_to``."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.redirect_to = "http://127.0.0.1:9/"
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if request.path.startswith("/redirect"):
            raise web.HTTPFound(self.redirect_to)
        return web.json_response({"ok": True, "path": request.path})


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def strict() -> AsyncIterator[HttpClient]:
    client = HttpClient(OutboundPolicy(allow_private=False))
    yield client
    await client.close()


@pytest.fixture
async def lenient() -> AsyncIterator[HttpClient]:
    client = HttpClient(OutboundPolicy(allow_private=True))
    yield client
    await client.close()


def deployment() -> Deployment:
    return Deployment(ModelSettings(name="m", provider="openai", api_key=PROVIDER_KEY), "x")


async def post(client: HttpClient, url: str) -> None:
    headers = {"authorization": f"Bearer {PROVIDER_KEY}"}
    async with client.post(url, b"{}", headers, dep=deployment(), provider="openai") as resp:
        await resp.read()


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    strict: HttpClient, upstream: Upstream
) -> None:
    # check_url cannot know where "localhost" points: the guarded resolver must catch it.
    assert strict.policy is not None
    strict.policy.check_url(f"http://localhost:{upstream.port}/ok")
    with pytest.raises(UpstreamError) as caught:
        await strict.get_json(f"http://localhost:{upstream.port}/ok")
    message = caught.value.message
    assert caught.value.status == 502
    assert "of host 'localhost' is private (loopback)" in message
    assert "security.allow_private_targets is off" in message
    assert upstream.hits == []


async def test_a_name_resolving_to_loopback_is_reached_when_private_targets_are_allowed(
    lenient: HttpClient, upstream: Upstream
) -> None:
    assert await lenient.get_json(f"http://localhost:{upstream.port}/ok") == {"ok": True, "path": "/ok"}


async def test_a_provider_call_to_a_private_name_is_a_502_that_never_shows_the_key(
    strict: HttpClient, upstream: Upstream
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await post(strict, f"http://localhost:{upstream.port}/v1/chat/completions?key={PROVIDER_KEY}")
    err = caught.value
    assert err.status == 502 and err.retryable is False
    assert "the openai upstream for model 'm' is not an allowed target" in err.message
    assert PROVIDER_KEY not in err.message and PROVIDER_KEY not in repr(err)
    assert upstream.hits == []


async def test_a_private_ip_literal_is_refused_before_connecting(
    strict: HttpClient, upstream: Upstream
) -> None:
    with pytest.raises(UpstreamError, match=r"address 127\.0\.0\.1 is private \(loopback\)"):
        await post(strict, f"http://127.0.0.1:{upstream.port}/v1/chat/completions")
    assert upstream.hits == []


async def test_a_metadata_address_is_refused_even_when_private_targets_are_allowed(
    lenient: HttpClient,
) -> None:
    with pytest.raises(UpstreamError, match="cloud metadata"):
        await lenient.get_json("http://169.254.169.254/latest/meta-data/iam/security-credentials/")


async def test_an_upstream_redirect_is_not_followed(lenient: HttpClient, upstream: Upstream) -> None:
    upstream.redirect_to = f"http://127.0.0.1:{upstream.port}/landed"
    with pytest.raises(UpstreamError, match=r"answered a redirect \(302\), which is not followed"):
        await post(lenient, f"http://127.0.0.1:{upstream.port}/redirect")
    assert upstream.hits == ["/redirect"]


async def test_a_redirect_is_not_followed_by_get_json_either(lenient: HttpClient, upstream: Upstream) -> None:
    upstream.redirect_to = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(UpstreamError, match="which is not followed") as caught:
        await lenient.get_json(f"http://127.0.0.1:{upstream.port}/redirect", what="the identity provider")
    assert caught.value.message.startswith("the identity provider answered a redirect")
    assert upstream.hits == ["/redirect"]


async def test_without_a_policy_nothing_is_guarded(upstream: Upstream) -> None:
    client = HttpClient()
    try:
        assert (await client.get_json(f"http://localhost:{upstream.port}/ok"))["ok"] is True
    finally:
        await client.close()


async def test_get_json_raises_for_an_error_status_with_the_oauth_error(lenient: HttpClient) -> None:
    app = web.Application()

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "invalid_grant", "error_description": "code expired"}, status=400)

    app.router.add_get("/fail", fail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/fail"
        with pytest.raises(UpstreamError, match="answered 400: invalid_grant: code expired") as caught:
            await lenient.get_json(url)
        assert caught.value.upstream_status == 400
        assert await lenient.request_json("GET", url) == (
            400,
            {"error": "invalid_grant", "error_description": "code expired"},
        )
    finally:
        await runner.cleanup()


async def test_the_guarded_resolver_refuses_a_host_with_any_blocked_address() -> None:
    resolver = OutboundPolicy(allow_private=False).resolver()
    with pytest.raises(BlockedAddress, match="of host 'localhost' is private"):
        await resolver.resolve("localhost", 80)
    await resolver.close()


async def test_the_guarded_resolver_passes_addresses_through_when_allowed() -> None:
    resolver = OutboundPolicy(allow_private=True).resolver()
    results = await resolver.resolve("localhost", 80)
    assert {r["host"] for r in results} <= {"127.0.0.1", "::1"} and results
    await resolver.close()


async def test_check_resolved_refuses_a_name_resolving_to_a_private_address() -> None:
    with pytest.raises(
        BadRequest, match=r"base_url: address 127\.0\.0\.1 of host 'localhost' is private"
    ) as caught:
        await OutboundPolicy().check_resolved("http://localhost:8080/v1", field="base_url")
    assert caught.value.param == "base_url"


async def test_check_resolved_accepts_private_names_when_allowed() -> None:
    await OutboundPolicy(allow_private=True).check_resolved("http://localhost:8080/v1")


async def test_check_resolved_lets_a_name_that_does_not_resolve_now_pass() -> None:
    await OutboundPolicy().check_resolved("https://nonexistent.invalid/v1")
