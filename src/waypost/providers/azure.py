"""Azure OpenAI: the OpenAI wire format at per-deployment URLs, authenticated by ``api-key``.

``base_url`` is the resource URL (``https://NAME.openai.azure.com``); ``upstream_model`` (or the
model name) is the *deployment* name; ``api_version`` defaults to the latest dated GA version of
the inference API. Everything else (encoding, streaming, the same-format fast path, errors) is
``OpenAIProvider``'s: only the URL and the credential header differ.
"""

from __future__ import annotations

from urllib.parse import quote

from waypost.providers.base import Deployment
from waypost.providers.openai import OpenAIProvider

NAME = "azure"
DEFAULT_API_VERSION = "2024-10-21"


def deployment_url(dep: Deployment, path: str) -> str:
    """``{base}/openai/deployments/{deployment}{path}?api-version=...``; ``path`` is an OpenAI
    operation path such as ``/chat/completions`` or ``/embeddings``."""
    settings = dep.settings
    base = settings.resolved_base_url()
    if not base.endswith("/openai"):
        base += "/openai"
    deployment = quote(dep.upstream_model, safe="")
    version = quote(settings.api_version or DEFAULT_API_VERSION, safe="")
    return f"{base}/deployments/{deployment}{path}?api-version={version}"


class AzureProvider(OpenAIProvider):
    """``dialect`` stays ``openai``: Azure answers in the OpenAI format, so OpenAI clients get
    the upstream bytes relayed as they are. Chat, legacy completions and embeddings all go to
    the deployment's own URL."""

    provider_name = NAME

    def speaks(self, client_format: str, dep: Deployment) -> bool:
        # Azure's Responses API lives outside the per-deployment URLs: Responses clients are
        # served through chat completions.
        return client_format != "openai_responses"

    def _url(self, dep: Deployment, path: str) -> str:
        return deployment_url(dep, path)

    def _headers(self, dep: Deployment) -> dict[str, str]:
        settings = dep.settings
        headers = {"content-type": "application/json", "accept": "application/json"}
        if settings.api_key:
            headers["api-key"] = settings.api_key
        headers.update(settings.headers)  # e.g. an Entra ID "Authorization: Bearer" instead of a key
        return headers
