"""AWS credentials, region and SigV4 signing for Bedrock, with botocore doing the AWS parts.

Credentials come from the model's ``aws`` settings (access key id and secret, optionally a
session token), else from a named ``profile``, else from botocore's standard chain
(environment, shared config and credentials files, SSO, container and instance roles).
Resolving may read files or call AWS (STS, SSO, the instance metadata service), so it runs in a
worker thread, once per distinct configuration; temporary credentials that are about to expire
are refreshed in a worker thread too, never on the event loop.

The region is ``aws.region``, else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the profile's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials

from waypost.core.errors import UpstreamAuthError
from waypost.settings import AwsSettings

SERVICE = "bedrock"  # the signing name; the host is bedrock-runtime.{region}.amazonaws.com


@dataclass(frozen=True, slots=True)
class AwsIdentity:
    """Resolved credentials (possibly refreshable) and the region to sign for."""

    credentials: Credentials
    region: str


Resolver = Callable[[AwsSettings], AwsIdentity]
_Key = tuple[str | None, ...]


class AwsCredentialError(UpstreamAuthError):
    """The gateway has no usable AWS credentials or region: a configuration problem."""


def resolve_identity(aws: AwsSettings) -> AwsIdentity:
    """Credentials and region for ``aws`` (blocking: may do file and network I/O)."""
    if bool(aws.access_key_id) != bool(aws.secret_access_key):
        raise AwsCredentialError("aws.access_key_id and aws.secret_access_key must be set together")
    region = aws.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    session: Any = None
    credentials: Credentials | None
    try:
        if aws.access_key_id and aws.secret_access_key:
            credentials = Credentials(aws.access_key_id, aws.secret_access_key, aws.session_token)
        else:
            session = botocore.session.Session(profile=aws.profile)
            credentials = session.get_credentials()
        if region is None:
            session = session or botocore.session.Session(profile=aws.profile)
            region = session.get_config_variable("region")
    except Exception as exc:  # botocore raises many kinds (missing profile, SSO expiry, STS errors)
        raise AwsCredentialError(f"resolving AWS credentials failed: {type(exc).__name__}: {exc}") from None
    if credentials is None:
        raise AwsCredentialError(
            "no AWS credentials found: set aws.access_key_id and aws.secret_access_key, aws.profile, "
            "or provide them through the standard AWS chain (environment, config files, roles)"
        )
    if not region:
        raise AwsCredentialError(
            "no AWS region: set aws.region, AWS_REGION or AWS_DEFAULT_REGION, or a region in the profile"
        )
    return AwsIdentity(credentials, region)


class AwsAuth:
    """Caches resolved identities per configuration and hands out frozen credentials."""

    def __init__(self, resolve: Resolver = resolve_identity) -> None:
        self._resolve = resolve
        self._identities: dict[_Key, AwsIdentity] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}

    async def current(self, aws: AwsSettings) -> tuple[ReadOnlyCredentials, str]:
        """Frozen credentials valid for a while, and the region, without blocking the loop."""
        key = _key(aws)
        identity = self._identities.get(key)
        if identity is None:
            async with self._lock(key):
                identity = self._identities.get(key)
                if identity is None:
                    identity = await asyncio.to_thread(self._resolve, aws)
                    self._identities[key] = identity
        credentials = identity.credentials
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            async with self._lock(key):
                frozen = await asyncio.to_thread(_frozen, credentials)
        else:
            # Static credentials, or temporary ones far from expiry: no I/O happens here.
            frozen = _frozen(credentials)
        return frozen, identity.region

    def forget(self, aws: AwsSettings) -> None:
        """Drop what was resolved for ``aws`` (after Bedrock refused it), so the next call resolves again."""
        self._identities.pop(_key(aws), None)

    def _lock(self, key: _Key) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


def _frozen(credentials: Credentials) -> ReadOnlyCredentials:
    try:
        frozen: ReadOnlyCredentials = credentials.get_frozen_credentials()
    except Exception as exc:
        raise AwsCredentialError(f"refreshing AWS credentials failed: {type(exc).__name__}: {exc}") from None
    return frozen


def _key(aws: AwsSettings) -> _Key:
    return (aws.region, aws.profile, aws.access_key_id, aws.secret_access_key, aws.session_token)


def sign(
    url: str, body: bytes, headers: dict[str, str], credentials: ReadOnlyCredentials, region: str
) -> dict[str, str]:
    """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (temporary credentials) and the
    SigV4 ``Authorization`` for a POST of ``body`` to ``url`` (whose path must be final)."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def default_endpoint(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"
