"""The web UI at ``/ui``: the built single-page app (``src/waypost/ui/dist``, made by ``make ui``
from ``ui/``), served from the package so no Node and no other server is needed.

Every answer carries a strict Content-Security-Policy (the app has no inline script or style and
calls only this gateway). Hashed assets (``assets/index-<hash>.js``) are cached for a year;
``index.html`` is revalidated every time, so a new release is picked up at the next load. Any
other path under ``/ui/`` without a file extension is a client-side route and gets ``index.html``;
a missing file is a 404. Asset URLs in the page are relative, and each page gets a ``<base>`` that
leads back to ``/ui/`` from its own depth, so the UI works under any reverse-proxy prefix.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from starlette.types import Receive, Scope, Send

from waypost.api.asgi_io import send_body
from waypost.api.errors import error_parts
from waypost.api.formats import OPENAI
from waypost.core.errors import MethodNotAllowed, NotFound

PATH = "/ui"
DIST = Path(__file__).resolve().parent.parent / "ui" / "dist"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"  # file names carry their content's hash
REVALIDATE = "no-cache"

# A file name the build makes: no directories, no dot files (so no traversal either).
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}


def is_ui_path(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


class WebUI:
    """Serves ``dist``; files are read on first use and kept (the whole UI is tens of kilobytes)."""

    def __init__(self, dist: Path = DIST) -> None:
        self.dist = dist
        self._files: dict[str, bytes | None] = {}

    def _read(self, name: str) -> bytes | None:
        if name not in self._files:
            path = self.dist / name
            self._files[name] = path.read_bytes() if path.is_file() else None
        return self._files[name]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            err = MethodNotAllowed(f"{scope['path']} takes GET or HEAD, not {method}.", allow=("GET", "HEAD"))
            await self._error(send, err, {"allow": "GET, HEAD"})
            return
        rest = scope["path"][len(PATH) :]
        if rest == "":
            # /ui -> /ui/, relative so that a proxy's prefix stays in front of it.
            query = scope.get("query_string", b"").decode("latin-1")
            location = "ui/" + (f"?{query}" if query else "")
            await send_body(send, 308, b"", b"text/plain", {**SECURITY_HEADERS, "location": location})
            return
        rest = rest[1:]
        if rest.startswith("assets/"):
            await self._file(send, rest, IMMUTABLE)
        elif "." in rest.rsplit("/", 1)[-1]:
            await self._file(send, rest, REVALIDATE)  # build-info.json; client routes have no dots
        else:
            await self._index(send, rest)

    async def _file(self, send: Send, name: str, cache: str) -> None:
        parts = name.split("/")
        body = self._read(name) if all(_FILE.fullmatch(p) for p in parts) and name != "index.html" else None
        if body is None:
            await self._error(send, NotFound(f"No file {PATH}/{name} in the web UI."))
            return
        suffix = Path(name).suffix
        kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        await self._send(send, body, kind, cache)

    async def _index(self, send: Send, route: str) -> None:
        page = self._read("index.html")
        if page is None:
            await self._error(
                send, NotFound("The web UI is not built into this installation (run `make ui`).")
            )
            return
        # The page's assets are relative to /ui/: from /ui/admin/rules that is "../".
        base = "../" * route.count("/") or "./"
        page = page.replace(b"<head>", b'<head>\n    <base href="' + base.encode() + b'" />', 1)
        await self._send(send, page, _TYPES[".html"], REVALIDATE)

    async def _send(self, send: Send, body: bytes, kind: str, cache: str) -> None:
        # HEAD: the server sends the headers (with the length) and drops the body.
        await send_body(send, 200, body, kind.encode(), {**SECURITY_HEADERS, "cache-control": cache})

    async def _error(
        self, send: Send, err: NotFound | MethodNotAllowed, extra: dict[str, str] | None = None
    ) -> None:
        status, body, headers = error_parts(OPENAI, err)
        await send_body(
            send, status, body, b"application/json", {**SECURITY_HEADERS, **headers, **(extra or {})}
        )
