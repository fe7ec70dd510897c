"""/ui: the built web UI served from the package, with its security headers, caching, client-side
route fallback, 404s for missing files, and the same behaviour under ``server.root_path``."""

from __future__ import annotations

import re

import httpx

from tests.harness import model, serve, settings

CSP_PARTS = ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'")


def ui_settings(**server: object) -> object:
    return settings(model("echo", "mock"), server=server) if server else settings(model("echo", "mock"))


def asset_paths(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="\./(assets/[^"]+)"', page)


def assert_secure(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    for part in CSP_PARTS:
        assert part in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_page_is_served_with_a_strict_policy_and_revalidated() -> None:
    async with serve(ui_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/ui/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert_secure(response)
    page = response.text
    assert '<base href="./" />' in page
    # No inline script: every <script> has a src (the policy would refuse the others anyway).
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))
    assert asset_paths(page)


async def test_hashed_assets_are_cached_for_a_year_with_their_type() -> None:
    async with serve(ui_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        page = (await client.get("/ui/")).text
        responses = {path: await client.get(f"/ui/{path}") for path in asset_paths(page)}
    for path, response in responses.items():
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        expected = "text/javascript" if path.endswith(".js") else "text/css"
        assert response.headers["content-type"].startswith(expected)
        assert_secure(response)


async def test_a_client_side_route_gets_the_page_with_a_base_back_to_ui() -> None:
    async with serve(ui_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        top = await client.get("/ui/tokens")
        nested = await client.get("/ui/admin/rules?group_by=model")
    assert top.status_code == nested.status_code == 200
    assert '<base href="./" />' in top.text
    assert '<base href="../" />' in nested.text
    assert nested.headers["cache-control"] == "no-cache"


async def test_ui_without_its_slash_redirects_relatively() -> None:
    async with serve(ui_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/ui?x=1")
    assert response.status_code == 308
    assert response.headers["location"] == "ui/?x=1"  # relative: a proxy's prefix stays in front


async def test_a_missing_file_is_a_404_not_the_page() -> None:
    async with serve(ui_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        missing = await client.get("/ui/assets/index-missing.js")
        favicon = await client.get("/ui/favicon.ico")
        escape = await client.get("/ui/assets/..%2F..%2Fapp.py")
        hidden = await client.get("/ui/index.html")
    for response in (missing, favicon, escape):
        assert response.status_code == 404
        assert "No file /ui/" in response.json()["error"]["message"]
        assert_secure(response)
    assert hidden.status_code == 404  # the page is only served with its <base>


async def test_other_methods_are_refused() -> None:
    async with serve(ui_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/ui/", json={})
        head = await client.head("/ui/tokens")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert head.status_code == 200 and head.content == b""


async def test_under_a_root_path_with_or_without_the_prefix() -> None:
    async with serve(ui_settings(root_path="/gateway")) as url, httpx.AsyncClient(base_url=url) as client:
        kept = await client.get("/gateway/ui/admin/usage")  # a proxy that passes the prefix on
        stripped = await client.get("/ui/admin/usage")  # one that strips it
        asset = await client.get(f"/gateway/ui/{asset_paths(kept.text)[0]}")
        api = await client.get("/gateway/auth/identity-providers")
        health = await client.get("/gateway/health")
    assert kept.status_code == stripped.status_code == 200
    assert '<base href="../" />' in kept.text
    assert asset.status_code == 200
    assert api.status_code == 200 and api.json() == {"data": []}
    assert health.status_code == 200
