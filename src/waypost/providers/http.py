"""The shared outbound HTTP client: one aiohttp session (connection pool) per app, with
timeouts, TLS choice, the outbound URL guard and error mapping into the error tree at this single
boundary."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import orjson
from yarl import URL

from waypost.core.errors import (
    BadRequest,
    GatewayError,
    StreamInterrupted,
    UpstreamError,
    UpstreamInvalid,
    UpstreamTimeout,
    from_upstream_status,
)
from waypost.observability.tracing_context import add_outbound
from waypost.providers.base import Deployment
from waypost.providers.credentials import credentials_of, scrub
from waypost.providers.outbound import OutboundRules
from waypost.security.urlguard import BlockedAddress, OutboundPolicy
from waypost.settings import Timeouts

MAX_REMEMBERED_URLS = 4096  # URLs known to pass the URL check (addresses are checked at connect time)
MAX_JSON_BYTES = 1024 * 1024  # get_json/post_form: small documents (OIDC discovery, keys, tokens)
# A non-streamed answer (chat, embeddings, token counts) larger than this is refused: it bounds
# what a broken upstream costs. Chat answers are far smaller; 2,048 embeddings of 3,072 dimensions
# take about 34 MB as base64 (what OpenAI clients ask for) but about 120 MB as JSON floats.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024  # of an error answer: its message is all we use

T = TypeVar("T")


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


def blocked_target(what: str, reason: object, provider: str | None = None) -> UpstreamError:
    """The guard refused the target: a configuration problem, so not worth retrying."""
    err = UpstreamError(f"{what} is not an allowed target: {reason}", provider=provider)
    err.retryable = False
    return err


def json_error_message(data: Any, body: bytes) -> str:
    """An error answer's message, including OAuth's ``error`` / ``error_description`` pair."""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        code = data["error"][:100]
        description = data.get("error_description")
        return f"{code}: {description[:500]}" if isinstance(description, str) and description else code
    return upstream_message(body)


class HttpClient:
    """Owns the connection pool. Created and closed in the app's lifespan.

    With a ``policy`` every URL is checked before the request and every resolved address at connect
    time (``OutboundPolicy``); without one (tests, tools) nothing is guarded.
    """

    def __init__(self, policy: OutboundPolicy | None = None, outbound: OutboundRules | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.policy = policy
        # Header rules and body transformations (docs/policy.md): the global ones; a model's own
        # come with its deployment. Providers apply the body ones as they encode a chat request.
        self.outbound = outbound or OutboundRules()
        self._allowed: set[str] = set()  # URLs that passed the policy's URL check
        # Tracing is on: upstream calls carry the current attempt's ``traceparent`` (set by the app).
        self.trace_headers = False

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0,
                ttl_dns_cache=60,
                enable_cleanup_closed=True,
                resolver=self.policy.resolver() if self.policy is not None else None,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # One session serves every caller: a cookie an upstream sets for one caller's
                # request must not go out with the next caller's (nor the gateway keep state).
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _guard(self, url: str | URL, what: str, provider: str | None = None) -> None:
        if self.policy is None:
            return
        key = str(url)
        if key in self._allowed:
            return  # the policy is fixed, so a URL that passed once passes again (the hot path)
        try:
            self.policy.check_url(url)
        except BadRequest as exc:
            raise blocked_target(what, exc.message, provider) from None
        if len(self._allowed) < MAX_REMEMBERED_URLS:
            self._allowed.add(key)

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
        secrets: Iterable[str | None] = (),
        header_rules: bool = True,
    ) -> AsyncIterator[UpstreamResponse]:
        """POST and yield the response once its headers arrived with a 2xx status.

        One deadline (``timeouts.total``) covers the whole call: the wait for headers (itself
        bounded by ``first_byte``) and reading the body or stream. Errors (connect, timeouts,
        non-2xx) are raised as ``GatewayError``; ``errors`` maps a non-2xx answer (status, headers,
        body) for providers whose error type is not in the status alone. A ``URL`` built with
        ``encoded=True`` is sent exactly as given (signed paths must not be re-quoted). Redirects
        are never followed: an upstream has no business sending us elsewhere.

        Every ``GatewayError`` raised here or inside the ``async with`` block (a stream's error
        event, an answer that cannot be decoded) leaves with the deployment's credentials, and
        ``secrets`` resolved for this call, scrubbed from its message (``credentials``): decode
        the answer inside the block.

        The header rules (``outbound``) apply to ``headers`` here, for every upstream call;
        ``header_rules=False``: the caller applied them already (Bedrock, before signing). With
        tracing on, the attempt's ``traceparent`` is added after them.
        """
        if header_rules:
            headers = self.outbound.headers(dep, headers)
        if self.trace_headers:  # after the rules, which cannot drop or forge it; unsigned (Bedrock)
            headers = add_outbound(headers)
        timeouts = dep.settings.timeouts
        deadline = asyncio.get_running_loop().time() + timeouts.total
        try:
            resp = await self._send(url, body, headers, dep, provider)
            try:
                if resp.status >= 300:
                    raise await _refusal(resp, dep, provider, errors)
                upstream = UpstreamResponse(resp, deadline, timeouts, provider)
                try:
                    yield upstream
                finally:
                    upstream.close()
            finally:
                # A fully read response returns its connection to the pool; anything else (a
                # client disconnect, an error mid-stream) closes it so the upstream stops at once.
                if resp.content.at_eof():
                    resp.release()
                else:
                    resp.close()
        except GatewayError as err:
            scrub(err, credentials_of(dep.settings, secrets))
            raise

    async def post_json(
        self,
        url: str | URL,
        body: dict[str, Any],
        headers: dict[str, str],
        decode: Callable[[dict[str, Any]], T],
        *,
        dep: Deployment,
        provider: str,
        errors: Callable[[int, Mapping[str, str], bytes], GatewayError] | None = None,
    ) -> tuple[T, bytes]:
        """POST ``body`` as JSON and ``decode`` the JSON object answered (a non-streamed call);
        return that and the answer's bytes (for a same-format relay). ``decode`` runs inside the
        call, so what it raises (an error object in a 2xx answer, a malformed one) is scrubbed of
        credentials like the call's own errors."""
        async with self.post(
            url, orjson.dumps(body), headers, dep=dep, provider=provider, errors=errors
        ) as resp:
            data = await resp.read()
            return decode(json_body(data, provider)), data

    async def _send(
        self, url: str | URL, body: bytes, headers: dict[str, str], dep: Deployment, provider: str
    ) -> aiohttp.ClientResponse:
        """Send the request and wait for the response headers (``first_byte``)."""
        timeouts, model = dep.settings.timeouts, dep.name
        if self.policy is not None and str(url) not in self._allowed:
            self._guard(url, f"the {provider} upstream for model {model!r}", provider)
        first_byte = min(timeouts.first_byte, timeouts.total)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, connect=timeouts.connect)
        try:
            async with asyncio.timeout(first_byte):
                return await self.session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    ssl=dep.settings.verify_tls,
                    allow_redirects=False,
                )
        except TimeoutError as exc:
            which = "first_byte" if first_byte == timeouts.first_byte else "total"
            raise UpstreamTimeout(
                f"{provider} upstream did not answer within {first_byte:g}s (timeouts.{which})",
                provider=provider,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                what = f"the {provider} upstream for model {model!r}"
                raise blocked_target(what, exc.os_error, provider) from None
            raise UpstreamError(
                f"could not connect to the {provider} upstream for model {model!r}: {exc.os_error.strerror or exc}",
                provider=provider,
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{provider} upstream request failed: {type(exc).__name__}", provider=provider
            ) from None

    async def get_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        what: str = "the server",
    ) -> Any:
        """GET a small JSON document; an error status raises ``UpstreamError`` (see ``request_json``)."""
        status, answer, body = await self._json_call("GET", url, None, headers, timeout, what)
        return _successful(status, answer, body, what)

    async def post_form(
        self,
        url: str,
        data: Mapping[str, str],
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        what: str = "the server",
    ) -> Any:
        """POST ``application/x-www-form-urlencoded``; the JSON answer as ``get_json``."""
        status, answer, body = await self._json_call("POST", url, dict(data), headers, timeout, what)
        return _successful(status, answer, body, what)

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        what: str = "the server",
    ) -> tuple[int, Any]:
        """(status, parsed JSON or None) of a small JSON exchange, whatever the status.

        Guarded by the policy, never redirected, one ``timeout`` for everything. Refused targets,
        connection failures, redirects, bodies larger than ``MAX_JSON_BYTES`` and 2xx bodies that are
        not JSON raise ``UpstreamError`` (``UpstreamTimeout`` on time) whose message starts with ``what``.
        ``data`` is sent form-encoded, ``json`` as a JSON document (a webhook's).
        """
        body: dict[str, str] | bytes | None = dict(data) if data is not None else None
        if json is not None:
            body = orjson.dumps(json)
            headers = {"content-type": "application/json", **(headers or {})}
        status, answer, _ = await self._json_call(method, url, body, headers, timeout, what)
        return status, answer

    async def _json_call(
        self,
        method: str,
        url: str,
        data: dict[str, str] | bytes | None,
        headers: Mapping[str, str] | None,
        timeout: float,
        what: str,
    ) -> tuple[int, Any, bytes]:
        self._guard(url, what)
        sent = {"accept": "application/json", **(headers or {})}
        client_timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout)
        try:
            async with (
                asyncio.timeout(timeout),
                self.session.request(
                    method, url, data=data, headers=sent, timeout=client_timeout, allow_redirects=False
                ) as resp,
            ):
                status = resp.status
                body = bytearray()
                async for chunk in resp.content.iter_any():
                    body += chunk
                    if len(body) > MAX_JSON_BYTES:
                        raise UpstreamError(
                            f"{what} answered more than {MAX_JSON_BYTES} bytes", upstream_status=status
                        )
        except TimeoutError:
            raise UpstreamTimeout(f"{what} did not answer within {timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                raise blocked_target(what, exc.os_error) from None
            raise UpstreamError(f"could not connect to {what}: {exc.os_error.strerror or exc}") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{what} request failed: {type(exc).__name__}") from None
        if 300 <= status < 400:
            raise UpstreamError(
                f"{what} answered a redirect ({status}), which is not followed", upstream_status=status
            )
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            if status < 300:
                raise UpstreamError(
                    f"{what} answered a body that is not JSON", upstream_status=status
                ) from None
            answer = None
        return status, answer, bytes(body)


def _successful(status: int, answer: Any, body: bytes, what: str) -> Any:
    if status >= 400:
        raise UpstreamError(
            f"{what} answered {status}: {json_error_message(answer, body)}", upstream_status=status
        )
    return answer


async def _refusal(
    resp: aiohttp.ClientResponse,
    dep: Deployment,
    provider: str,
    errors: Callable[[int, Mapping[str, str], bytes], GatewayError] | None,
) -> GatewayError:
    """The error for a non-2xx answer, from the start of its body."""
    try:
        async with asyncio.timeout(dep.settings.timeouts.idle):
            data = await _read_at_most(resp.content, MAX_ERROR_BYTES)
    except (TimeoutError, aiohttp.ClientError):
        data = b""
    if 300 <= resp.status < 400:
        return UpstreamError(
            f"{provider} upstream answered a redirect ({resp.status}), which is not followed",
            provider=provider,
            upstream_status=resp.status,
        )
    if errors is not None:
        return errors(resp.status, resp.headers, data)
    return status_error(provider, dep.name, resp.status, resp.headers, data)


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of a body; the rest is left unread (the connection is then closed)."""
    parts: list[bytes] = []
    size = 0
    while size < limit and (chunk := await content.read(limit - size)):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


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
        """The whole body of a non-streamed answer; one larger than ``MAX_RESPONSE_BYTES`` is an
        ``UpstreamInvalid``, refused as soon as its ``Content-Length`` (or its size) says so."""
        length = self._resp.content_length
        if length is not None and length > MAX_RESPONSE_BYTES:
            raise self._too_large()
        try:
            async with asyncio.timeout_at(self._deadline):
                if length is not None:  # aiohttp reads exactly that many bytes
                    return await self._resp.read()
                data = await _read_at_most(self._content, MAX_RESPONSE_BYTES + 1)
        except TimeoutError as exc:
            raise self._total_exceeded() from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{self._provider} upstream connection failed while reading the response: {type(exc).__name__}",
                provider=self._provider,
            ) from None
        if len(data) > MAX_RESPONSE_BYTES:
            raise self._too_large()
        return data

    def _too_large(self) -> UpstreamInvalid:
        return UpstreamInvalid(
            f"{self._provider} upstream sent an invalid response: a body larger than the limit of "
            f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MiB",
            provider=self._provider,
        )

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


def json_object(data: bytes, what: str = "a frame") -> dict[str, Any]:
    """The JSON object in ``data``, an upstream's body or stream frame; ``ValueError`` saying what
    ``what`` was instead (not JSON, not UTF-8, another JSON value). ``read_stream`` reports it as
    an ``UpstreamInvalid``, as ``json_body`` does."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{what} that is not JSON ({exc})") from None
    if type(obj) is not dict:
        raise ValueError(f"{what} that is JSON but not an object ({type(obj).__name__})")
    return obj


def json_body(data: bytes, provider: str) -> dict[str, Any]:
    """A non-streamed answer's JSON object (every API here answers one); anything else is
    ``UpstreamInvalid``."""
    try:
        return json_object(data, "a body")
    except ValueError as exc:
        raise UpstreamInvalid(
            f"{provider} upstream sent an invalid response: {exc}", provider=provider
        ) from None
