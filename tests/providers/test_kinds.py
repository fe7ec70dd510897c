"""The one table of provider types (``providers/kinds.py``): settings, the registry, the CLI and
the documentation all follow it, and botocore is loaded only for Bedrock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from waypost import settings
from waypost.providers.http import HttpClient
from waypost.providers.kinds import DEFAULT_BASE_URLS, PROVIDER_KINDS, PROVIDER_TYPES
from waypost.providers.registry import build_providers
from waypost.settings import ModelSettings

ROOT = Path(__file__).parent.parent.parent


def test_settings_accept_exactly_the_types_of_the_table() -> None:
    assert settings.PROVIDER_TYPES == PROVIDER_TYPES
    assert settings.DEFAULT_BASE_URLS == DEFAULT_BASE_URLS


async def test_every_type_with_code_builds_its_provider() -> None:
    http = HttpClient()
    try:
        built = build_providers(set(PROVIDER_TYPES), http)
    finally:
        await http.close()
    assert set(built) == {name for name, kind in PROVIDER_KINDS.items() if kind.implementation}
    assert "auto" not in built


@pytest.mark.parametrize("name", [n for n, k in PROVIDER_KINDS.items() if k.default_base_url])
def test_a_default_base_url_applies_when_none_is_configured(name: str) -> None:
    model = ModelSettings(name="m", provider=name)
    assert model.resolved_base_url() == PROVIDER_KINDS[name].default_base_url


def test_the_configuration_reference_lists_every_type() -> None:
    row = next(
        line
        for line in (ROOT / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `provider` |")
    )
    for name in PROVIDER_TYPES:
        assert f"`{name}`" in row, name


def test_the_cli_names_every_type() -> None:
    from waypost.cli.models import ProviderOption

    for name in PROVIDER_TYPES:
        assert name in str(ProviderOption.help)


def test_botocore_is_loaded_only_when_a_bedrock_model_is_used() -> None:
    script = (
        "import sys, asyncio\n"
        "import waypost.app\n"
        "from waypost.providers.http import HttpClient\n"
        "from waypost.providers.registry import build_providers\n"
        "from waypost.providers.kinds import PROVIDER_TYPES\n"
        "async def main():\n"
        "    http = HttpClient()\n"
        "    build_providers(set(PROVIDER_TYPES) - {'bedrock'}, http)\n"
        "    print('botocore' in sys.modules)\n"
        "    build_providers({'bedrock'}, http)\n"
        "    print('botocore.eventstream' in sys.modules)\n"
        "    await http.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
