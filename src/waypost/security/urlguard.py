"""The outbound URL guard: which upstream addresses the gateway may call (the SSRF defence).

Two layers, because either alone can be bypassed. ``check_url`` inspects the URL before any request
(scheme, userinfo and fragment tricks, IP literals in every spelling, metadata names, the allow-list);
the resolver from ``resolver()`` checks every address a DNS name resolves to at connect time, so a name
pointing at a private or metadata address (``localhost``, ``127.0.0.1.nip.io``, DNS rebinding) fails
before a socket is opened. Messages name the host, never the full URL (queries may carry keys).
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import re
import socket
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from waypost.core.errors import BadRequest

if TYPE_CHECKING:
    from waypost.settings import SecuritySettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance-metadata endpoints: credentials live there, so they are refused even when private
# targets are allowed. AWS (v4, v6, ECS task role), GCP, Azure wireserver, Alibaba, Oracle legacy.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
        "168.63.129.16",
        "100.100.100.200",
        "192.0.0.192",
    )
)
METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A host made only of numbers (decimal, 0-octal, 0x-hex) is an IPv4 address to inet_aton, which
# resolvers use: 2130706433, 0x7f.1, 017700000001 and 127.1 all mean 127.0.0.1.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, controls, backslash
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class BlockedAddress(OSError):
    """Raised by the guarded resolver: aiohttp wraps it in ``ClientConnectorError``."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)

    def __str__(self) -> str:
        return str(self.strerror)


def inet_aton_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Decode ``host`` the way ``inet_aton`` does (1 to 4 parts, decimal/octal/hex); None if invalid."""
    if not _NUMERIC_HOST.match(host) or host.count(".") > 3:
        return None
    parts: list[int] = []
    for part in host.split("."):
        try:
            if part.startswith("0x"):
                parts.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                parts.append(int(part, 8))
            else:
                parts.append(int(part))
        except ValueError:
            return None  # e.g. "08": not octal
    *head, last = parts
    if any(p > 255 for p in head) or last >= 256 ** (4 - len(head)):
        return None
    value = last
    for i, p in enumerate(head):
        value |= p << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address routes to: mapped, NAT64, 6to4, Teredo."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if any(ip in net for net in _NAT64):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def _private_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address, or None when it is one."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.IPv4Network("100.64.0.0/10"):
        return "carrier-grade NAT"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


class OutboundPolicy:
    """Where upstream calls may go: public addresses only (unless ``allow_private``), never cloud
    metadata, and, when ``allowed_patterns`` is not empty, only URLs one of them matches.

    A pattern is ``scheme://host[:port][/path]`` with shell wildcards in each part; the host part is
    matched on its own (a ``*`` there never reaches into the path), the path part against the URL's
    path or any leading run of its segments: ``https://api.openai.com/v1`` allows
    ``https://api.openai.com/v1/chat/completions``, ``https://*.openai.azure.com`` any path on any
    Azure resource.
    """

    def __init__(self, allow_private: bool = False, allowed_patterns: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed_patterns = list(allowed_patterns)
        self._patterns = [_parse_pattern(p) for p in self.allowed_patterns]

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> OutboundPolicy:
        return cls(security.allow_private_targets, security.allowed_base_urls)

    # -- addresses ---------------------------------------------------------------------------------

    def check_ip(self, ip: str | IPAddress) -> str | None:
        """Why this address may not be called (a phrase such as ``is loopback and ...``), or None."""
        return _ip_verdict(str(ip), self.allow_private)

    # -- URLs --------------------------------------------------------------------------------------

    def check_url(self, url: str | URL, *, field: str | None = None) -> None:
        """Raise ``BadRequest`` (naming ``field`` when given, and the host) unless ``url`` may be called."""
        reason = self._url_problem(url)
        if reason is not None:
            raise BadRequest(f"{field}: {reason}" if field else reason, param=field)

    def _url_problem(self, url: str | URL) -> str | None:
        text = str(url)
        scheme_match = _SCHEME.match(text)
        if not scheme_match or scheme_match.group(1).lower() not in ("http", "https"):
            return "only http:// and https:// URLs may be called"
        if _FORBIDDEN_CHARS.search(text):
            return "the URL contains whitespace, control characters or a backslash"
        if "#" in text:
            return "the URL may not contain a fragment ('#')"
        authority = re.split(r"[/?]", text[scheme_match.end() :], maxsplit=1)[0]
        if "@" in authority:
            return "the URL may not contain credentials ('user@host')"
        if "%" in authority:
            return "the URL's host may not be percent-encoded"
        try:
            parsed = url if isinstance(url, URL) else URL(text)
        except ValueError as exc:
            return f"the URL cannot be parsed ({exc})"
        host = (parsed.raw_host or "").lower().rstrip(".")
        if not host:
            return "the URL has no host"
        reason = _host_verdict(host, self.allow_private)
        if reason is not None:
            return reason
        if any(
            seg in (".", "..") or seg.lower() in ("%2e", "%2e%2e", ".%2e", "%2e.")
            for seg in parsed.raw_path.split("/")
        ):
            return "the URL path may not contain '.' or '..' segments"
        if self._patterns and not any(_matches(p, parsed, host) for p in self._patterns):
            where = f"{parsed.scheme}://{_display_host(host)}"
            if parsed.explicit_port:
                where += f":{parsed.port}"
            return f"{where} is not in security.allowed_base_urls"
        return None

    async def check_resolved(self, url: str | URL, *, field: str | None = None, timeout: float = 5.0) -> None:
        """``check_url``, then resolve the host now and check every address (model create/update).

        A name that does not resolve at this moment passes: the connect-time check still applies.
        """
        self.check_url(url, field=field)
        parsed = url if isinstance(url, URL) else URL(str(url))
        host = (parsed.raw_host or "").rstrip(".")
        if _literal_ip(host) is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, parsed.port or 443, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            return
        for info in infos:
            address = str(info[4][0])
            reason = self.check_ip(address)
            if reason is not None:
                message = f"address {address} of host {host!r} {reason}"
                raise BadRequest(f"{field}: {message}" if field else message, param=field)

    def resolver(self) -> AbstractResolver:
        """An aiohttp resolver that refuses a host when any address it resolves to is blocked."""
        return GuardedResolver(self)


class GuardedResolver(AbstractResolver):
    """aiohttp's default resolver plus the policy's address check on every result."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner: AbstractResolver | None = None  # built lazily: it needs the running loop

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.lower().rstrip(".")
        if name in METADATA_HOSTS:
            raise BlockedAddress(f"host {name!r} is a cloud metadata service (always blocked)")
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = result["host"]
            reason = self._policy.check_ip(address)
            if reason is not None:
                # One bad address refuses the host: a name that mixes public and private records is
                # exactly what a rebinding attack looks like.
                raise BlockedAddress(f"address {address} of host {name!r} {reason}")
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


