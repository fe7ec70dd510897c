"""The shared outbound HTTP client: one aiohttp session (connection pool) per app, with
timeouts, TLS choice and error mapping into the error tree at this single boundary."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from waypost.core.errors import (
    GatewayError,
    StreamInterrupted,
    UpstreamError,
    UpstreamTimeout,
    from_upstream_status,
)
from waypost.settings import Timeouts


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def upstream_message(body: bytes) -> str:
    """The provider's own error message, from OpenAI-, Anthropic- or Bedrock-shaped bodies."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:300].decode("utf-8", "replace").strip()
        return text or "no error message"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:1000]
        if isinstance(err, str):
            return err[:1000]
        if isinstance(data.get("message"), str):
            return str(data["message"])[:1000]
    return "no error message"


def status_error(
    provider: str, model: str, status: int, headers: Mapping[str, str], body: bytes
) -> GatewayError:
    """Map an upstream error response. Credential failures never echo the upstream text."""
    retry_after = parse_retry_after(headers)
    if status in (401, 403):
        message = f"the {provider} provider refused the gateway's credentials for model {model!r}"
    else:
        message = f"{provider} upstream returned {status}: {upstream_message(body)}"
    return from_upstream_status(status, message, provider=provider, retry_after=retry_after)


class HttpClient:
    """Owns the connection pool. Created and closed in the app's lifespan."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @asynccontextmanager
    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        timeouts: Timeouts,
        verify_tls: bool,
        provider: str,
        model: str,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST and yield the response once its headers arrived with a 2xx status.

        Errors (connect, first-byte timeout, non-2xx) are raised as ``GatewayError``.
        Redirects are never followed: an upstream has no business sending us elsewhere.
        """
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, connect=timeouts.connect)
        try:
            async with asyncio.timeout(timeouts.first_byte):
                resp = await self.session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    ssl=verify_tls,
                    allow_redirects=False,
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{provider} upstream did not answer within {timeouts.first_byte:g}s", provider=provider
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(
                f"could not connect to the {provider} upstream for model {model!r}: {exc.os_error.strerror or exc}",
                provider=provider,
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{provider} upstream request failed: {type(exc).__name__}", provider=provider
            ) from None
        try:
            if resp.status >= 300:
                try:
                    async with asyncio.timeout(timeouts.idle):
                        data = await resp.read()
                except (TimeoutError, aiohttp.ClientError):
                    data = b""
                if 300 <= resp.status < 400:
                    raise UpstreamError(
                        f"{provider} upstream answered a redirect ({resp.status}), which is not followed",
                        provider=provider,
                        upstream_status=resp.status,
                    )
                raise status_error(provider, model, resp.status, resp.headers, data)
            yield resp
        finally:
            # A fully read response returns its connection to the pool; anything else (a client
            # disconnect, an error mid-stream) closes it so the upstream stops generating at once.
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()

    @staticmethod
    async def read_body(resp: aiohttp.ClientResponse, timeouts: Timeouts, provider: str) -> bytes:
        try:
            async with asyncio.timeout(timeouts.total):
                return await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{provider} upstream response exceeded {timeouts.total:g}s", provider=provider
            ) from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{provider} upstream connection failed while reading the response: {type(exc).__name__}",
                provider=provider,
            ) from None

    @staticmethod
    async def iter_chunks(
        resp: aiohttp.ClientResponse, timeouts: Timeouts, provider: str
    ) -> AsyncIterator[bytes]:
        """Chunks as they arrive; a silence longer than ``idle`` or a broken connection raises."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        content = resp.content
        while True:
            try:
                async with asyncio.timeout(min(timeouts.idle, max(0.0, deadline - loop.time()))):
                    chunk = await content.readany()
            except TimeoutError as exc:
                if loop.time() >= deadline:
                    raise UpstreamTimeout(
                        f"{provider} upstream stream exceeded the total timeout of {timeouts.total:g}s",
                        provider=provider,
                    ) from exc
                raise UpstreamTimeout(
                    f"{provider} upstream stream stalled: no data for {timeouts.idle:g}s", provider=provider
                ) from exc
            except aiohttp.ClientError as exc:
                raise StreamInterrupted(
                    f"{provider} upstream connection broke mid-stream: {type(exc).__name__}",
                    provider=provider,
                ) from None
            if not chunk:
                return
            yield chunk


def json_body(data: bytes, provider: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"{provider} upstream returned a body that is not JSON", provider=provider
        ) from None
