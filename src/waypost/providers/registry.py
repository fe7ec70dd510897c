"""Provider types by name. Imported lazily: a gateway that uses no Bedrock model never loads
botocore."""

from __future__ import annotations

import importlib

from waypost.providers.base import Provider
from waypost.providers.http import HttpClient

PROVIDER_CLASSES = {
    "openai": "waypost.providers.openai:OpenAIProvider",
    "anthropic": "waypost.providers.anthropic:AnthropicProvider",
    "mock": "waypost.providers.mock:MockProvider",
    "bedrock": "waypost.providers.bedrock:BedrockProvider",
    "gemini": "waypost.providers.gemini:GeminiProvider",
    "ollama": "waypost.providers.ollama:OllamaProvider",
    "azure": "waypost.providers.azure:AzureProvider",
}


def build_providers(types: set[str], http: HttpClient) -> dict[str, Provider]:
    """One provider object per type in use; each takes the shared HTTP client."""
    out: dict[str, Provider] = {}
    for name in sorted(types):
        if name not in PROVIDER_CLASSES:
            continue  # "auto" has no provider of its own
        module, _, cls = PROVIDER_CLASSES[name].partition(":")
        out[name] = getattr(importlib.import_module(module), cls)(http)
    return out
