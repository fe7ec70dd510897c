"""A deployment's credentials, and their removal from upstream text.

Some providers repeat what they were sent in their error messages ("invalid API key sk-..."), and
an error message goes to the client and to the log. ``HttpClient.post`` passes every error raised
during an upstream call, whatever its status and whether it came before or during a stream,
through ``scrub`` with the credentials of the deployment it called: one mechanism at that
boundary, so no provider has to remember it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

from waypost.core.errors import GatewayError

if TYPE_CHECKING:  # settings uses CREDENTIAL_NAME for its own error messages
    from waypost.settings import ModelSettings

REDACTED = "[redacted]"
# Shorter values are placeholders ("none", "ollama"); replacing them would mangle ordinary words.
MIN_SECRET_LENGTH = 8
AWS_CREDENTIALS = ("access_key_id", "secret_access_key", "session_token")
# Names whose values are credentials: of headers (Authorization, x-api-key, api-key, x-goog-api-key,
# Ocp-Apim-Subscription-Key, cookies...) and of settings (api_key, jwt_secret, client_secret...).
# The one rule for what is scrubbed, stored encrypted, counted by ``auto`` and kept out of messages.
CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|passw|cookie|signature|credential", re.I)


def credentials_of(settings: ModelSettings, extra: Iterable[str | None] = ()) -> list[str]:
    """Every secret value the deployment's settings hold (``api_key``, the AWS access key id,
    secret and session token, credential-like ``headers`` values, the values in a configured
    URL's query and its password), plus ``extra`` (credentials resolved at call time); longest
    first, so that a secret containing another is replaced whole."""
    values: list[str | None] = [settings.api_key, *extra]
    aws = settings.aws
    if aws is not None:
        values += [getattr(aws, name) for name in AWS_CREDENTIALS]
    for name, value in settings.headers.items():
        if CREDENTIAL_NAME.search(name):
            values.append(value)
            # "Bearer xyz": the token alone may come back.
            values.append(value.strip().partition(" ")[2].strip())
    for url in (settings.base_url, aws.endpoint_url if aws is not None else None):
        if url:
            parts = urlsplit(url)
            values.append(parts.password)
            values += [item for _, item in parse_qsl(parts.query)]
    found: set[str] = set()
    for secret in values:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            found.add(secret)
            found.add(quote(secret, safe=""))  # as it would appear inside a URL
    return sorted(found, key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``[redacted]``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub(err: GatewayError, secrets: Iterable[str]) -> GatewayError:
    """``err`` with no secret left in its message (changed in place, and returned)."""
    text = scrub_text(err.message, secrets)
    if text != err.message:
        err.message = text
        err.args = (text,)
    return err
