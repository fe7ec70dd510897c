"""The HTTP client the CLI uses to reach a running gateway, and the stored login per gateway URL."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:4000"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)

UrlOption = typer.Option(
    DEFAULT_URL, "--url", envvar="WAYPOST_URL", help="Gateway base URL.", show_envvar=True
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` to stderr and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        fail(f"--url must start with http:// or https://, got {url!r}", 2)
    return url


def credentials_path() -> Path:
    """``$WAYPOST_CREDENTIALS``, else ``$XDG_CONFIG_HOME/waypost/credentials.json`` (~/.config by default)."""
    if os.environ.get("WAYPOST_CREDENTIALS"):
        return Path(os.environ["WAYPOST_CREDENTIALS"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "waypost" / "credentials.json"


class CredentialStore:
    """Access and refresh tokens per gateway URL in one JSON file only its owner can read."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or credentials_path()

    def _read(self) -> list[dict[str, str]]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            fail(f"cannot read the credentials file {self.path}: {exc}")
        entries = doc.get("gateways") if isinstance(doc, dict) else None
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def _write(self, entries: list[dict[str, str]]) -> None:
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
        # Written to a private temporary file and renamed, so the tokens are never readable by
        # others, not even for a moment, and a crash never leaves half a file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".credentials-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"gateways": entries}, handle, indent=2)
                handle.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, url: str) -> dict[str, str] | None:
        return next((e for e in self._read() if e.get("url") == url), None)

    def put(self, url: str, access_token: str, refresh_token: str) -> None:
        entries = [e for e in self._read() if e.get("url") != url]
        entries.append({"url": url, "access_token": access_token, "refresh_token": refresh_token})
        self._write(entries)

    def remove(self, url: str) -> bool:
        entries = self._read()
        kept = [e for e in entries if e.get("url") != url]
        if len(kept) == len(entries):
            return False
        self._write(kept)
        return True


class CallFailed(Exception):
    """A call to the gateway did not succeed; ``message`` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CallFailed):
    """The gateway answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Unreachable(CallFailed):
    """No answer: connection refused, a timeout, a broken connection."""


