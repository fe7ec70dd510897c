"""The shared outbound HTTP client: one aiohttp session (connection pool) per app, with
timeouts, TLS choice and error mapping into the error tree at this single boundary."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from yarl import URL

from waypost.core.errors import (
    GatewayError,
    StreamInterrupted,
    UpstreamError,
    UpstreamTimeout,
    from_upstream_status,
)
from waypost.providers.base import Deployment
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
        url: str | URL,
        body: bytes,
        headers: dict[str, str],
        *,
        dep: Deployment,
        provider: str,
        errors: Callable[[int, Mapping[str, str], bytes], GatewayError] | None = None,
    ) -> AsyncIterator[UpstreamResponse]:
        """POST and yield the response once its headers arrived with a 2xx status.

        One deadline (``timeouts.total``) covers the whole call: the wait for headers (itself
        bounded by ``first_byte``) and reading the body or stream. Errors (connect, timeouts,
        non-2xx) are raised as ``GatewayError``; ``errors`` maps a non-2xx answer (status, headers,
        body) for providers whose error type is not in the status alone. A ``URL`` built with
        ``encoded=True`` is sent exactly as given (signed paths must not be re-quoted). Redirects
        are never followed: an upstream has no business sending us elsewhere.
        """
        timeouts, verify_tls, model = dep.settings.timeouts, dep.settings.verify_tls, dep.name
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        first_byte = min(timeouts.first_byte, timeouts.total)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, connect=timeouts.connect)
        try:
            async with asyncio.timeout(first_byte):
                resp = await self.session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    ssl=verify_tls,
                    allow_redirects=False,
                )
        except TimeoutError as exc:
            which = "first_byte" if first_byte == timeouts.first_byte else "total"
            raise UpstreamTimeout(
                f"{provider} upstream did not answer within {first_byte:g}s (timeouts.{which})",
                provider=provider,
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
                if errors is not None:
                    raise errors(resp.status, resp.headers, data)
                raise status_error(provider, model, resp.status, resp.headers, data)
            upstream = UpstreamResponse(resp, deadline, timeouts, provider)
            try:
                yield upstream
            finally:
                upstream.close()
        finally:
            # A fully read response returns its connection to the pool; anything else (a client
            # disconnect, an error mid-stream) closes it so the upstream stops generating at once.
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()


class UpstreamResponse:
    """A 2xx upstream response, read under the call's single deadline."""

    __slots__ = ("_content", "_deadline", "_deadline_timer", "_expired", "_provider", "_resp", "_timeouts")

    def __init__(
        self, resp: aiohttp.ClientResponse, deadline: float, timeouts: Timeouts, provider: str
    ) -> None:
        self._resp = resp
        self._content = resp.content
        self._deadline = deadline
        self._timeouts = timeouts
        self._provider = provider
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._expired = False

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers (case-insensitive)."""
        return self._resp.headers

    def _total_exceeded(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"{self._provider} upstream call exceeded the total timeout of {self._timeouts.total:g}s",
            provider=self._provider,
        )

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout_at(self._deadline):
                return await self._resp.read()
        except TimeoutError as exc:
            raise self._total_exceeded() from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{self._provider} upstream connection failed while reading the response: {type(exc).__name__}",
                provider=self._provider,
            ) from None

    async def read_chunk(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` at its end. A silence longer than
        ``idle``, the total deadline, or a broken connection raises.

        Both limits are armed once per stream, not per chunk: ``idle`` is aiohttp's own socket
        read timeout (re-armed by every packet; before the headers ``first_byte`` applied), and
        one timer fails the body reader when the total deadline passes.
        """
        if self._deadline_timer is None:
            self._arm()
        try:
            return await self._content.readany()
        except TimeoutError as exc:  # aiohttp's read timeout is a TimeoutError too
            if self._expired:
                raise self._total_exceeded() from exc
            raise UpstreamTimeout(
                f"{self._provider} upstream stream stalled: no data for {self._timeouts.idle:g}s",
                provider=self._provider,
            ) from exc
        except aiohttp.ClientError as exc:
            raise StreamInterrupted(
                f"{self._provider} upstream connection broke mid-stream: {type(exc).__name__}",
                provider=self._provider,
            ) from None

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._deadline_timer = loop.call_at(self._deadline, self._expire)
        connection = self._resp.connection
        if connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = self._timeouts.idle
            connection.protocol.start_timeout()

    def _expire(self) -> None:
        self._expired = True
        self._content.set_exception(TimeoutError("total timeout"))

    def close(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()


def json_body(data: bytes, provider: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(
            f"{provider} upstream returned a body that is not JSON", provider=provider
        ) from None
