"""Every provider type Waypost has code for, in one table.

What a model's ``provider`` may name (besides a preset), which class serves it, its default base
URL, and whether it needs credentials or calls an upstream at all: settings, the provider
registry, ``auto`` selection, the admin API, the outbound URL checks and the CLI all read this
table, and a test holds the documentation to it. The class is named, not imported: a gateway
that uses no Bedrock model never loads botocore.

Imports nothing of the package, so that ``settings`` can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# The two fields an OpenAI-dialect upstream may take the caller's output token limit in.
MAX_TOKENS: Final = "max_tokens"
MAX_COMPLETION_TOKENS: Final = "max_completion_tokens"
TokenLimitField = Literal["max_tokens", "max_completion_tokens"]
OPENAI_API_ORIGIN = "https://api.openai.com"
OPENAI_API_URL = OPENAI_API_ORIGIN + "/v1"


@dataclass(frozen=True, slots=True)
class ProviderKind:
    name: str
    implementation: str | None  # "module:Class"; None for ``auto``, which resolves to other models
    summary: str  # one line, for help texts
    default_base_url: str | None = None
    needs_credentials: bool = True  # False: a local server, or no upstream at all
    calls_upstream: bool = True  # False: nothing to connect to, so no URL to check


PROVIDER_KINDS: dict[str, ProviderKind] = {
    kind.name: kind
    for kind in (
        ProviderKind(
            "openai",
            "waypost.providers.openai:OpenAIProvider",
            "any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Groq, ...)",
            default_base_url=OPENAI_API_URL,
        ),
        ProviderKind(
            "anthropic",
            "waypost.providers.anthropic:AnthropicProvider",
            "the Anthropic Messages API",
            default_base_url="https://api.anthropic.com",
        ),
        ProviderKind(
            "mock",
            "waypost.providers.mock:MockProvider",
            "a built-in deterministic model, for demos and tests",
            needs_credentials=False,
            calls_upstream=False,
        ),
        ProviderKind(
            "bedrock",
            "waypost.providers.bedrock:BedrockProvider",
            "Amazon Bedrock (Converse), signed with AWS credentials",
        ),
        ProviderKind(
            "gemini",
            "waypost.providers.gemini:GeminiProvider",
            "the Google Gemini API",
            default_base_url="https://generativelanguage.googleapis.com",
        ),
        ProviderKind(
            "ollama",
            "waypost.providers.ollama:OllamaProvider",
            "Ollama's native API",
            default_base_url="http://127.0.0.1:11434",
            needs_credentials=False,
        ),
        ProviderKind(
            "azure",
            "waypost.providers.azure:AzureProvider",
            "Azure OpenAI deployments",
        ),
        ProviderKind(
            "auto",
            None,
            "routes to one of its candidate models (the cheapest usable, or the first listed)",
            needs_credentials=False,
            calls_upstream=False,
        ),
    )
}

PROVIDER_TYPES = tuple(PROVIDER_KINDS)
DEFAULT_BASE_URLS = {
    kind.name: kind.default_base_url for kind in PROVIDER_KINDS.values() if kind.default_base_url
}


def calls_upstream(provider: str) -> bool:
    """Whether models of ``provider`` connect to an upstream URL (presets are ``openai``)."""
    kind = PROVIDER_KINDS.get(provider)
    return kind is None or kind.calls_upstream


def default_max_tokens_field(provider: str, base_url: str) -> TokenLimitField:
    """The field an OpenAI-dialect upstream takes the caller's token limit in, unless its model
    or preset names one (``max_tokens_field``): OpenAI's own API and Azure take
    ``max_completion_tokens`` (their reasoning models refuse ``max_tokens``); every other
    OpenAI-compatible server (llama.cpp, vLLM, TGI, LM Studio, most hosted APIs) ``max_tokens``,
    and ignores the other one."""
    if provider == "azure" or base_url == OPENAI_API_ORIGIN or base_url.startswith(OPENAI_API_ORIGIN + "/"):
        return MAX_COMPLETION_TOKENS
    return MAX_TOKENS