def error_message(response: httpx.Response) -> str:
    """The server's own words: the OpenAI-style ``error.message``, else whatever the body says."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if "detail" in body:
            return str(body["detail"])
    text = response.text.strip()
    return text[:300] if text else f"HTTP {response.status_code} {response.reason_phrase}"


class GatewayClient:
    """Calls the control-plane API; turns every failure into ``error: ...`` and exit status 1."""

    def __init__(self, url: str, store: CredentialStore | None = None) -> None:
        from waypost import __version__

        self.url = normalise_url(url)
        self.store = store or CredentialStore()
        self.api_token = os.environ.get("WAYPOST_TOKEN") or None
        self.http = httpx.Client(
            base_url=self.url,
            timeout=TIMEOUT,
            headers={"user-agent": f"waypost-cli/{__version__}"},
            follow_redirects=False,
        )

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.http.close()

    # -- requests ------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send with the stored login (refreshing it once when it has expired) or ``$WAYPOST_TOKEN``."""
        try:
            return self._request(method, path, body, params)
        except CallFailed as exc:
            fail(exc.message)

    def request_or_none(self, method: str, path: str) -> Any:
        """Like ``request`` but ``None`` on an API error (for optional extra detail)."""
        try:
            return self._request(method, path, None, None)
        except ApiError:
            return None
        except Unreachable as exc:
            fail(exc.message)

    def user_emails(self) -> dict[Any, str]:
        """User ids to e-mails when the caller may list users; else empty (ids are shown instead)."""
        answer = self.request_or_none("GET", "/admin/users")
        rows = answer.get("data", []) if isinstance(answer, dict) else []
        return {u.get("id"): str(u.get("email")) for u in rows if isinstance(u, dict)}

    def anonymous(self, method: str, path: str, body: Any = None) -> Any:
        """Send without credentials (login, refresh); raise ``CallFailed`` when that fails."""
        return self._decode(self._send(method, path, body, None, None))

    def _request(self, method: str, path: str, body: Any, params: dict[str, Any] | None) -> Any:
        if self.api_token:
            response = self._send(method, path, body, params, self.api_token)
            if response.status_code == 401:
                raise ApiError(401, f"{error_message(response)} (the token in WAYPOST_TOKEN)")
            return self._decode(response)
        login = self.store.get(self.url)
        if login is None:
            response = self._send(method, path, body, params, None)
            if response.status_code == 401:
                raise ApiError(401, f"not logged in to {self.url}: run `waypost login` or set WAYPOST_TOKEN")
            return self._decode(response)
        response = self._send(method, path, body, params, login.get("access_token"))
        if response.status_code == 401 and login.get("refresh_token"):
            access = self._refresh(login["refresh_token"])
            response = self._send(method, path, body, params, access)
        return self._decode(response)

    def _refresh(self, refresh_token: str) -> str:
        try:
            tokens = self.anonymous("POST", "/auth/refresh", {"refresh_token": refresh_token})
        except ApiError as exc:
            if exc.status in (400, 401):
                # The refresh token is spent or revoked: the stored login is of no further use.
                self.store.remove(self.url)
                raise ApiError(
                    401, f"your session on {self.url} has expired: run `waypost login` again"
                ) from None
            raise
        self.store.put(self.url, tokens["access_token"], tokens["refresh_token"])
        return str(tokens["access_token"])

    def _send(
        self, method: str, path: str, body: Any, params: dict[str, Any] | None, token: str | None
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        try:
            return self.http.request(method, path, json=body, params=params, headers=headers)
        except httpx.ConnectError:
            raise Unreachable(
                f"cannot connect to the gateway at {self.url}: is it running? (set --url or WAYPOST_URL)"
            ) from None
        except httpx.TimeoutException:
            raise Unreachable(f"the gateway at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise Unreachable(f"request to {self.url}{path} failed: {exc}") from None

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise ApiError(response.status_code, error_message(response))
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code, f"the gateway answered {response.request.url.path} with non-JSON"
            ) from None


def connect(url: str) -> GatewayClient:
    return GatewayClient(url)


def fetch(url: str, path: str) -> Any:
    """GET ``path`` from the gateway at ``url`` over a connection of its own."""
    with connect(url) as api:
        return api.get(path)


def send(url: str, method: str, path: str, body: Any = None) -> Any:
    """Send one ``method`` request (with a JSON ``body``) to the gateway at ``url``."""
    with connect(url) as api:
        return api.request(method, path, body)


def read_stdin_secret(what: str) -> str:
    """One line from stdin without its line ending; refuses an empty value."""
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        fail(f"no {what} on standard input")
    return value


def prompt_secret(what: str, *, confirm: bool) -> str:
    """Ask for a value without echoing it (twice when ``confirm``)."""
    value: str = typer.prompt(what.capitalize(), hide_input=True, confirmation_prompt=confirm)
    if not value:
        fail(f"the {what} cannot be empty")
    return value


def ref(value: str | int) -> str:
    """A path segment naming a user, group, model, token or secret."""
    return quote(str(value), safe="@")


def expiry(expires_in_days: int | None, expires_at: str | None) -> dict[str, Any]:
    """The ``expires_in_days`` / ``expires_at`` fields of a token request (UTC, ISO 8601)."""
    if expires_in_days is not None and expires_at is not None:
        fail("give --expires-in-days or --expires-at, not both", 2)
    if expires_in_days is not None:
        return {"expires_in_days": expires_in_days}
    if expires_at is None:
        return {}
    try:
        moment = datetime.fromisoformat(expires_at)
    except ValueError:
        fail(f"--expires-at: not an ISO date or date-time: {expires_at!r}", 2)
    if moment.tzinfo is None:  # a local time, as people type it
        moment = moment.astimezone()
    return {"expires_at": moment.astimezone(UTC).isoformat()}