# -- verdicts (cached: the same few hosts are checked on every request) ------------------------------


@functools.lru_cache(maxsize=4096)
def _ip_verdict(address: str, allow_private: bool) -> str | None:
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "is not a valid IP address"
    if ip in METADATA_ADDRESSES:
        return "is a cloud metadata address (always blocked)"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        for v4 in embedded:
            if v4 in METADATA_ADDRESSES:
                return f"embeds the cloud metadata address {v4} (always blocked)"
        if ip.ipv4_mapped is not None or any(ip in net for net in _NAT64):
            # These reach exactly the embedded IPv4 address: judge that one alone.
            kind = _private_kind(embedded[0])
            if kind is None or allow_private:
                return None
            return f"embeds {embedded[0]}, which {_private_phrase(kind)}"
        if not allow_private:
            for v4 in embedded:
                kind = _private_kind(v4)
                if kind is not None:
                    return f"embeds {v4}, which {_private_phrase(kind)}"
    if allow_private:
        return None
    kind = _private_kind(ip)
    return None if kind is None else _private_phrase(kind)


def _private_phrase(kind: str) -> str:
    what = "private" if kind == "private" else f"private ({kind})"
    return f"is {what} and security.allow_private_targets is off"


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _host_verdict(host: str, allow_private: bool) -> str | None:
    """Checks on the (lower-cased, trailing-dot-free) host itself; names are checked again once resolved."""
    if host in METADATA_HOSTS:
        return f"host {host!r} is a cloud metadata service (always blocked)"
    if "%" in host:
        return "IPv6 zone identifiers are not allowed in upstream URLs"
    ip = _literal_ip(host)
    if ip is None and _NUMERIC_HOST.match(host):
        decoded = inet_aton_ipv4(host)
        if decoded is None:
            return f"host {host!r} looks like a numeric address but is not a valid one"
        return (
            f"host {host!r} is a non-standard spelling of the IPv4 address {decoded}; write it as {decoded}"
        )
    if ip is None:
        if not re.fullmatch(r"[a-z0-9_.-]+", host):
            return f"host {host!r} contains characters not allowed in a host name"
        return None
    reason = _ip_verdict(str(ip), allow_private)
    return None if reason is None else f"address {_display_host(host)} {reason}"


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- allow-list ---------------------------------------------------------------------------------------


def _parse_pattern(pattern: str) -> tuple[str, str, str | None, str]:
    """``scheme://host[:port][/path]`` → (scheme, host, port or None, path) globs."""
    match = re.fullmatch(r"([A-Za-z*?\[\]+.-]+)://([^/:]+)(?::([0-9*?]+))?(/.*)?", pattern.strip())
    if not match:
        raise ValueError(
            f"security.allowed_base_urls: {pattern!r} is not a URL pattern (scheme://host[:port][/path])"
        )
    scheme, host, port, path = match.groups()
    return scheme.lower(), host.lower().rstrip("."), port, (path or "").rstrip("/")


def _matches(pattern: tuple[str, str, str | None, str], url: URL, host: str) -> bool:
    scheme, host_glob, port_glob, path_glob = pattern
    if not fnmatchcase(url.scheme, scheme) or not fnmatchcase(host, host_glob):
        return False
    port = url.port if url.port is not None else 0
    default = 443 if url.scheme == "https" else 80
    if port_glob is None:
        if port != default:
            return False
    elif not fnmatchcase(str(port), port_glob):
        return False
    if path_glob in ("", "/*", "*"):
        return True
    segments = url.path.rstrip("/").split("/")
    prefixes = ("/".join(segments[:i]) for i in range(1, len(segments) + 1))
    return any(fnmatchcase(prefix, path_glob) for prefix in prefixes)
