"""The bare pass-through proxy: the floor of what any Python (aiohttp) proxy costs on this machine.

An aiohttp server and one shared aiohttp client session. It swaps the caller's key for the
upstream key, relays the body, and streams the answer back chunk by chunk as it arrives. No
parsing, no auth, no metering: anything a real gateway does costs more than this.

Run: python -m bench.passthrough --port 9001 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
_UPSTREAM: web.AppKey[str] = web.AppKey("upstream", str)
_UPSTREAM_KEY: web.AppKey[str] = web.AppKey("upstream_key", str)
_RELAYED_HEADERS = ("Content-Type", "Cache-Control")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def relay(request: web.Request) -> web.StreamResponse:
    """Forward one request upstream and relay the answer without looking inside it."""
    app = request.app
    body = await request.read()
    headers = {
        "Content-Type": request.headers.get("Content-Type", "application/json"),
        "Authorization": "Bearer " + app[_UPSTREAM_KEY],
    }
    url = app[_UPSTREAM] + request.rel_url.path_qs
    async with app[_SESSION].request(request.method, url, data=body, headers=headers) as upstream:
        relayed = {name: upstream.headers[name] for name in _RELAYED_HEADERS if name in upstream.headers}
        if upstream.content_length is not None:
            return web.Response(status=upstream.status, body=await upstream.read(), headers=relayed)
        response = web.StreamResponse(status=upstream.status, headers=relayed)
        await response.prepare(request)
        async for data in upstream.content.iter_any():
            await response.write(data)
        await response.write_eof()
        return response


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    # No pool limit: the load driver decides the concurrency, the proxy should not cap it.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        app[_SESSION] = session
        yield


def build_app(upstream: str, upstream_key: str) -> web.Application:
    app = web.Application()
    app[_UPSTREAM] = upstream.rstrip("/")
    app[_UPSTREAM_KEY] = upstream_key
    app.cleanup_ctx.append(_client_session)
    app.router.add_get("/health", health)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9000")
    parser.add_argument("--upstream-key", default="sk-mock")
    args = parser.parse_args()
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    web.run_app(
        build_app(args.upstream, args.upstream_key),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=loop_factory() if loop_factory else None,
    )


if __name__ == "__main__":
    main()
