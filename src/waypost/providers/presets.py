"""OpenAI-compatible provider presets: data (``presets.yaml``), not code.

A model entry whose ``provider`` names a preset is an ``openai``-dialect model with the preset's
base URL, key (read from the preset's environment variable unless the entry sets ``api_key``),
upstream model name and prices as defaults.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

PRESET_FILE = Path(__file__).with_name("presets.yaml")


@cache
def builtin_presets() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(PRESET_FILE.read_text(encoding="utf-8")) or {}
    return {name: dict(body, name=name) for name, body in data.items()}
