"""Who may read ``/metrics`` and where (a bearer token, a port of its own, off), and which routes
become labels: templates, never the raw paths a scanner sends."""

from __future__ import annotations

import socket
import uuid

import httpx

from tests.fakes import OpenAIUpstream, Reply
from tests.harness import GATEWAY_KEY, model, running, settings
from tests.observability.metrics_scrape import scrape

AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}
TOKEN = "metrics-token-0123456789"
CHAT = "/v1/chat/completions"
BODY = {"model": "gpt", "messages": [{"role": "user", "content": "hello"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_with_a_token_a_scrape_without_it_gets_401() -> None:
    async with (
        running(settings(metrics={"token": TOKEN})) as gw,
        httpx.AsyncClient(base_url=gw.url, timeout=30) as client,
    ):
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"authorization": "Bearer not-the-metrics-token"})
        gateway_key = await client.get("/metrics", headers=AUTH)  # an API key is not the metrics token
        right = await client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    for refused in (missing, wrong, gateway_key):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "metrics.token" in refused.json()["error"]["message"]
    assert right.status_code == 200 and "waypost_requests_total" in right.text


async def test_on_a_port_of_its_own_metrics_leave_the_gateways_port() -> None:
    port = free_port()
    config = settings(metrics={"port": port, "host": "127.0.0.1", "token": TOKEN})
    async with running(config) as gw, httpx.AsyncClient(timeout=30) as client:
        on_gateway = await client.get(f"{gw.url}/metrics")
        elsewhere = await scrape(client, f"http://127.0.0.1:{port}", TOKEN)
        refused = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert on_gateway.status_code == 404
    assert refused.status_code == 401
    assert "waypost_in_flight_requests" in elsewhere.names()


async def test_turned_off_there_is_no_metrics_route_and_the_overhead_header_stays() -> None:
    async with OpenAIUpstream() as upstream:
        upstream.default_reply = Reply(text="hi", input_tokens=1, output_tokens=1)
        config = settings(
            model("gpt", "openai", upstream.url, "sk-fake", public=True), metrics={"enabled": False}
        )
        async with (
            running(config) as gw,
            httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client,
        ):
            answer = await client.post(CHAT, json=BODY)
            assert (await client.get("/metrics")).status_code == 404
    assert float(answer.headers["x-waypost-overhead-ms"]) >= 0


async def test_routes_are_labelled_by_template_and_random_paths_are_unmatched() -> None:
    scanned = f"/wp-admin/{uuid.uuid4().hex}.php"
    user_path = f"/admin/users/{uuid.uuid4().int % 10**9}"
    async with (
        running(settings()) as gw,
        httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client,
    ):
        assert (await client.get(scanned)).status_code == 404
        assert (await client.get(user_path)).status_code == 404  # a user that does not exist
        assert (await client.get("/health")).status_code == 200
        wrong_method = await client.post("/metrics")
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
        assert (await client.post(f"/v1/chat/completions/{uuid.uuid4().hex}", json=BODY)).status_code == 404
        got = await scrape(client, gw.url)
    routes = got.label_values("waypost_http_requests_total", "route")
    assert {"unmatched", "/admin/users/{user}", "/health"} <= routes
    assert got.value("waypost_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert got.value("waypost_http_requests_total", route="unmatched", method="POST", status="404") == 1
    assert got.value("waypost_http_requests_total", route="/metrics", method="POST", status="405") == 1
    assert scanned not in got.text and user_path not in got.text
    assert all("{" in r or r in ("/health", "/metrics", "unmatched") for r in routes), routes


async def test_extra_labels_are_opt_in_and_bounded() -> None:
    async with OpenAIUpstream() as upstream:
        upstream.default_reply = Reply(text="hi", input_tokens=1, output_tokens=1)
        config = settings(
            model("gpt", "openai", upstream.url, "sk-fake", public=True),
            metrics={"extra_labels": {"requests": ["tag"]}, "max_label_values": 2},
        )
        async with (
            running(config) as gw,
            httpx.AsyncClient(base_url=gw.url, headers=AUTH, timeout=30) as client,
        ):
            for tag in ("alpha", "beta", "gamma", "delta", "alpha"):
                resp = await client.post(CHAT, json=BODY, headers={"x-waypost-tags": tag})
                assert resp.status_code == 200
            got = await scrape(client, gw.url)
    assert got.label_values("waypost_requests_total", "tag") == {"alpha", "beta", "other"}
    assert got.value("waypost_requests_total", tag="alpha") == 2
    assert got.value("waypost_requests_total", tag="other") == 2
    assert got.label_values("waypost_tokens_total", "tag") == set()  # asked for requests only
